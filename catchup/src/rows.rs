//! TABLE_MAP and ROWS events: which table a row image belongs to, the column types and their
//! metadata, and the decoded before/after images of WRITE, UPDATE and DELETE events (v1 and v2)
//! and of MySQL's PARTIAL_UPDATE_ROWS events, whose JSON columns can carry diffs
//! ([`crate::jsondiff`]). Images can be partial (`binlog_row_image=MINIMAL`, NDB): a column the
//! image leaves out is `None`.
//!
//! ferry decodes row images itself (mysql_common's decoding is wrong for some types). Every
//! length is checked against the bytes present: a malformed event is an error, never a panic.

use crate::cursor::Cursor;
use crate::jsondiff::{self, JsonDiff};
use crate::value;

/// Column type codes (`enum_field_types`).
pub mod ty {
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
    pub const NEWDATE: u8 = 14;
    pub const VARCHAR: u8 = 15;
    pub const BIT: u8 = 16;
    pub const TIMESTAMP2: u8 = 17;
    pub const DATETIME2: u8 = 18;
    pub const TIME2: u8 = 19;
    pub const VECTOR: u8 = 242;
    pub const JSON: u8 = 245;
    pub const NEWDECIMAL: u8 = 246;
    pub const ENUM: u8 = 247;
    pub const SET: u8 = 248;
    pub const TINY_BLOB: u8 = 249;
    pub const MEDIUM_BLOB: u8 = 250;
    pub const LONG_BLOB: u8 = 251;
    pub const BLOB: u8 = 252;
    pub const VAR_STRING: u8 = 253;
    pub const STRING: u8 = 254;
    pub const GEOMETRY: u8 = 255;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub type_code: u8,
    /// Type metadata from the TABLE_MAP event (its meaning depends on the type).
    pub meta: u16,
    pub nullable: bool,
    /// From the optional SIGNEDNESS metadata (binlog_row_metadata); `None` when absent.
    pub unsigned: Option<bool>,
    /// From the optional COLUMN_NAME metadata.
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableMap {
    pub table_id: u64,
    pub db: String,
    pub table: String,
    pub columns: Vec<Column>,
}

/// One decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// DECIMAL, DATE, TIME, DATETIME: the text the server prints.
    Text(String),
    /// TIMESTAMP: seconds since the epoch and microseconds.
    Timestamp(u32, u32),
    /// Strings, blobs, JSON (binary form), BIT, SET bitmaps, geometry.
    Bytes(Vec<u8>),
    /// ENUM index (1-based; 0 for the empty error value).
    Enum(u16),
    /// A JSON column of a PARTIAL_UPDATE_ROWS after image: the changes to apply to the
    /// column's current value, in order (empty: unchanged).
    JsonDiff(Vec<JsonDiff>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsKind {
    Write,
    /// UPDATE_ROWS and PARTIAL_UPDATE_ROWS (their after images can hold [`Cell::JsonDiff`]).
    Update,
    Delete,
}

/// `value_options` bit of a PARTIAL_UPDATE_ROWS after image: JSON columns may hold diffs.
const PARTIAL_JSON_UPDATES: u64 = 1;

/// The event type code of MySQL's PARTIAL_UPDATE_ROWS_EVENT.
pub const PARTIAL_UPDATE_ROWS: u8 = 39;

/// A row image: one entry per table column; `None` where the image does not include it.
pub type Image = Vec<Option<Cell>>;

#[derive(Debug, Clone, PartialEq)]
pub struct RowsEvent {
    pub table_id: u64,
    pub kind: RowsKind,
    /// (before, after): Write has only after, Delete only before, Update both.
    pub rows: Vec<(Option<Image>, Option<Image>)>,
}

fn bit(bits: &[u8], i: usize) -> bool {
    bits.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Columns that the SIGNEDNESS metadata has a bit for. MariaDB also counts YEAR (its YEAR
/// field is a TINYINT underneath); MySQL does not.
fn is_numeric(t: u8, mariadb: bool) -> bool {
    (mariadb && t == ty::YEAR)
        || matches!(
            t,
            ty::TINY
                | ty::SHORT
                | ty::INT24
                | ty::LONG
                | ty::LONGLONG
                | ty::NEWDECIMAL
                | ty::FLOAT
                | ty::DOUBLE
        )
}

/// Parses a TABLE_MAP body (6-byte table ids).
/// `mariadb`: the event comes from a MariaDB server (its metadata counts columns differently).
pub fn parse_table_map(body: &[u8], mariadb: bool) -> Result<TableMap, String> {
    let mut c = Cursor::new(body);
    let table_id = c.le(6)?;
    let _flags = c.le(2)?;
    let n = c.u8()? as usize;
    let db = String::from_utf8_lossy(c.take(n)?).into_owned();
    c.u8()?;
    let n = c.u8()? as usize;
    let table = String::from_utf8_lossy(c.take(n)?).into_owned();
    c.u8()?;
    let count = c.lenenc()? as usize;
    let types = c.take(count)?.to_vec();
    let meta_len = c.lenenc()? as usize;
    let mut m = Cursor::new(c.take(meta_len)?);
    let mut columns = Vec::with_capacity(count);
    for &t in &types {
        let meta = match t {
            ty::FLOAT
            | ty::DOUBLE
            | ty::BLOB
            | ty::GEOMETRY
            | ty::JSON
            | ty::TIMESTAMP2
            | ty::DATETIME2
            | ty::TIME2
            | ty::VECTOR
            | ty::TINY_BLOB
            | ty::MEDIUM_BLOB
            | ty::LONG_BLOB => u16::from(m.u8()?),
            ty::VARCHAR | ty::VAR_STRING => m.le(2)? as u16,
            // Big-endian pairs: (real type, length), (bits, bytes), (precision, scale).
            ty::STRING | ty::ENUM | ty::SET | ty::BIT | ty::NEWDECIMAL => {
                let hi = m.u8()?;
                let lo = m.u8()?;
                (u16::from(hi) << 8) | u16::from(lo)
            }
            _ => 0,
        };
        columns.push(Column {
            type_code: t,
            meta,
            nullable: false,
            unsigned: None,
            name: None,
        });
    }
    let nulls = c.take(count.div_ceil(8))?;
    for (i, col) in columns.iter_mut().enumerate() {
        col.nullable = bit(nulls, i);
    }
    // Optional metadata (binlog_row_metadata): type, length, value.
    while !c.rest().is_empty() {
        let kind = c.u8()?;
        let len = c.lenenc()? as usize;
        let v = c.take(len)?;
        match kind {
            1 => {
                let numeric = columns
                    .iter_mut()
                    .filter(|c| is_numeric(c.type_code, mariadb));
                for (k, col) in numeric.enumerate() {
                    let byte = v.get(k / 8).copied().unwrap_or(0);
                    col.unsigned = Some(byte & (0x80 >> (k % 8)) != 0);
                }
            }
            4 => {
                let mut n = Cursor::new(v);
                for col in columns.iter_mut() {
                    let l = n.lenenc()? as usize;
                    col.name = Some(String::from_utf8_lossy(n.take(l)?).into_owned());
                }
            }
            _ => {}
        }
    }
    Ok(TableMap {
        table_id,
        db,
        table,
        columns,
    })
}

/// Decodes one value of `col` at the cursor.
fn read_cell(c: &mut Cursor<'_>, col: &Column) -> Result<Cell, String> {
    let unsigned = col.unsigned.unwrap_or(false);
    let int = |c: &mut Cursor<'_>, n: usize| -> Result<Cell, String> {
        let v = c.le(n)?;
        if unsigned {
            Ok(Cell::UInt(v))
        } else {
            let shift = 64 - 8 * n as u32;
            Ok(Cell::Int(((v << shift) as i64) >> shift))
        }
    };
    let short = |e: Option<(String, usize)>| e.ok_or_else(|| "value cut short".to_string());
    Ok(match col.type_code {
        ty::TINY => int(c, 1)?,
        ty::SHORT => int(c, 2)?,
        ty::INT24 => int(c, 3)?,
        ty::LONG => int(c, 4)?,
        ty::LONGLONG => int(c, 8)?,
        ty::FLOAT => Cell::Float(f32::from_bits(c.le(4)? as u32)),
        ty::DOUBLE => Cell::Double(f64::from_bits(c.le(8)?)),
        ty::YEAR => {
            let y = c.u8()?;
            Cell::UInt(if y == 0 { 0 } else { 1900 + u64::from(y) })
        }
        ty::NEWDECIMAL => {
            let (p, s) = ((col.meta >> 8) as u8, (col.meta & 0xff) as u8);
            let (text, used) = short(value::decimal(c.rest(), p, s))?;
            c.take(used)?;
            Cell::Text(text)
        }
        ty::DATE | ty::NEWDATE => {
            let v = c.le(3)?;
            Cell::Text(format!("{:04}-{:02}-{:02}", v >> 9, (v >> 5) & 15, v & 31))
        }
        ty::TIME2 => {
            let (text, used) = short(value::time2(c.rest(), col.meta as u8))?;
            c.take(used)?;
            Cell::Text(text)
        }
        ty::DATETIME2 => {
            let (text, used) = short(value::datetime2(c.rest(), col.meta as u8))?;
            c.take(used)?;
            Cell::Text(text)
        }
        ty::TIMESTAMP2 => {
            let ((s, us), used) = value::timestamp2(c.rest(), col.meta as u8)
                .ok_or_else(|| "value cut short".to_string())?;
            c.take(used)?;
            Cell::Timestamp(s, us)
        }
        ty::TIMESTAMP => Cell::Timestamp(c.le(4)? as u32, 0),
        ty::TIME => {
            let v = c.le(3)?;
            Cell::Text(format!(
                "{:02}:{:02}:{:02}",
                v / 10000,
                (v / 100) % 100,
                v % 100
            ))
        }
        ty::DATETIME => {
            let v = c.le(8)?;
            let (d, t) = (v / 1_000_000, v % 1_000_000);
            Cell::Text(format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                d / 10000,
                (d / 100) % 100,
                d % 100,
                t / 10000,
                (t / 100) % 100,
                t % 100
            ))
        }
        ty::VARCHAR | ty::VAR_STRING => {
            let n = if col.meta < 256 { c.le(1)? } else { c.le(2)? } as usize;
            Cell::Bytes(c.take(n)?.to_vec())
        }
        ty::BIT => {
            let (bits, bytes) = ((col.meta >> 8) as usize, (col.meta & 0xff) as usize);
            Cell::Bytes(c.take(bytes + usize::from(bits > 0))?.to_vec())
        }
        ty::BLOB
        | ty::GEOMETRY
        | ty::JSON
        | ty::VECTOR
        | ty::TINY_BLOB
        | ty::MEDIUM_BLOB
        | ty::LONG_BLOB => {
            let n = c.le(col.meta as usize)? as usize;
            Cell::Bytes(c.take(n)?.to_vec())
        }
        ty::STRING | ty::ENUM | ty::SET => {
            let meta = col.meta;
            let (real, max_len) = if (meta >> 8) & 0x30 != 0x30 {
                (
                    (meta >> 8) as u8 | 0x30,
                    ((((meta >> 4) & 0x300) ^ 0x300) + (meta & 0xff)) as usize,
                )
            } else {
                ((meta >> 8) as u8, (meta & 0xff) as usize)
            };
            match real {
                ty::ENUM => Cell::Enum(c.le(max_len)? as u16),
                ty::SET => Cell::Bytes(c.take(max_len)?.to_vec()),
                _ => {
                    let n = if max_len < 256 { c.le(1)? } else { c.le(2)? } as usize;
                    Cell::Bytes(c.take(n)?.to_vec())
                }
            }
        }
        other => {
            return Err(format!(
                "column type {other} is not supported in row images"
            ))
        }
    })
}

/// Reads one row image. `partial`: the bitmap of JSON columns (one bit per JSON column of the
/// table, in column order) whose value is a diff vector.
fn read_image(
    c: &mut Cursor<'_>,
    tm: &TableMap,
    present: &[u8],
    partial: Option<&[u8]>,
) -> Result<Image, String> {
    let cols: Vec<usize> = (0..tm.columns.len()).filter(|i| bit(present, *i)).collect();
    let nulls = c.take(cols.len().div_ceil(8))?.to_vec();
    let mut image: Image = vec![None; tm.columns.len()];
    for (k, &i) in cols.iter().enumerate() {
        let col = &tm.columns[i];
        let is_diff = partial.is_some_and(|bits| {
            col.type_code == ty::JSON && {
                let nth_json = tm.columns[..i]
                    .iter()
                    .filter(|c| c.type_code == ty::JSON)
                    .count();
                bit(bits, nth_json)
            }
        });
        let cell = if bit(&nulls, k) {
            Ok(Cell::Null)
        } else if is_diff {
            jsondiff::read_vector(c).map(Cell::JsonDiff)
        } else {
            read_cell(c, col)
        };
        image[i] =
            Some(cell.map_err(|e| format!("column {} of `{}`.`{}`: {e}", i + 1, tm.db, tm.table))?);
    }
    Ok(image)
}

/// Reads the `value_options` that open a PARTIAL_UPDATE_ROWS after image and, when JSON
/// columns may hold diffs, the bitmap saying which.
fn read_value_options<'a>(c: &mut Cursor<'a>, tm: &TableMap) -> Result<Option<&'a [u8]>, String> {
    let options = c.lenenc()?;
    if options & !PARTIAL_JSON_UPDATES != 0 {
        return Err(format!(
            "unknown binlog_row_value_options bits {options:#x} in a partial update of `{}`.`{}`",
            tm.db, tm.table
        ));
    }
    if options & PARTIAL_JSON_UPDATES == 0 {
        return Ok(None);
    }
    let json_cols = tm
        .columns
        .iter()
        .filter(|c| c.type_code == ty::JSON)
        .count();
    Ok(Some(c.take(json_cols.div_ceil(8))?))
}

