//! MySQL's JSON diffs: what PARTIAL_UPDATE_ROWS events (type 39) carry instead of a whole JSON
//! document when the source runs with `binlog_row_value_options=PARTIAL_JSON`, and how ferry
//! turns them back into SQL.
//!
//! # On the wire
//! A PARTIAL_UPDATE_ROWS event has the ROWS v2 layout. Each after image starts with a packed
//! `value_options` integer; when its PARTIAL_JSON bit (1) is set, a bitmap follows with one bit
//! per JSON column of the table (present in the image or not). A JSON column whose bit is set
//! holds a diff vector instead of a binary document (`Json_diff_vector::write_binary` in
//! MySQL's `sql/json_diff.cc`):
//!
//! ```text
//! u32 length of what follows
//! repeated: u8 operation (0 REPLACE, 1 INSERT, 2 REMOVE)
//!           packed length, path text (`$.a[2]`, `$."b c"`)
//!           packed length, binary JSON value (absent for REMOVE)
//! ```
//!
//! An empty vector means the column did not change.
//!
//! # As SQL
//! The diffs of a column nest, in order, around the column itself:
//! `col = JSON_REMOVE(JSON_REPLACE(col, '$.a', JSON_EXTRACT('26', '$')), '$.b')`. REPLACE is
//! `JSON_REPLACE`; INSERT is `JSON_INSERT` for an object member and `JSON_ARRAY_INSERT` for an
//! array cell (the last path leg decides, as in MySQL's own `apply_json_diffs`); REMOVE is
//! `JSON_REMOVE`. A value goes in as `JSON_EXTRACT('<json text>', '$')`, which both MySQL (JSON
//! column) and MariaDB (LONGTEXT with JSON functions) take as a JSON value, so numbers stay
//! numbers and strings stay strings; MariaDB has no `CAST(.. AS JSON)`.
//!
//! Unlike MySQL's applier, which rejects a diff whose path is missing, the JSON functions skip
//! it silently. And an array INSERT or REMOVE is not idempotent: replaying it shifts the array
//! again, so it relies on the checkpoint moving with the data it covers.

use crate::cursor::Cursor;
use std::fmt::Write;

/// What a diff does at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonDiffOp {
    Replace,
    Insert,
    Remove,
}

/// One change inside a JSON document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonDiff {
    pub op: JsonDiffOp,
    /// The path as MySQL prints it: `$.age`, `$."a b"[3]`.
    pub path: String,
    /// The new value as JSON text; `None` for [`JsonDiffOp::Remove`].
    pub value: Option<String>,
}

/// Reads one column's diff vector at the cursor: its 4-byte length, then the diffs.
pub(crate) fn read_vector(c: &mut Cursor<'_>) -> Result<Vec<JsonDiff>, String> {
    let len = c.le(4)? as usize;
    parse_diffs(c.take(len)?)
}

/// Parses the diffs of a vector (the bytes after its length).
pub fn parse_diffs(b: &[u8]) -> Result<Vec<JsonDiff>, String> {
    let mut c = Cursor::new(b);
    let mut out = Vec::new();
    while c.left() > 0 {
        let n = out.len() + 1;
        let op = match c.u8()? {
            0 => JsonDiffOp::Replace,
            1 => JsonDiffOp::Insert,
            2 => JsonDiffOp::Remove,
            x => return Err(format!("JSON diff {n}: unknown operation {x}")),
        };
        let len = c.lenenc().map_err(|e| format!("JSON diff {n} path: {e}"))? as usize;
        let raw = c
            .take(len)
            .map_err(|e| format!("JSON diff {n} path: {e}"))?;
        let path = std::str::from_utf8(raw)
            .map_err(|_| format!("JSON diff {n}: the path is not UTF-8"))?
            .to_string();
        last_leg_is_array_cell(&path).map_err(|e| format!("JSON diff {n}: path `{path}`: {e}"))?;
        let value = if op == JsonDiffOp::Remove {
            None
        } else {
            let len = c
                .lenenc()
                .map_err(|e| format!("JSON diff {n} value: {e}"))? as usize;
            let bin = c
                .take(len)
                .map_err(|e| format!("JSON diff {n} value: {e}"))?;
            if bin.is_empty() {
                return Err(format!("JSON diff {n} at `{path}`: an empty value"));
            }
            Some(crate::json::to_text(bin).map_err(|e| format!("JSON diff {n} at `{path}`: {e}"))?)
        };
        out.push(JsonDiff { op, path, value });
    }
    Ok(out)
}

