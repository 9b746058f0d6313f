//! Writes one chunk's rows into one or more data files: encode, compress, stream to storage.
//!
//! Memory per writer is bounded: rows are encoded into a buffer that is compressed and handed to
//! the storage writer whenever it passes `FLUSH_AT`; storage itself holds at most one upload part
//! in flight. A file is finished (made visible) when `--filesize` is reached or the chunk ends.

use crate::encode::RowEncoder;
use crate::error::DumpError;
use bytes::Bytes;
use ferry_shared::manifest::FileEntry;
use ferry_shared::storage::{ObjectWriter, Storage};
use mysql_async::Value;
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
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
}

impl Compressor {
    fn new(c: Compression) -> std::io::Result<Self> {
        Ok(match c {
            Compression::None => Compressor::Plain,
            Compression::Zstd(level) => Compressor::Zstd(zstd::stream::write::Encoder::new(
                Vec::with_capacity(FLUSH_AT),
                level,
            )?),
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
            Compressor::Zstd(e) => {
                e.write_all(data)?;
                data.clear();
                Ok(std::mem::take(e.get_mut()))
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
            Compressor::Zstd(e) => e.finish(),
            Compressor::Gzip(e) => e.finish(),
        }
    }
}

struct OpenFile {
    name: String,
    writer: Box<dyn ObjectWriter>,
    compressor: Compressor,
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
    buf: Vec<u8>,
    open: Option<OpenFile>,
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
            buf: Vec::with_capacity(FLUSH_AT + (64 << 10)),
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

    async fn open_file(&mut self) -> Result<(), DumpError> {
        let part = self.file_size.map(|_| self.part);
        let name = Self::file_name(
            &self.base,
            self.chunk_index,
            part,
            self.encoder.extension(),
            self.compression.suffix(),
        );
        let writer = self.storage.create(&name).await?;
        let compressor = Compressor::new(self.compression)
            .map_err(|e| DumpError::Definite(format!("{name}: cannot start compressor: {e}")))?;
        self.part += 1;
        self.open = Some(OpenFile {
            name,
            writer,
            compressor,
            raw_bytes: 0,
            rows: 0,
        });
        self.encoder.begin_file(&mut self.buf);
        Ok(())
    }

    pub async fn write_row(&mut self, values: &[Value]) -> Result<(), DumpError> {
        if self.open.is_none() {
            self.open_file().await?;
        }
        let before = self.buf.len();
        self.encoder.encode_row(values, &mut self.buf);
        let added = (self.buf.len() - before) as u64;
        self.rows += 1;
        let (raw, _) = {
            let f = self
                .open
                .as_mut()
                .ok_or_else(|| DumpError::Definite("internal: no open file".into()))?;
            f.rows += 1;
            f.raw_bytes += added;
            (f.raw_bytes, f.rows)
        };
        if self.file_size.is_some_and(|limit| raw >= limit) {
            self.close_file().await?;
        } else if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), DumpError> {
        let Some(f) = self.open.as_mut() else {
            return Ok(());
        };
        self.raw_bytes += self.buf.len() as u64;
        let out = f
            .compressor
            .push(&mut self.buf)
            .map_err(|e| DumpError::Definite(format!("{}: compression failed: {e}", f.name)))?;
        if !out.is_empty() {
            f.writer.write(Bytes::from(out)).await?;
        }
        Ok(())
    }

    async fn close_file(&mut self) -> Result<(), DumpError> {
        if self.open.is_none() {
            return Ok(());
        }
        self.encoder.end_file(&mut self.buf);
        self.flush().await?;
        let Some(f) = self.open.take() else {
            return Ok(());
        };
        let tail = f
            .compressor
            .finish()
            .map_err(|e| DumpError::Definite(format!("{}: compression failed: {e}", f.name)))?;
        let mut writer = f.writer;
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
        self.close_file().await?;
        Ok((self.files, self.raw_bytes))
    }
}
