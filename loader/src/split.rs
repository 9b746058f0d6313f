//! Splitting a data file into chunks at row boundaries, so one big file loads in parallel.
//!
//! A splitter reads the decompressed stream once, in order, and cuts it into chunks of about
//! `chunk_size` bytes. A cut is only made where a row ends: after a `;` that ends a statement in
//! SQL files (quotes, backticks and comments tracked), after a line terminator outside a quoted
//! field in CSV files. The cuts depend only on the bytes and `chunk_size`, so every run and every
//! process computes the same chunks: a chunk is identified by its file and index, and the
//! checkpoint can say "chunk 7 of this file is loaded" across restarts.
//!
//! Invariants: chunks are contiguous and cover the whole stream; no chunk starts inside a row;
//! a row longer than [`MAX_ROW`] or a quote left open at the end of the file is an error naming
//! the byte where it began — the splitter never reads without bound looking for a row's end.
//!
//! Memory: the splitter reads into one buffer of [`buffer_size`] (`chunk_size` + two read
//! blocks), asking its caller for room first ([`split_within`]). A chunk leaves as that buffer
//! itself (no copy); the bytes read past the cut (less than a read block, or the start of a long
//! row) move to a new buffer, which grows to full size on the next read, after `emit` has
//! returned. The buffer only grows past its size (by a quarter at a time, not by doubling) for a
//! chunk whose last row runs past the spare room. So a splitter holds one buffer of about
//! `chunk_size` — while `emit` waits, the chunk it is handing on — and each chunk holds an
//! allocation of about its own size.

use crate::error::LoadError;
use crate::scan::Scanner;
pub use crate::scan::Syntax;
use bytes::{Bytes, BytesMut};
use std::io::Read;

/// No row (SQL statement or CSV record) may be longer than this.
pub const MAX_ROW: usize = 512 << 20;
const READ_BLOCK: usize = 1 << 20;
/// Session statements are looked for in this many bytes at the head of a SQL file.
const HEAD_SETTINGS: usize = 64 << 10;

/// One piece of a file, ending at a row boundary.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub index: u32,
    /// Offsets in the decompressed stream.
    pub start: u64,
    pub end: u64,
    pub data: Bytes,
    /// SQL: the session statements (`SET ...`) met in the file before this chunk.
    pub prelude: std::sync::Arc<Vec<String>>,
    /// CSV: the file's header line, when it has one.
    pub header: Option<std::sync::Arc<Vec<u8>>>,
}

/// The buffer a splitter fills for chunks of `chunk_size`: room for a chunk, the rest of its
/// last row and the next read.
pub fn buffer_size(chunk_size: usize) -> usize {
    chunk_size.clamp(1, 64 << 20) + 2 * READ_BLOCK
}

/// Cuts a stream into chunks, calling `emit` for each in order. `describe` names the file in
/// errors. Returns the number of chunks and the CSV header (when the syntax has one).
pub fn split(
    reader: impl Read,
    syntax: Syntax,
    chunk_size: usize,
    describe: &str,
    mut emit: impl FnMut(Chunk) -> Result<(), LoadError>,
) -> Result<SplitOutcome, LoadError> {
    let room = |_| Ok(());
    split_within(reader, syntax, chunk_size, describe, room, |c, _| emit(c))
}