/// Checks a diff path (`$`, then `.member`, `."quoted member"` or `[index]` legs, no
/// wildcards) and says whether its last leg is an array cell. The root alone is not a diff
/// path: MySQL never logs one.
fn last_leg_is_array_cell(path: &str) -> Result<bool, String> {
    let b = path.as_bytes();
    if b.first() != Some(&b'$') {
        return Err("does not start with `$`".into());
    }
    let mut i = 1;
    let mut array = None;
    while i < b.len() {
        match b[i] {
            b'.' => {
                i += 1;
                if b.get(i) == Some(&b'"') {
                    i += 1;
                    loop {
                        match b.get(i) {
                            None => return Err("an unterminated quoted member".into()),
                            Some(b'\\') => i += 2,
                            Some(b'"') => break,
                            Some(_) => i += 1,
                        }
                    }
                    i += 1;
                } else {
                    let start = i;
                    while i < b.len() && !matches!(b[i], b'.' | b'[' | b'"' | b'*' | b' ') {
                        i += 1;
                    }
                    if i == start {
                        return Err("an empty or wildcard member".into());
                    }
                }
                array = Some(false);
            }
            b'[' => {
                let end = b[i..]
                    .iter()
                    .position(|&x| x == b']')
                    .ok_or("an unterminated array index")?;
                let index = &path[i + 1..i + end];
                let ok = !index.trim().is_empty()
                    && index
                        .bytes()
                        .all(|x| x.is_ascii_alphanumeric() || x == b' ' || x == b'-');
                if !ok {
                    return Err(format!("array index `{index}` is not a cell"));
                }
                i += end + 1;
                array = Some(true);
            }
            x => return Err(format!("unexpected `{}` at {i}", x as char)),
        }
    }
    array.ok_or_else(|| "the root is not a diff path".into())
}

/// A string as an SQL literal that means the same under any `sql_mode`: quoted when it is
/// plain ASCII without quotes or backslashes, else hex with a utf8mb4 introducer (never the
/// binary charset: MySQL rejects binary strings as JSON).
pub fn text_literal(s: &str, out: &mut String) {
    if s.bytes()
        .all(|x| (0x20..0x7f).contains(&x) && x != b'\'' && x != b'\\')
    {
        out.push('\'');
        out.push_str(s);
        out.push('\'');
    } else {
        out.push_str("_utf8mb4 0x");
        for x in s.bytes() {
            let _ = write!(out, "{x:02x}");
        }
    }
}

