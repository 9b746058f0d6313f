//! Writes one chunk's rows into one or more data files: encode, compress, stream to storage.
//!
//! Memory per writer is bounded: rows are encoded into a buffer that is compressed and handed to
//! the storage writer whenever it passes `FLUSH_AT` (checked after each batch of rows the reader
//! had at hand); storage itself holds at most one upload part in flight. A file is finished (made
//! visible) right after the row that reaches `--filesize`, or when the chunk ends. Files are
//! written with deferred durability (`Storage::create_deferred`): the chunk's completion marker
//! is their commit point, written only after a `Storage::sync` (see `markers.rs`).

use crate::encode::RowEncoder;
use crate::error::DumpError;
use bytes::Bytes;
use ferry_shared::manifest::FileEntry;
use ferry_shared::storage::{ObjectWriter, Storage};
use std::io::Write;
use std::sync::Arc;

const FLUSH_AT: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd(i32),
    Gzip(u32),
}

impl Compression {
    pub fn suffix(&self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Zstd(_) => ".zst",
            Compression::Gzip(_) => ".gz",
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd(_) => "zstd",
            Compression::Gzip(_) => "gzip",
        }
    }
}

enum Compressor {
    Plain,
    /// One zstd frame per buffer (a valid multi-frame stream): compressing straight from the
    /// buffer avoids the streaming encoder's copy into its window.
    Zstd(zstd::bulk::Compressor<'static>, bool),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::Plain,
            Compression::Zstd(level) => {
                Compressor::Zstd(zstd::bulk::Compressor::new(level)?, false)
            }
            Compression::Gzip(level) => Compressor::Gzip(flate2::write::GzEncoder::new(
                Vec::with_capacity(FLUSH_AT),
                flate2::Compression::new(level),
            )),
        })
    }

    /// Compresses `data`; returns bytes ready to store (possibly empty).
    fn push(&mut self, data: &mut Vec<u8>) -> std::io::Result<Vec<u8>> {
        match self {
            Compressor::Plain => Ok(std::mem::take(data)),
            Compressor::Zstd(c, wrote) => {
                let out = c.compress(data)?;
                data.clear();
                *wrote = true;
                Ok(out)
            }
            Compressor::Gzip(e) => {
                e.write_all(data)?;
                data.clear();
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Compressor::Plain => Ok(Vec::new()),
            // An empty frame keeps a file without data a valid zstd stream.
            Compressor::Zstd(mut c, false) => c.compress(&[]),
            Compressor::Zstd(_, true) => Ok(Vec::new()),
            Compressor::Gzip(e) => e.finish(),
        }
    }
}

struct OpenFile {
    name: String,
    /// Created at the first flush, so that encoding rows never waits for storage.
    writer: Option<Box<dyn ObjectWriter>>,
    compressor: Compressor,
    /// Encoded rows not yet handed to the compressor.
    buf: Vec<u8>,
    raw_bytes: u64,
    rows: u64,
}

/// Streams the rows of one chunk to `{base}.{index}[part].{ext}{suffix}` files.
pub struct ChunkWriter {
    storage: Arc<dyn Storage>,
    encoder: RowEncoder,
    compression: Compression,
    base: String,
    chunk_index: u32,
    /// `--filesize` in uncompressed bytes; `None`: one file per chunk.
    file_size: Option<u64>,
    open: Option<OpenFile>,
    /// Files that reached `--filesize` and wait for `after_rows` to store their last bytes.
    full: Vec<OpenFile>,
    files: Vec<FileEntry>,
    part: u32,
    pub rows: u64,
    pub raw_bytes: u64,
}

impl ChunkWriter {
    pub fn new(
        storage: Arc<dyn Storage>,
        encoder: RowEncoder,
        compression: Compression,
        base: String,
        chunk_index: u32,
        file_size: Option<u64>,
    ) -> Self {
        Self {
            storage,
            encoder,
            compression,
            base,
            chunk_index,
            file_size,
            full: Vec::new(),
            open: None,
            files: Vec::new(),
            part: 0,
            rows: 0,
            raw_bytes: 0,
        }
    }

    /// File name of part `part` of chunk `chunk` (Dumpling's `%09d` / `%09d%04d` numbering).
    pub fn file_name(base: &str, chunk: u32, part: Option<u32>, ext: &str, suffix: &str) -> String {
        match part {
            Some(p) => format!("{base}.{chunk:09}{p:04}.{ext}{suffix}"),
            None => format!("{base}.{chunk:09}.{ext}{suffix}"),
        }
    }

    /// The prefix every file of this chunk starts with (to find leftovers of an earlier try).
    pub fn chunk_prefix(base: &str, chunk: u32) -> String {
        format!("{base}.{chunk:09}")
    }

    fn start_file(&mut self) -> Result<(), DumpError> {
        let part = self.file_size.map(|_| self.part);
        let name = Self::file_name(
            &self.base,
            self.chunk_index,
            part,
            self.encoder.extension(),
            self.compression.suffix(),
        );
        let compressor = Compressor::new(self.compression)
            .map_err(|e| DumpError::Definite(format!("{name}: cannot start compressor: {e}")))?;
        self.part += 1;
        let mut buf = Vec::with_capacity(FLUSH_AT + (64 << 10));
        self.encoder.begin_file(&mut buf);
        self.open = Some(OpenFile {
            name,
            writer: None,
            compressor,
            buf,
            raw_bytes: 0,
            rows: 0,
        });
        Ok(())
    }