/// [`split`], asking `room(bytes)` before it fills a new buffer of [`buffer_size`] bytes (it may
/// wait until memory is free); what `room` returns goes to `emit` with the chunk cut from that
/// buffer — none with a chunk cut from bytes read for the chunk before (the end of a file).
pub fn split_within<R>(
    mut reader: impl Read,
    syntax: Syntax,
    chunk_size: usize,
    describe: &str,
    mut room: impl FnMut(usize) -> Result<R, LoadError>,
    mut emit: impl FnMut(Chunk, Option<R>) -> Result<(), LoadError>,
) -> Result<SplitOutcome, LoadError> {
    let sql_backslash = !matches!(syntax, Syntax::Sql { backslash: false });
    let mut scanner = Scanner::new(syntax.clone());
    scanner.stop_at = chunk_size.max(1);
    if matches!(syntax, Syntax::Csv { header: true, .. }) {
        // The header is the first line exactly.
        scanner.stop_at = 1;
    }
    let buffer_size = buffer_size(chunk_size);
    let mut buf = BytesMut::new();
    // What `room` gave for the buffer being filled.
    let mut filling: Option<R> = None;
    // Offset of buf[0] in the stream.
    let mut base: u64 = 0;
    let mut scanned = 0usize;
    let mut boundary: Option<usize> = None;
    let mut index = 0u32;
    let mut eof = false;
    let mut first = true;
    let mut header: Option<Vec<u8>> = None;
    let wants_header = matches!(syntax, Syntax::Csv { header: true, .. });
    let mut prelude_arc = std::sync::Arc::new(Vec::new());
    let mut prelude_done = !matches!(syntax, Syntax::Sql { .. });
    let mut header_arc: Option<std::sync::Arc<Vec<u8>>> = None;
    loop {
        if !eof {
            if filling.is_none() {
                filling = Some(room(buffer_size)?);
            }
            eof = read_block(&mut reader, &mut buf, buffer_size, base, describe)?;
            if first && buf.len() >= 3 {
                first = false;
                if buf.starts_with(&[0xEF, 0xBB, 0xBF]) {
                    bytes::Buf::advance(&mut buf, 3);
                    base += 3;
                }
            }
        }
        let (found, stop) = scanner.scan(&buf, scanned, eof);
        scanned = stop;
        if let Some(b) = found {
            boundary = Some(b);
        }
        if wants_header && header.is_none() {
            if let Some(b) = boundary {
                let line = buf.split_to(b);
                header = Some(line.to_vec());
                header_arc = Some(std::sync::Arc::new(line.to_vec()));
                scanner.stop_at = chunk_size.max(1);
                base += b as u64;
                scanned -= b;
                scanner.rebase(b);
                boundary = None;
                continue;
            }
        }
        if wants_header && header.is_none() && eof && scanned >= buf.len() {
            header = Some(buf.split().to_vec());
            header_arc = header.clone().map(std::sync::Arc::new);
            continue;
        }
        if !prelude_done && (boundary.is_some() || eof) {
            // Session statements (`SET NAMES`, `SET TIME_ZONE`...) at the head of the file;
            // chunks after the first replay them before their own rows.
            prelude_done = true;
            let head = &buf[..boundary.unwrap_or(buf.len()).min(HEAD_SETTINGS)];
            prelude_arc = std::sync::Arc::new(crate::sql::head_settings(head, sql_backslash));
        }
        let at_end = eof && scanned >= buf.len();
        if at_end && boundary.is_none_or(|b| b < buf.len()) {
            // Bytes left without a row end: the last row has no terminator (fine), unless a
            // quote or comment is still open.
            if let Some((what, at)) = scanner.open_construct() {
                return Err(LoadError::Input {
                    file: describe.to_string(),
                    offset: base + at as u64,
                    message: format!(
                        "{what} opened here is never closed before the end of the file (truncated or corrupt file?)"
                    ),
                });
            }
        }
        let cut = match boundary {
            Some(b) if b >= chunk_size => Some(b),
            _ if at_end => Some(buf.len()),
            _ => None,
        };
        if let Some(c) = cut {
            if c > 0 {
                let data = cut_off(&mut buf, c);
                let has_rows = !data.iter().all(|b| b.is_ascii_whitespace());
                if has_rows || index == 0 {
                    let room = filling.take();
                    emit(
                        Chunk {
                            index,
                            start: base,
                            end: base + c as u64,
                            data,
                            prelude: if index == 0 {
                                Default::default()
                            } else {
                                prelude_arc.clone()
                            },
                            header: header_arc.clone(),
                        },
                        room,
                    )?;
                    index += 1;
                }
                base += c as u64;
                scanned -= c;
                scanner.rebase(c);
                boundary = None;
            }
        }
        if eof && buf.is_empty() {
            break;
        }
        if boundary.is_none() && buf.len() > MAX_ROW {
            let (what, at) = scanner.open_construct().unwrap_or(("a row", 0));
            return Err(LoadError::Input {
                file: describe.to_string(),
                offset: base + at as u64,
                message: format!(
                    "{what} starting here runs for more than {} MiB without ending; the file is corrupt or the format options (--csv-delimiter, --csv-separator) do not match it",
                    MAX_ROW >> 20
                ),
            });
        }
    }
    Ok(SplitOutcome {
        chunks: index,
        header,
        bytes: base,
    })
}