/// The kind and version of a ROWS event type code, if it is one ferry decodes.
pub fn rows_kind(type_code: u8) -> Option<(RowsKind, u8)> {
    Some(match type_code {
        23 | 166 => (RowsKind::Write, 1),
        24 | 167 => (RowsKind::Update, 1),
        25 | 168 => (RowsKind::Delete, 1),
        30 | 169 => (RowsKind::Write, 2),
        31 | 170 => (RowsKind::Update, 2),
        32 | 171 => (RowsKind::Delete, 2),
        PARTIAL_UPDATE_ROWS => (RowsKind::Update, 2),
        _ => return None,
    })
}

/// MariaDB compressed events (`log_bin_compress=ON`, types 165-171).
pub fn is_compressed(type_code: u8) -> bool {
    (165..=171).contains(&type_code)
}

/// Decompresses MariaDB's compressed event data: a header byte `0x80 | alg << 4 | n`, the
/// uncompressed length in `n` big-endian bytes, then the zlib stream.
pub fn mariadb_uncompress(b: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let head = *b.first().ok_or("empty compressed data")?;
    if head & 0x80 == 0 {
        return Err(format!(
            "compressed data starts with {head:#x}, not a compression header"
        ));
    }
    let alg = (head & 0x70) >> 4;
    if alg != 0 {
        return Err(format!("unknown compression algorithm {alg}"));
    }
    let n = (head & 0x07) as usize;
    let len_bytes = b.get(1..1 + n).ok_or("compressed length cut short")?;
    let len = len_bytes.iter().fold(0usize, |a, x| (a << 8) | *x as usize);
    let mut out = Vec::with_capacity(len.min(1 << 30));
    flate2::read::ZlibDecoder::new(&b[1 + n..])
        .take(len as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("zlib: {e}"))?;
    if out.len() != len {
        return Err(format!(
            "decompressed {} bytes, the header says {len}",
            out.len()
        ));
    }
    Ok(out)
}