/// Writes `column` (an already quoted identifier) with `diffs` applied, in order.
pub fn sql_expr(column: &str, diffs: &[JsonDiff], out: &mut String) -> Result<(), String> {
    let mut expr = column.to_string();
    for d in diffs {
        let func = match d.op {
            JsonDiffOp::Replace => "JSON_REPLACE",
            JsonDiffOp::Insert if last_leg_is_array_cell(&d.path)? => "JSON_ARRAY_INSERT",
            JsonDiffOp::Insert => "JSON_INSERT",
            JsonDiffOp::Remove => "JSON_REMOVE",
        };
        let mut next = format!("{func}({expr}, ");
        text_literal(&d.path, &mut next);
        match (&d.value, d.op) {
            (_, JsonDiffOp::Remove) => {}
            (Some(v), _) => {
                next.push_str(", JSON_EXTRACT(");
                text_literal(v, &mut next);
                next.push_str(", '$')");
            }
            (None, _) => return Err(format!("JSON diff at `{}` has no value", d.path)),
        }
        next.push(')');
        expr = next;
    }
    out.push_str(&expr);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn diff(op: JsonDiffOp, path: &str, value: Option<&str>) -> JsonDiff {
        JsonDiff {
            op,
            path: path.into(),
            value: value.map(String::from),
        }
    }

    #[test]
    fn a_vector_of_every_operation_parses() {
        let mut b = vec![0u8, 5];
        b.extend(b"$.age");
        b.extend([3, 0x05, 26, 0]); // INT16 26
        b.push(1);
        b.push(6);
        b.extend(b"$.a[1]");
        b.extend([4, 0x0c, 2, b'h', b'i']); // "hi"
        b.push(2);
        b.push(9);
        b.extend(b"$.\"a b\".c");
        assert_eq!(
            parse_diffs(&b).unwrap(),
            vec![
                diff(JsonDiffOp::Replace, "$.age", Some("26")),
                diff(JsonDiffOp::Insert, "$.a[1]", Some("\"hi\"")),
                diff(JsonDiffOp::Remove, "$.\"a b\".c", None),
            ]
        );
        for cut in 0..b.len() {
            let _ = parse_diffs(&b[..cut]);
        }
        assert!(parse_diffs(&b[..b.len() - 1]).is_err());
        assert!(parse_diffs(&[3, 1, b'$']).is_err(), "unknown operation");
        assert!(parse_diffs(&[2, 1, b'$']).is_err(), "the root");
        assert!(
            parse_diffs(&[2, 4, b'$', b'.', b'*', b'a']).is_err(),
            "wildcard"
        );
        assert!(
            parse_diffs(&[0, 3, b'$', b'.', b'a', 0]).is_err(),
            "empty value"
        );
        assert_eq!(parse_diffs(&[]).unwrap(), vec![]);
    }

    #[test]
    fn paths_know_their_last_leg() {
        assert!(!last_leg_is_array_cell("$.a").unwrap());
        assert!(last_leg_is_array_cell("$.a[3]").unwrap());
        assert!(last_leg_is_array_cell("$[last]").unwrap());
        assert!(last_leg_is_array_cell("$[last-1]").unwrap());
        assert!(!last_leg_is_array_cell("$[0].\"x]\"").unwrap());
        assert!(!last_leg_is_array_cell("$.\"q\\\"uote\"").unwrap());
        for bad in [
            "", "$", "a.b", "$.", "$[*]", "$**.a", "$.\"open", "$[1", "$[]",
        ] {
            assert!(last_leg_is_array_cell(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn diffs_nest_in_order_as_json_functions() {
        let diffs = [
            diff(JsonDiffOp::Replace, "$.age", Some("26")),
            diff(JsonDiffOp::Insert, "$.tags[0]", Some("\"new\"")),
            diff(JsonDiffOp::Insert, "$.o", Some("{\"k\": null}")),
            diff(JsonDiffOp::Remove, "$.old", None),
        ];
        let mut s = String::new();
        sql_expr("`j`", &diffs, &mut s).unwrap();
        assert_eq!(
            s,
            "JSON_REMOVE(JSON_INSERT(JSON_ARRAY_INSERT(JSON_REPLACE(`j`, '$.age', \
             JSON_EXTRACT('26', '$')), '$.tags[0]', JSON_EXTRACT('\"new\"', '$')), '$.o', \
             JSON_EXTRACT('{\"k\": null}', '$')), '$.old')"
        );
    }

    #[test]
    fn unsafe_text_goes_in_as_hex() {
        let mut s = String::new();
        text_literal("it's", &mut s);
        assert_eq!(s, "_utf8mb4 0x69742773");
        s.clear();
        text_literal("\"a\\\"b\"", &mut s);
        assert_eq!(s, "_utf8mb4 0x22615c226222");
        s.clear();
        text_literal("é", &mut s);
        assert_eq!(s, "_utf8mb4 0xc3a9");
    }
}