pub struct SplitOutcome {
    pub chunks: u32,
    pub header: Option<Vec<u8>>,
    /// Decompressed size.
    pub bytes: u64,
}

/// Makes room for `more` bytes after `buf`'s end, in a buffer of at least `buffer_size`. Past
/// that size it grows by a quarter (at least `more`), not by doubling: a buffer that held a chunk
/// becomes that chunk, and doubling would leave each chunk holding up to twice its size.
fn make_room(buf: &mut BytesMut, more: usize, buffer_size: usize) {
    if buf.capacity() - buf.len() >= more {
        return;
    }
    let grown = buf.len() + more.max(buf.len() / 4);
    let mut bigger = BytesMut::with_capacity(grown.max(buffer_size));
    bigger.extend_from_slice(buf);
    *buf = bigger;
}

/// Cuts `buf[..at]` off as a chunk: the buffer itself becomes the chunk, and the bytes after
/// `at` (read past the row end) move to an allocation of their own size, which grows to a full
/// buffer on the next read, once the chunk has been handed on: a splitter waiting to hand on a
/// chunk holds that chunk only.
fn cut_off(buf: &mut BytesMut, at: usize) -> Bytes {
    let rest = BytesMut::from(&buf[at..]);
    buf.truncate(at);
    std::mem::replace(buf, rest).freeze()
}

/// Appends a read block to `buf` (a buffer of `buffer_size`, whose first byte is at `base` in
/// the stream); true at the end of the stream.
fn read_block(
    reader: &mut impl Read,
    buf: &mut BytesMut,
    buffer_size: usize,
    base: u64,
    describe: &str,
) -> Result<bool, LoadError> {
    let old = buf.len();
    make_room(buf, READ_BLOCK, buffer_size);
    buf.resize(old + READ_BLOCK, 0);
    let got = read_full(reader, &mut buf[old..]).map_err(|(at, e)| LoadError::Input {
        file: describe.to_string(),
        offset: base + (old + at) as u64,
        message: read_error_message(&e),
    })?;
    buf.truncate(old + got);
    Ok(got == 0)
}

/// Fills `buf` unless the stream ends; an error comes with the bytes read before it.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, (usize, std::io::Error)> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err((got, e)),
        }
    }
    Ok(got)
}