/// The table id a ROWS event refers to.
pub fn rows_table_id(body: &[u8]) -> Option<u64> {
    let b = body.get(..6)?;
    Some(b.iter().rev().fold(0u64, |a, x| (a << 8) | u64::from(*x)))
}

/// Parses a ROWS event body against its table map.
pub fn parse_rows(type_code: u8, body: &[u8], tm: &TableMap) -> Result<RowsEvent, String> {
    let (kind, version) = rows_kind(type_code)
        .ok_or_else(|| format!("event type {type_code} is not a ROWS event"))?;
    let mut c = Cursor::new(body);
    let table_id = c.le(6)?;
    let _flags = c.le(2)?;
    if version == 2 {
        let extra = c.le(2)? as usize;
        c.take(extra.saturating_sub(2))?;
    }
    let count = c.lenenc()? as usize;
    if count != tm.columns.len() {
        return Err(format!(
            "{count} columns in the row event, {} in the table map of `{}`.`{}`",
            tm.columns.len(),
            tm.db,
            tm.table
        ));
    }
    let present = c.take(count.div_ceil(8))?.to_vec();
    let present_after = if kind == RowsKind::Update {
        c.take(count.div_ceil(8))?.to_vec()
    } else {
        present.clone()
    };
    // MariaDB compressed events: the row data after the bitmaps is compressed.
    let unpacked;
    if is_compressed(type_code) {
        unpacked = mariadb_uncompress(c.rest())?;
        c = Cursor::new(&unpacked);
    }
    let mut rows = Vec::new();
    while !c.rest().is_empty() {
        let row = match kind {
            RowsKind::Write => (None, Some(read_image(&mut c, tm, &present, None)?)),
            RowsKind::Delete => (Some(read_image(&mut c, tm, &present, None)?), None),
            RowsKind::Update => {
                let before = read_image(&mut c, tm, &present, None)?;
                let partial = if type_code == PARTIAL_UPDATE_ROWS {
                    read_value_options(&mut c, tm)?
                } else {
                    None
                };
                let after = read_image(&mut c, tm, &present_after, partial)?;
                (Some(before), Some(after))
            }
        };
        rows.push(row);
    }
    Ok(RowsEvent {
        table_id,
        kind,
        rows,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::binlog::FileReader;
    use std::collections::HashMap;

    /// Every ROWS event of a fixture, decoded with the table maps before it.
    fn decode_file(name: &str) -> Vec<(TableMap, RowsEvent)> {
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common")
            .join(name);
        let data = std::fs::read(p).unwrap();
        let mut maps: HashMap<u64, TableMap> = HashMap::new();
        let mut out = Vec::new();
        for ev in FileReader::new(&data).unwrap() {
            let ev = ev.unwrap();
            match ev.header.type_code {
                19 => {
                    let tm = parse_table_map(ev.body, false).unwrap();
                    maps.insert(tm.table_id, tm);
                }
                t if rows_kind(t).is_some() => {
                    let tm = maps[&rows_table_id(ev.body).unwrap()].clone();
                    let rows =
                        parse_rows(t, ev.body, &tm).unwrap_or_else(|e| panic!("{name}: {e}"));
                    out.push((tm, rows));
                }
                _ => {}
            }
        }
        out
    }

    fn after(r: &RowsEvent, row: usize) -> Vec<Cell> {
        r.rows[row]
            .1
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| c.unwrap())
            .collect()
    }

    #[test]
    fn bit_columns() {
        ferry_shared::conformance_or_skip!();
        let ev = decode_file("mysql_type_bit.000001");
        assert_eq!(
            after(&ev[0].1, 0),
            vec![
                Cell::Bytes(vec![4]),
                Cell::Bytes(b"foo".to_vec()),
                Cell::Bytes(vec![0x20])
            ]
        );
    }

    #[test]
    fn negative_time_beyond_24_hours() {
        ferry_shared::conformance_or_skip!();
        let ev = decode_file("time_issue.000001");
        let cells = after(&ev[0].1, 0);
        assert!(
            cells.contains(&Cell::Text("-507:48:27".into())),
            "{cells:?}"
        );
    }

    #[test]
    fn unsigned_from_optional_metadata() {
        ferry_shared::conformance_or_skip!();
        let ev = decode_file("minimal_row_metadata.000001");
        // A minimal image: columns 1, 3 and 5 (as mariadb-binlog prints: @1, @3, @5); the
        // last is an unsigned INT whose signed reading would be -1064764973.
        let image = ev[0].1.rows[0].1.clone().unwrap();
        assert_eq!(image.iter().filter(|c| c.is_some()).count(), 3);
        assert_eq!(image[1], None);
        assert_eq!(image[4], Some(Cell::UInt(3_230_202_323)), "{image:?}");
    }

    #[test]
    fn enum_string_and_set() {
        ferry_shared::conformance_or_skip!();
        let ev = decode_file("mysql-enum-string-set.000001");
        let write = after(&ev[0].1, 0);
        assert_eq!(write[0], Cell::Bytes("0123456789".repeat(10).into_bytes()));
        let upd = ev.iter().find(|(_, r)| r.kind == RowsKind::Update).unwrap();
        let before: Vec<Cell> = upd.1.rows[0]
            .0
            .clone()
            .unwrap()
            .into_iter()
            .map(|c| c.unwrap())
            .collect();
        let after_ = after(&upd.1, 0);
        assert_eq!((&before[2], &after_[2]), (&Cell::Enum(1), &Cell::Enum(2)));
        assert_eq!(
            (&before[3], &after_[3]),
            (&Cell::Bytes(vec![0b101]), &Cell::Bytes(vec![0b1010]))
        );
    }

    #[test]
    fn mariadb_rows_v1_with_full_metadata() {
        ferry_shared::conformance_or_skip!();
        let ev = decode_file("mariadb-bin.000001");
        let (tm, rows) = &ev[0];
        let names: Vec<&str> = tm
            .columns
            .iter()
            .map(|c| c.name.as_deref().unwrap())
            .collect();
        assert_eq!(names, ["id", "topic", "event_type", "event", "created"]);
        let cells = after(rows, 0);
        assert_eq!(cells[0], Cell::Int(62));
        assert_eq!(cells[1], Cell::Bytes(b"foo".to_vec()));
        assert_eq!(cells[3], Cell::Bytes(b"{\"foo\":1}".to_vec()));
    }

    /// Every fixture's ROWS events decode (JSON partial updates included; compressed payloads
    /// go through the decoder, see decode.rs), and cut bodies are errors, not panics.
    #[test]
    fn all_plain_rows_events_decode_and_cut_ones_fail_cleanly() {
        ferry_shared::conformance_or_skip!();
        for f in [
            "binlog-invisible-columns.000001",
            "json.binlog.000001",
            "json-opaque.binlog",
            "mysql-enum-string-set.000001",
            "mysql_type_bit.000001",
            "minimal_row_metadata.000001",
            "time_issue.000001",
            "mariadb-bin.000001",
            "vector.binlog",
            "update-full-row.binlog",
            "update-partial-row.binlog",
            "write-full-row.binlog",
            "write-partial-row.binlog",
        ] {
            for (tm, r) in decode_file(f) {
                assert!(!r.rows.is_empty(), "{f}");
                let _ = tm;
            }
        }
        let ev = decode_file("mysql_type_bit.000001");
        let tm = &ev[0].0;
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common/mysql_type_bit.000001");
        let data = std::fs::read(p).unwrap();
        let rows_ev = FileReader::new(&data)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| rows_kind(e.header.type_code).is_some())
            .unwrap();
        for cut in 0..rows_ev.body.len() {
            let _ = parse_rows(rows_ev.header.type_code, &rows_ev.body[..cut], tm);
        }
    }
}