    /// Encodes one row (never waits). A file that reaches `--filesize` is closed right after
    /// this row, so file contents do not depend on how rows arrived; call
    /// [`ChunkWriter::after_rows`] regularly to move buffered bytes to storage.
    pub fn encode_row(&mut self, values: &[Option<&[u8]>]) -> Result<(), DumpError> {
        if self.open.is_none() {
            self.start_file()?;
        }
        let Some(f) = self.open.as_mut() else {
            return Err(DumpError::Definite("internal: no open file".into()));
        };
        let before = f.buf.len();
        self.encoder.encode_row(values, &mut f.buf);
        f.raw_bytes += (f.buf.len() - before) as u64;
        f.rows += 1;
        self.rows += 1;
        if self.file_size.is_some_and(|limit| f.raw_bytes >= limit) {
            self.encoder.end_file(&mut f.buf);
            if let Some(full) = self.open.take() {
                self.full.push(full);
            }
        }
        Ok(())
    }

    /// Completes files that reached `--filesize` and hands a full buffer to storage.
    pub async fn after_rows(&mut self) -> Result<(), DumpError> {
        for f in std::mem::take(&mut self.full) {
            self.close(f).await?;
        }
        if let Some(f) = self.open.as_mut() {
            if f.buf.len() >= FLUSH_AT {
                self.raw_bytes += Self::flush(&self.storage, f).await?;
            }
        }
        Ok(())
    }

    /// Compresses and stores `f`'s buffer; returns the uncompressed bytes moved.
    async fn flush(storage: &Arc<dyn Storage>, f: &mut OpenFile) -> Result<u64, DumpError> {
        let moved = f.buf.len() as u64;
        let out = if matches!(f.compressor, Compressor::Plain) {
            std::mem::replace(&mut f.buf, Vec::with_capacity(FLUSH_AT + (64 << 10)))
        } else {
            // Compress on the blocking pool so the reading tasks keep the runtime's threads.
            let mut compressor = std::mem::replace(&mut f.compressor, Compressor::Plain);
            let mut buf = std::mem::take(&mut f.buf);
            let (compressor, buf, out) = tokio::task::spawn_blocking(move || {
                let out = compressor.push(&mut buf);
                (compressor, buf, out)
            })
            .await
            .map_err(|e| {
                DumpError::Definite(format!("{}: compression task failed: {e}", f.name))
            })?;
            f.compressor = compressor;
            f.buf = buf;
            out.map_err(|e| DumpError::Definite(format!("{}: compression failed: {e}", f.name)))?
        };
        if !out.is_empty() {
            let writer = match &mut f.writer {
                Some(w) => w,
                None => f.writer.insert(storage.create_deferred(&f.name).await?),
            };
            writer.write(Bytes::from(out)).await?;
        }
        Ok(moved)
    }

    /// Stores the rest of a file whose last bytes are encoded, and makes it visible.
    async fn close(&mut self, mut f: OpenFile) -> Result<(), DumpError> {
        if f.writer.is_none() && matches!(f.compressor, Compressor::Plain) {
            // Uncompressed and never flushed: the whole file is this buffer, stored in one
            // step (small tables' files then cost one hand-off to storage, not three).
            let data = std::mem::take(&mut f.buf);
            let bytes = data.len() as u64;
            self.storage
                .put_deferred(&f.name, Bytes::from(data))
                .await?;
            self.raw_bytes += bytes;
            self.files.push(FileEntry {
                name: f.name,
                bytes,
                rows: f.rows,
            });
            return Ok(());
        }
        self.raw_bytes += Self::flush(&self.storage, &mut f).await?;
        let tail = f
            .compressor
            .finish()
            .map_err(|e| DumpError::Definite(format!("{}: compression failed: {e}", f.name)))?;
        let mut writer = match f.writer {
            Some(w) => w,
            None => self.storage.create_deferred(&f.name).await?,
        };
        if !tail.is_empty() {
            writer.write(Bytes::from(tail)).await?;
        }
        let bytes = writer.finish().await?;
        self.files.push(FileEntry {
            name: f.name,
            bytes,
            rows: f.rows,
        });
        Ok(())
    }

    /// Finishes the last file; returns the files written (none for an empty chunk) and the
    /// uncompressed byte count.
    pub async fn finish(mut self) -> Result<(Vec<FileEntry>, u64), DumpError> {
        self.after_rows().await?;
        if let Some(mut f) = self.open.take() {
            self.encoder.end_file(&mut f.buf);
            self.close(f).await?;
        }
        Ok((self.files, self.raw_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zstd_frames_decode_to_the_input_and_empty_files_stay_valid() {
        let mut c = Compressor::new(Compression::Zstd(1)).unwrap();
        let mut out = c.push(&mut b"first block ".to_vec()).unwrap();
        out.extend(c.push(&mut b"second block".to_vec()).unwrap());
        out.extend(c.finish().unwrap());
        assert_eq!(
            zstd::decode_all(&out[..]).unwrap(),
            b"first block second block"
        );
        let empty = Compressor::new(Compression::Zstd(1))
            .unwrap()
            .finish()
            .unwrap();
        assert!(!empty.is_empty());
        assert!(zstd::decode_all(&empty[..]).unwrap().is_empty());
    }
}
