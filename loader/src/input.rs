//! Reading dump files: local files or S3 objects, decompressed by suffix, as one blocking
//! `std::io::Read` that a splitter thread consumes.
//!
//! S3 objects are fetched in ranged GETs of [`S3_BLOCK`] bytes by an async task running one
//! block ahead of the reader, so memory per open file stays at about two blocks.

use crate::error::LoadError;
use bytes::Bytes;
use ferry_shared::failure::{retry_with_backoff, RetryPolicy};
use ferry_shared::storage::Storage;
use std::io::Read;
use std::sync::Arc;

const S3_BLOCK: u64 = 8 << 20;

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

/// A blocking reader over an S3 object, fed by ranged GETs one block ahead.
struct RemoteReader {
    rx: std::sync::mpsc::Receiver<std::io::Result<Bytes>>,
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
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let name = name.to_string();
        rt.spawn(async move {
            let mut at = 0u64;
            while at < size {
                let len = S3_BLOCK.min(size - at);
                let what = format!("reading {} at byte {at}", storage.describe(&name));
                let block = retry_with_backoff(
                    &RetryPolicy::default(),
                    &what,
                    || 0,
                    |_| storage.read_range(&name, at, len),
                )
                .await
                .map_err(|e| std::io::Error::other(e.to_string()));
                let failed = block.is_err();
                let tx2 = tx.clone();
                // The channel is bounded: park the send on a blocking thread, not the runtime.
                let sent = tokio::task::spawn_blocking(move || tx2.send(block).is_ok())
                    .await
                    .unwrap_or(false);
                if !sent || failed {
                    return;
                }
                at += len;
            }
        });
        RemoteReader {
            rx,
            current: Bytes::new(),
            done: false,
        }
    }
}

impl Read for RemoteReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(b)) => self.current = b,
                Ok(Err(e)) => return Err(e),
                Err(_) => {
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
