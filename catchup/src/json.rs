//! MySQL's binary JSON (the JSON column format in MySQL row images) to JSON text.
//!
//! Values are found by their offsets, never by reading sequentially: MySQL 8 updates JSON in
//! place and can leave stale bytes between values. Every offset is bounds-checked; malformed
//! input is an error, never a panic. Opaque scalars print as MySQL prints them: DATE,
//! DATETIME/TIMESTAMP and TIME as text, DECIMAL as its digits, other types as
//! `base64:type<N>:<data>`.

use std::fmt::Write;

const SMALL_OBJECT: u8 = 0x00;
const LARGE_OBJECT: u8 = 0x01;
const SMALL_ARRAY: u8 = 0x02;
const LARGE_ARRAY: u8 = 0x03;
const LITERAL: u8 = 0x04;
const INT16: u8 = 0x05;
const UINT16: u8 = 0x06;
const INT32: u8 = 0x07;
const UINT32: u8 = 0x08;
const INT64: u8 = 0x09;
const UINT64: u8 = 0x0a;
const DOUBLE: u8 = 0x0b;
const STRING: u8 = 0x0c;
const OPAQUE: u8 = 0x0f;

/// Converts a binary JSON document to JSON text. An empty value is JSON `null` (what MySQL
/// writes for a NOT NULL JSON column an INSERT left out).
pub fn to_text(b: &[u8]) -> Result<String, String> {
    let mut out = String::new();
    match b.split_first() {
        None => out.push_str("null"),
        Some((&t, rest)) => value(t, rest, &mut out, 0)?,
    }
    Ok(out)
}

fn get(b: &[u8], at: usize, n: usize) -> Result<&[u8], String> {
    b.get(at..at + n)
        .ok_or_else(|| format!("needs {n} bytes at {at} of {}", b.len()))
}

fn le(b: &[u8], at: usize, n: usize) -> Result<u64, String> {
    Ok(get(b, at, n)?
        .iter()
        .rev()
        .fold(0u64, |a, x| (a << 8) | u64::from(*x)))
}

/// A variable-length length: 7 bits per byte, least significant first.
fn varlen(b: &[u8], at: usize) -> Result<(usize, usize), String> {
    let mut v = 0usize;
    for i in 0..5 {
        let x = *b.get(at + i).ok_or("a length is cut short")?;
        v |= ((x & 0x7f) as usize) << (7 * i);
        if x & 0x80 == 0 {
            return Ok((v, i + 1));
        }
    }
    Err("a length longer than 5 bytes".into())
}

