//! Reading dump files: local files or S3 objects, decompressed by suffix, as one blocking
//! `std::io::Read` that a splitter thread consumes.
//!
//! S3 objects are read by an async task in ranged GETs of up to [`S3_RANGE`] bytes whose bodies
//! are streamed, not collected: the task hands the bytes on in pieces of [`PIECE`] bytes through
//! a queue of [`PIECES_AHEAD`], so an open S3 file holds about four pieces (4 MiB), whatever its
//! size. A GET cut off part-way is retried from the first byte not yet handed on.

use crate::error::LoadError;
use bytes::{Bytes, BytesMut};
use ferry_shared::failure::Backoff;
use ferry_shared::storage::{Storage, StorageError};
use std::io::Read;
use std::sync::Arc;

/// Bytes asked for per GET. While the workers are busy, the reader stalls and the server waits
/// with the rest of the range; a GET the server cuts off meanwhile resumes where it stopped.
const S3_RANGE: u64 = 64 << 20;
/// Bytes per piece handed to the reader.
const PIECE: usize = 1 << 20;
/// Pieces queued between the fetching task and the reader.
const PIECES_AHEAD: usize = 2;

/// Compression of a file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd,
    Gzip,
    Snappy,
}

impl Compression {
    /// The compression a file name's last suffix says, and the name without that suffix.
    pub fn from_name(name: &str) -> (Compression, &str) {
        let lower = name.to_ascii_lowercase();
        for (suffix, c) in [
            (".zst", Compression::Zstd),
            (".zstd", Compression::Zstd),
            (".gz", Compression::Gzip),
            (".gzip", Compression::Gzip),
            (".snappy", Compression::Snappy),
        ] {
            if lower.ends_with(suffix) {
                return (c, &name[..name.len() - suffix.len()]);
            }
        }
        (Compression::None, name)
    }
}

/// Opens `name` in `storage` as a decompressed byte stream. Blocking reads: call from a
/// blocking thread. `rt` runs the S3 fetches.
pub fn open(
    storage: &Arc<dyn Storage>,
    name: &str,
    size: u64,
    rt: &tokio::runtime::Handle,
) -> Result<Box<dyn Read + Send>, LoadError> {
    let raw: Box<dyn Read + Send> = match storage.local_path(name) {
        Some(path) => {
            let f = std::fs::File::open(&path).map_err(|e| LoadError::Input {
                file: storage.describe(name),
                offset: 0,
                message: format!("cannot open: {e}"),
            })?;
            Box::new(f)
        }
        None => Box::new(RemoteReader::start(storage.clone(), name, size, rt)),
    };
    let (compression, _) = Compression::from_name(name);
    Ok(match compression {
        Compression::None => raw,
        Compression::Zstd => {
            let d = zstd::stream::read::Decoder::new(raw).map_err(|e| LoadError::Input {
                file: storage.describe(name),
                offset: 0,
                message: format!("cannot start zstd decoding: {e}"),
            })?;
            Box::new(d)
        }
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
            std::io::BufReader::with_capacity(1 << 20, raw),
        )),
        Compression::Snappy => Box::new(snap::read::FrameDecoder::new(raw)),
    })
}

/// Reads a whole (small) file decompressed: schema files, metadata.
pub async fn read_all(storage: &Arc<dyn Storage>, name: &str) -> Result<Vec<u8>, LoadError> {
    let data = storage.read(name).await?;
    let (compression, _) = Compression::from_name(name);
    if compression == Compression::None {
        return Ok(data.to_vec());
    }
    let file = storage.describe(name);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        let mut r: Box<dyn Read> = match compression {
            Compression::Zstd => {
                Box::new(zstd::stream::read::Decoder::new(&data[..]).map_err(|e| {
                    LoadError::Input {
                        file: file.clone(),
                        offset: 0,
                        message: e.to_string(),
                    }
                })?)
            }
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&data[..])),
            Compression::Snappy => Box::new(snap::read::FrameDecoder::new(&data[..])),
            Compression::None => Box::new(&data[..]),
        };
        r.read_to_end(&mut out).map_err(|e| LoadError::Input {
            file,
            offset: out.len() as u64,
            message: format!("cannot decompress: {e}"),
        })?;
        Ok(out)
    })
    .await
    .map_err(|e| LoadError::Internal(format!("decompression task failed: {e}")))?
}