fn read_error_message(e: &std::io::Error) -> String {
    let s = e.to_string();
    if e.kind() == std::io::ErrorKind::UnexpectedEof || s.contains("incomplete") {
        format!("the compressed stream ends here, in the middle ({s}; the offset counts decompressed bytes): the file is truncated")
    } else {
        format!("cannot read or decompress (the offset counts decompressed bytes): {s}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn chunks(data: &[u8], syntax: Syntax, size: usize) -> Result<Vec<Chunk>, LoadError> {
        let mut out = Vec::new();
        split(data, syntax, size, "f", |c| {
            out.push(c);
            Ok(())
        })?;
        Ok(out)
    }

    fn csv() -> Syntax {
        Syntax::Csv {
            separator: b",".to_vec(),
            delimiter: Some(b'"'),
            backslash_escape: true,
            header: false,
        }
    }

    #[test]
    fn sql_cuts_only_after_statements() {
        let data = b"INSERT INTO t VALUES (1,'a;b'),(2,'x\\';y');\nINSERT INTO t VALUES (3,\"q;\");\n-- c;\n/* ; */INSERT INTO t VALUES (4,`;`);";
        let cs = chunks(data, Syntax::Sql { backslash: true }, 1).unwrap();
        let texts: Vec<&[u8]> = cs.iter().map(|c| &c.data[..]).collect();
        assert_eq!(texts.len(), 3, "{texts:?}");
        assert!(texts[0].ends_with(b"'x\\';y');"));
        assert!(texts[1].ends_with(b"\"q;\");"));
        assert_eq!(cs.iter().map(|c| c.data.len()).sum::<usize>(), data.len());
        assert_eq!(cs[1].start, cs[0].end);
    }

    #[test]
    fn sql_prelude_is_carried() {
        let data =
            b"/*!40101 SET NAMES binary*/;\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\n";
        let cs = chunks(data, Syntax::Sql { backslash: true }, 1).unwrap();
        assert_eq!(cs.len(), 3);
        assert!(cs[0].prelude.is_empty());
        assert_eq!(cs[2].prelude.len(), 1);
    }

    #[test]
    fn csv_respects_quotes_and_reports_unclosed() {
        let data = b"1,\"a\nb\",x\n2,\"c\"\"\nd\",y\n3,\\\",z\n";
        let cs = chunks(data, csv(), 1).unwrap();
        assert_eq!(cs.len(), 3);
        assert_eq!(&cs[0].data[..], b"1,\"a\nb\",x\n");
        let err = chunks(b"1,\"abc\n2,def\n", csv(), 1).unwrap_err();
        assert!(err.to_string().contains("at byte 2"), "{err}");
        assert!(err.to_string().contains("never closed"), "{err}");
    }

    #[test]
    fn csv_header_and_bom() {
        let mut s = csv();
        if let Syntax::Csv { header, .. } = &mut s {
            *header = true;
        }
        let mut out = Vec::new();
        let o = split(&b"\xEF\xBB\xBFa,b\n1,2\n"[..], s, 100, "f", |c| {
            out.push(c);
            Ok(())
        })
        .unwrap();
        assert_eq!(o.header.as_deref(), Some(&b"a,b\n"[..]));
        assert_eq!(&out[0].data[..], b"1,2\n");
    }

    #[test]
    fn room_is_asked_before_each_buffer_and_goes_with_its_chunk() {
        let mut data = Vec::new();
        for i in 0..200_000 {
            data.extend_from_slice(format!("{i},\"row {i}\"\n").as_bytes());
        }
        let chunk_size = 1 << 20;
        let mut asked = Vec::new();
        let mut cut = Vec::new();
        let room = |bytes| {
            asked.push(bytes);
            Ok(asked.len())
        };
        split_within(&data[..], csv(), chunk_size, "f", room, |c, r| {
            cut.push((c.data.len(), r));
            Ok(())
        })
        .unwrap();
        assert!(asked.iter().all(|b| *b == buffer_size(chunk_size)));
        // Every buffer asked for was filled for one chunk; a chunk cut from bytes read for the
        // one before (at the end of the file) comes without room.
        let given: Vec<usize> = cut.iter().filter_map(|(_, r)| *r).collect();
        assert_eq!(given, (1..=given.len()).collect::<Vec<_>>(), "{cut:?}");
        assert!(given.len() + 1 >= asked.len(), "{asked:?} {cut:?}");
        assert!(cut.len() >= 3 && cut[0].1 == Some(1), "{cut:?}");
        assert_eq!(cut.iter().map(|(n, _)| n).sum::<usize>(), data.len());
    }

    #[test]
    fn every_split_size_covers_the_stream() {
        let mut data = Vec::new();
        for i in 0..200 {
            data.extend_from_slice(format!("{i},\"v,{i}\"\"\n\",\\\"\n").as_bytes());
        }
        for size in [1, 7, 64, 1000, 1 << 20] {
            let cs = chunks(&data, csv(), size).unwrap();
            let joined: Vec<u8> = cs.iter().flat_map(|c| c.data.iter().copied()).collect();
            assert_eq!(joined, data);
            for c in &cs {
                assert!(c.data.ends_with(b"\n"));
            }
        }
    }
}