fn push_string(out: &mut String, s: &[u8]) {
    out.push('"');
    for ch in String::from_utf8_lossy(s).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn value(t: u8, b: &[u8], out: &mut String, depth: usize) -> Result<(), String> {
    if depth > 100 {
        return Err("JSON nested more than 100 levels".into());
    }
    match t {
        SMALL_OBJECT | LARGE_OBJECT => container(b, t == LARGE_OBJECT, true, out, depth),
        SMALL_ARRAY | LARGE_ARRAY => container(b, t == LARGE_ARRAY, false, out, depth),
        LITERAL => {
            out.push_str(match get(b, 0, 1)?[0] {
                0 => "null",
                1 => "true",
                2 => "false",
                x => return Err(format!("unknown literal {x}")),
            });
            Ok(())
        }
        INT16 => {
            let _ = write!(out, "{}", le(b, 0, 2)? as u16 as i16);
            Ok(())
        }
        UINT16 => {
            let _ = write!(out, "{}", le(b, 0, 2)?);
            Ok(())
        }
        INT32 => {
            let _ = write!(out, "{}", le(b, 0, 4)? as u32 as i32);
            Ok(())
        }
        UINT32 => {
            let _ = write!(out, "{}", le(b, 0, 4)?);
            Ok(())
        }
        INT64 => {
            let _ = write!(out, "{}", le(b, 0, 8)? as i64);
            Ok(())
        }
        UINT64 => {
            let _ = write!(out, "{}", le(b, 0, 8)?);
            Ok(())
        }
        DOUBLE => {
            let d = f64::from_bits(le(b, 0, 8)?);
            if d.is_finite() && d == d.trunc() && d.abs() < 1e15 {
                let _ = write!(out, "{d:.1}");
            } else {
                let _ = write!(out, "{d}");
            }
            Ok(())
        }
        STRING => {
            let (n, used) = varlen(b, 0)?;
            push_string(out, get(b, used, n)?);
            Ok(())
        }
        OPAQUE => opaque(b, out),
        x => Err(format!("unknown JSON value type {x:#x}")),
    }
}

fn container(
    b: &[u8],
    large: bool,
    object: bool,
    out: &mut String,
    depth: usize,
) -> Result<(), String> {
    let w = if large { 4 } else { 2 };
    let count = le(b, 0, w)? as usize;
    let size = le(b, w, w)? as usize;
    if size > b.len() {
        return Err(format!("a container of {size} bytes in {}", b.len()));
    }
    let b = &b[..size];
    let key_entries = 2 * w;
    let key_entry = w + 2;
    let value_entry = 1 + w;
    let values_at = key_entries + if object { count * key_entry } else { 0 };
    if values_at + count * value_entry > size {
        return Err(format!("{count} entries cannot fit in {size} bytes"));
    }
    out.push(if object { '{' } else { '[' });
    for i in 0..count {
        if i > 0 {
            out.push_str(", ");
        }
        if object {
            let e = key_entries + i * key_entry;
            let off = le(b, e, w)? as usize;
            let len = le(b, e + w, 2)? as usize;
            push_string(out, get(b, off, len)?);
            out.push_str(": ");
        }
        let e = values_at + i * value_entry;
        let t = get(b, e, 1)?[0];
        let inlined = match t {
            LITERAL | INT16 | UINT16 => true,
            INT32 | UINT32 => large,
            _ => false,
        };
        if inlined {
            value(t, get(b, e + 1, w)?, out, depth + 1)?;
        } else {
            let off = le(b, e + 1, w)? as usize;
            if off >= size {
                return Err(format!(
                    "a value at {off} outside its {size}-byte container"
                ));
            }
            value(t, &b[off..], out, depth + 1)?;
        }
    }
    out.push(if object { '}' } else { ']' });
    Ok(())
}

fn opaque(b: &[u8], out: &mut String) -> Result<(), String> {
    let field_type = get(b, 0, 1)?[0];
    let (n, used) = varlen(b, 1)?;
    let data = get(b, 1 + used, n)?;
    match field_type {
        // DECIMAL: precision, scale, then the binary decimal.
        246 if data.len() >= 2 => {
            let (text, _) = crate::value::decimal(&data[2..], data[0], data[1])
                .ok_or("a DECIMAL is cut short")?;
            push_string(out, text.as_bytes());
        }
        // DATE, DATETIME, TIMESTAMP: packed 8-byte datetime.
        10 | 12 | 7 if data.len() >= 8 => {
            let packed = le(data, 0, 8)? as i64;
            let p = packed.unsigned_abs();
            let (int, frac) = (p >> 24, p % (1 << 24));
            let ymd = int >> 17;
            let ym = ymd >> 5;
            let hms = int % (1 << 17);
            let date = format!("{:04}-{:02}-{:02}", ym / 13, ym % 13, ymd % (1 << 5));
            let text = if field_type == 10 {
                date
            } else {
                format!(
                    "{date} {:02}:{:02}:{:02}.{frac:06}",
                    hms >> 12,
                    (hms >> 6) % (1 << 6),
                    hms % (1 << 6)
                )
            };
            push_string(out, text.as_bytes());
        }
        // TIME: packed 8-byte time.
        11 if data.len() >= 8 => {
            let packed = le(data, 0, 8)? as i64;
            let neg = packed < 0;
            let p = packed.unsigned_abs();
            let (int, frac) = (p >> 24, p % (1 << 24));
            let text = format!(
                "{}{:02}:{:02}:{:02}.{frac:06}",
                if neg { "-" } else { "" },
                (int >> 12) % (1 << 10),
                (int >> 6) % (1 << 6),
                int % (1 << 6)
            );
            push_string(out, text.as_bytes());
        }
        t => {
            let text = format!("base64:type{t}:{}", base64(data));
            push_string(out, text.as_bytes());
        }
    }
    Ok(())
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for chunk in data.chunks(3) {
        let n = chunk.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)) << (8 * (3 - chunk.len()));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::binlog::FileReader;
    use crate::rows::{parse_rows, parse_table_map, rows_kind, rows_table_id, Cell};

    fn fixture(path: &str) -> Vec<u8> {
        std::fs::read(
            ferry_shared::conformance::shared_root()
                .join("conformance/binlog")
                .join(path),
        )
        .unwrap()
    }

    /// The JSON cells of every WRITE_ROWS event of a fixture file, as parsed JSON values.
    fn json_writes(file: &str) -> Vec<serde_json::Value> {
        let data = fixture(&format!("rust_mysql_common/{file}"));
        let mut maps = std::collections::HashMap::new();
        let mut out = Vec::new();
        for ev in FileReader::new(&data).unwrap() {
            let ev = ev.unwrap();
            if ev.header.type_code == 19 {
                let tm = parse_table_map(ev.body, false).unwrap();
                maps.insert(tm.table_id, tm);
            } else if let Some((crate::rows::RowsKind::Write, _)) = rows_kind(ev.header.type_code) {
                let tm = &maps[&rows_table_id(ev.body).unwrap()];
                let r = parse_rows(ev.header.type_code, ev.body, tm).unwrap();
                for (_, after) in r.rows {
                    for (col, cell) in tm.columns.iter().zip(after.unwrap()) {
                        if let (245, Some(Cell::Bytes(b))) = (col.type_code, cell) {
                            let text = to_text(&b).unwrap();
                            out.push(
                                serde_json::from_str(&text)
                                    .unwrap_or_else(|e| panic!("{text}: {e}")),
                            );
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn opaque_scalars_print_as_mysql_does() {
        ferry_shared::conformance_or_skip!();
        let got = json_writes("json-opaque.binlog");
        let want: Vec<serde_json::Value> = [
            r#"{"a":"base64:type15:VQ=="}"#,
            r#"{"b":"2012-03-18"}"#,
            r#"{"c":"2012-03-18 11:30:45.000000"}"#,
            r#"{"c":"87:31:46.654321"}"#,
            r#"{"d":"123.456"}"#,
            r#"{"e":"9.00"}"#,
            r#"{"e":[0,1,true,false]}"#,
            r#"{"e":null}"#,
        ]
        .iter()
        .map(|s| serde_json::from_str(s).unwrap())
        .collect();
        assert_eq!(&got[..want.len()], &want[..]);
    }

    #[test]
    fn documents_from_a_mysql_8_binlog() {
        ferry_shared::conformance_or_skip!();
        let got = json_writes("json.binlog.000001");
        assert_eq!(
            got[0],
            serde_json::json!({"age": 24, "data": "xxxxxxxxxx", "name": "Joe"})
        );
    }

    #[test]
    fn sparse_documents_are_read_by_offsets() {
        ferry_shared::conformance_or_skip!();
        for f in [
            "vectors/jsonb_after_json_remove_mysql57.bin",
            "vectors/jsonb_after_json_remove_mysql80.bin",
        ] {
            let text = to_text(&fixture(f)).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let keys = v.as_object().expect("an object");
            assert!(
                !keys.contains_key("17fc9889474028063990914001f6854f6b8b5784"),
                "{f}"
            );
            assert!(
                keys.contains_key("1f3a2ea5bc1f60258df20521bee9ac636df69a3a"),
                "{f}"
            );
        }
    }

    #[test]
    fn malformed_input_is_an_error() {
        ferry_shared::conformance_or_skip!();
        let doc = fixture("vectors/jsonb_after_json_remove_mysql80.bin");
        for cut in 0..doc.len().min(400) {
            let _ = to_text(&doc[..cut]);
        }
        assert!(to_text(&[0x0c, 0x85]).is_err());
        assert!(to_text(&[0x02, 5, 0, 200, 0]).is_err());
        assert_eq!(to_text(&[]).unwrap(), "null");
    }
}