/// A blocking reader over an S3 object, fed by a task that streams ranged GETs.
struct RemoteReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
    done: bool,
}

impl RemoteReader {
    fn start(
        storage: Arc<dyn Storage>,
        name: &str,
        size: u64,
        rt: &tokio::runtime::Handle,
    ) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel(PIECES_AHEAD);
        let name = name.to_string();
        rt.spawn(async move {
            let mut at = 0u64;
            let what = format!("reading {}", storage.describe(&name));
            let mut backoff = Backoff::new(&storage.retry_policy(), what, 0);
            while at < size {
                let len = S3_RANGE.min(size - at);
                let (moved, result) = forward_range(&*storage, &name, at, len, &tx).await;
                at += moved;
                match result {
                    Ok(true) => {}
                    // The reader is gone.
                    Ok(false) => return,
                    // The bytes handed on are the progress: a GET that moved some starts a
                    // new retry period.
                    Err(e) => {
                        if let Err(e) = backoff.failed(e, at).await {
                            let _ = tx.send(Err(std::io::Error::other(e.to_string()))).await;
                            return;
                        }
                    }
                }
            }
        });
        RemoteReader {
            rx,
            current: Bytes::new(),
            done: false,
        }
    }
}

/// Streams `len` bytes at `start` of `name` to `tx` in pieces of about [`PIECE`] bytes. Returns
/// the bytes sent (also when it fails part-way: a retry resumes after them) and `Ok(false)` if
/// the receiver is gone.
async fn forward_range(
    storage: &dyn Storage,
    name: &str,
    start: u64,
    len: u64,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
) -> (u64, Result<bool, StorageError>) {
    let mut sent = 0u64;
    let mut piece = BytesMut::with_capacity(PIECE);
    let result = async {
        let mut body = storage.stream_range(name, start, len).await?;
        while let Some(mut b) = body.next_piece().await? {
            // Pieces of exactly PIECE bytes: a piece that overflowed its allocation would
            // double it, and each piece queued would hold twice its size.
            while !b.is_empty() {
                let take = b.len().min(PIECE - piece.len());
                piece.extend_from_slice(&b.split_to(take));
                if piece.len() == PIECE {
                    sent += PIECE as u64;
                    if tx.send(Ok(piece.split().freeze())).await.is_err() {
                        return Ok(false);
                    }
                    piece.reserve(PIECE);
                }
            }
        }
        Ok(true)
    }
    .await;
    // Bytes that arrived before an error are good: hand them on so a retry starts after them.
    if !piece.is_empty() && !matches!(result, Ok(false)) {
        sent += piece.len() as u64;
        if tx.send(Ok(piece.freeze())).await.is_err() {
            return (sent, Ok(false));
        }
    }
    (sent, result)
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Transcodes a GB18030 stream to UTF-8 as it is read.
pub struct Gb18030Reader<R> {
    inner: R,
    decoder: encoding_rs::Decoder,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
}

impl<R: Read> Gb18030Reader<R> {
    pub fn new(inner: R) -> Self {
        Gb18030Reader {
            inner,
            decoder: encoding_rs::GB18030.new_decoder_without_bom_handling(),
            inbuf: vec![0; 1 << 16],
            out: Vec::new(),
            out_pos: 0,
            eof: false,
        }
    }
}

impl<R: Read> Read for Gb18030Reader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.out_pos >= self.out.len() {
            if self.eof {
                return Ok(0);
            }
            let n = self.inner.read(&mut self.inbuf)?;
            self.eof = n == 0;
            let max = self.decoder.max_utf8_buffer_length(n).unwrap_or(n * 4 + 16);
            let mut s = String::with_capacity(max);
            let (result, _, had_errors) =
                self.decoder
                    .decode_to_string(&self.inbuf[..n], &mut s, self.eof);
            if had_errors {
                return Err(std::io::Error::other(
                    "bytes that are not GB18030 (--character-set gb18030)",
                ));
            }
            debug_assert!(matches!(result, encoding_rs::CoderResult::InputEmpty));
            self.out = s.into_bytes();
            self.out_pos = 0;
        }
        let n = buf.len().min(self.out.len() - self.out_pos);
        buf[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}
