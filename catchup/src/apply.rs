//! Turning decoded row changes into statements for the target.
//!
//! Safe mode (the only mode so far): a WRITE becomes `REPLACE`, an UPDATE becomes `DELETE` of
//! the old key then `REPLACE` of the new row, a DELETE deletes by key — so replaying changes
//! that were already applied (after a restart between checkpoint and crash) converges to the
//! same rows instead of failing or doubling. Rows map to target columns by name (from the
//! table map's COLUMN_NAME metadata), so a target with more columns keeps their defaults.
//! Tables without a key are matched on every column (`<=>`, one row at a time).
//!
//! An UPDATE whose after image is not a whole row cannot be replayed as a REPLACE: the columns
//! it leaves out (`binlog_row_image=MINIMAL`) or carries as JSON diffs (PARTIAL_UPDATE_ROWS,
//! [`crate::jsondiff`]) must keep or build on the target's current values. Such a row becomes
//! `UPDATE .. SET <present columns> WHERE <key from the before image>`, a JSON diff column
//! `col = JSON_REPLACE(col, ..)` and so on. It changes nothing when the row is missing on the
//! target, where DELETE + REPLACE would have recreated it.

use crate::jsondiff;
use crate::rows::{ty, Cell, Column, RowsEvent, RowsKind, TableMap};
use ferry_shared::ident::{push_quoted, quote_ident};
use std::fmt::Write;

/// How to write changes to one table.
#[derive(Debug, Clone)]
pub struct TargetTable {
    /// `db`.`table` on the target.
    pub qualified: String,
    /// Column names in table-map order (the source's columns).
    pub columns: Vec<String>,
    /// Indexes (into `columns`) of the key used to find rows; empty: no key.
    pub key: Vec<usize>,
    /// Columns (same indexes) that are generated on the target: never written, the target
    /// computes them (a missing entry: not generated).
    pub generated: Vec<bool>,
    /// Fixed-size binary columns (BINARY(n), INET6, UUID) on the target: their byte size
    /// (0: other). Row images drop such values' trailing zero bytes; INET6 and UUID do not
    /// pad them back on their own.
    pub fixed_binary: Vec<usize>,
    /// Integer columns that are UNSIGNED on the target: used when the binlog does not say
    /// (no SIGNEDNESS metadata, e.g. MariaDB's default binlog_row_metadata=NO_LOG).
    pub unsigned: Vec<bool>,
}

impl TargetTable {
    fn is_generated(&self, i: usize) -> bool {
        self.generated.get(i).copied().unwrap_or(false)
    }

    /// The cell as the target needs it: fixed-size binaries padded with zero bytes; a
    /// negative integer read without signedness metadata, of a column the target has
    /// UNSIGNED, taken as the unsigned value of its width.
    fn cell<'a>(&self, i: usize, col: &Column, cell: &'a Cell) -> std::borrow::Cow<'a, Cell> {
        use std::borrow::Cow;
        match (cell, self.fixed_binary.get(i).copied().unwrap_or(0)) {
            (Cell::Bytes(b), n) if b.len() < n => {
                let mut padded = b.clone();
                padded.resize(n, 0);
                Cow::Owned(Cell::Bytes(padded))
            }
            (Cell::Int(v), _)
                if *v < 0
                    && col.unsigned.is_none()
                    && self.unsigned.get(i).copied().unwrap_or(false) =>
            {
                let bits = match col.type_code {
                    ty::TINY => 8,
                    ty::SHORT => 16,
                    ty::INT24 => 24,
                    ty::LONG => 32,
                    _ => 64,
                };
                let mask = if bits == 64 {
                    u64::MAX
                } else {
                    (1u64 << bits) - 1
                };
                Cow::Owned(Cell::UInt((*v as u64) & mask))
            }
            _ => Cow::Borrowed(cell),
        }
    }
}

fn push_hex(out: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if b.is_empty() {
        out.push_str("''");
        return;
    }
    out.reserve(2 + 2 * b.len());
    out.push_str("0x");
    for &x in b {
        out.push(DIGITS[usize::from(x >> 4)] as char);
        out.push(DIGITS[usize::from(x & 15)] as char);
    }
}

/// The SQL literal of a cell of `col` (session time zone `+00:00`).
pub fn literal(cell: &Cell, col: &Column, out: &mut String) -> Result<(), String> {
    match cell {
        Cell::Null => out.push_str("NULL"),
        Cell::Int(v) => out.push_str(itoa::Buffer::new().format(*v)),
        Cell::UInt(v) => out.push_str(itoa::Buffer::new().format(*v)),
        Cell::Float(v) => {
            let _ = write!(out, "{v:?}");
        }
        Cell::Double(v) => {
            let _ = write!(out, "{v:?}");
        }
        Cell::Text(t) => push_quoted(out, t),
        Cell::Timestamp(0, 0) => out.push_str("'0000-00-00 00:00:00'"),
        Cell::Timestamp(s, us) => {
            let _ = write!(out, "FROM_UNIXTIME({s}.{us:06})");
        }
        Cell::Enum(i) => {
            let _ = write!(out, "{i}");
        }
        Cell::JsonDiff(_) => {
            return Err(
                "a JSON diff is a change to a column, not a value: only an UPDATE can apply it"
                    .into(),
            )
        }
        Cell::Bytes(b) => match col.type_code {
            ty::JSON => {
                let text = crate::json::to_text(b)?;
                out.push_str("_utf8mb4 ");
                push_hex(out, text.as_bytes());
            }
            ty::BIT => {
                let v = b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
                let _ = write!(out, "{v}");
            }
            ty::STRING if (col.meta >> 8) as u8 == ty::SET => {
                let v = b.iter().rev().fold(0u64, |a, x| (a << 8) | u64::from(*x));
                let _ = write!(out, "{v}");
            }
            // Text in most columns: an escaped literal is half the size of hex.
            _ => match std::str::from_utf8(b) {
                Ok(t) => {
                    out.push_str("_binary");
                    push_quoted(out, t);
                }
                Err(_) => {
                    out.push_str("_binary ");
                    push_hex(out, b);
                }
            },
        },
    }
    Ok(())
}

/// The insert column list and the `(v, ...)` tuple of a whole-row image.
pub fn row_values(
    image: &[Option<Cell>],
    tm: &TableMap,
    t: &TargetTable,
) -> Result<(Vec<String>, String), String> {
    let mut cols = Vec::new();
    let mut vals = String::from("(");
    for (i, cell) in image.iter().enumerate() {
        let Some(cell) = cell else { continue };
        if t.is_generated(i) {
            continue;
        }
        if !cols.is_empty() {
            vals.push(',');
        }
        cols.push(quote_ident(&t.columns[i]));
        literal(&t.cell(i, &tm.columns[i], cell), &tm.columns[i], &mut vals)?;
    }
    vals.push(')');
    Ok((cols, vals))
}

/// The key's literal values in `image` (`None`: a key column is missing), for batching
/// changes by key: `v` for a one-column key, `(v,w)` otherwise.
pub fn key_tuple(
    image: &[Option<Cell>],
    tm: &TableMap,
    t: &TargetTable,
) -> Result<Option<String>, String> {
    let mut out = String::new();
    let many = t.key.len() > 1;
    if many {
        out.push('(');
    }
    for (n, &i) in t.key.iter().enumerate() {
        let Some(cell) = image.get(i).and_then(|c| c.as_ref()) else {
            return Ok(None);
        };
        if matches!(cell, Cell::Null | Cell::JsonDiff(_)) {
            return Ok(None);
        }
        if n > 0 {
            out.push(',');
        }
        literal(&t.cell(i, &tm.columns[i], cell), &tm.columns[i], &mut out)?;
    }
    if many {
        out.push(')');
    }
    Ok(Some(out))
}

/// The quoted key columns: `k` or `(a,b)`, matching [`key_tuple`].
pub fn key_columns(t: &TargetTable) -> String {
    let cols: Vec<String> = t.key.iter().map(|&i| quote_ident(&t.columns[i])).collect();
    if cols.len() == 1 {
        cols[0].clone()
    } else {
        format!("({})", cols.join(","))
    }
}

/// `all_key`: every key column must be in the image (an UPDATE in place must not match on a
/// part of the key).
fn where_clause(
    image: &[Option<Cell>],
    tm: &TableMap,
    t: &TargetTable,
    all_key: bool,
) -> Result<String, String> {
    let idx: Vec<usize> = if t.key.is_empty() {
        (0..image.len()).filter(|&i| !t.is_generated(i)).collect()
    } else {
        t.key.clone()
    };
    let mut w = String::new();
    for i in idx {
        let Some(cell) = image.get(i).and_then(|c| c.as_ref()) else {
            if all_key && !t.key.is_empty() {
                return Err(format!(
                    "the before image of an update of {} lacks key column {}: the source's key differs from the target's",
                    t.qualified,
                    quote_ident(t.columns.get(i).map_or("?", String::as_str))
                ));
            }
            continue;
        };
        if !w.is_empty() {
            w.push_str(" AND ");
        }
        w.push_str(&quote_ident(&t.columns[i]));
        w.push_str(" <=> ");
        literal(&t.cell(i, &tm.columns[i], cell), &tm.columns[i], &mut w)?;
    }
    if w.is_empty() {
        return Err(format!("no column of {} to find the row by", t.qualified));
    }
    Ok(w)
}

/// Does this after image leave columns out or carry JSON diffs (so it is not a whole row)?
fn is_partial(image: &[Option<Cell>]) -> bool {
    image
        .iter()
        .any(|c| matches!(c, None | Some(Cell::JsonDiff(_))))
}

/// `UPDATE .. SET <after image's columns> WHERE <before image's key>`; `None` when the after
/// image changes nothing (only unchanged JSON columns).
fn update_in_place(
    before: &[Option<Cell>],
    after: &[Option<Cell>],
    tm: &TableMap,
    t: &TargetTable,
    limit: &str,
) -> Result<Option<String>, String> {
    let mut set = String::new();
    for (i, cell) in after.iter().enumerate() {
        let Some(cell) = cell else { continue };
        if matches!(cell, Cell::JsonDiff(d) if d.is_empty()) || t.is_generated(i) {
            continue;
        }
        if !set.is_empty() {
            set.push_str(", ");
        }
        let (Some(name), Some(source_col)) = (t.columns.get(i), tm.columns.get(i)) else {
            return Err(format!(
                "column {} of an update of {} is not in its table map",
                i + 1,
                t.qualified
            ));
        };
        let col = quote_ident(name);
        set.push_str(&col);
        set.push_str(" = ");
        match cell {
            Cell::JsonDiff(diffs) => jsondiff::sql_expr(&col, diffs, &mut set),
            _ => literal(&t.cell(i, source_col, cell), source_col, &mut set),
        }
        .map_err(|e| format!("column {col} of {}: {e}", t.qualified))?;
    }
    if set.is_empty() {
        return Ok(None);
    }
    Ok(Some(format!(
        "UPDATE {} SET {set} WHERE {}{limit}",
        t.qualified,
        where_clause(before, tm, t, true)?
    )))
}

/// Statements applying `ev` to `t` in safe mode (whole rows) or in place (partial after
/// images of updates).
pub fn statements(ev: &RowsEvent, tm: &TableMap, t: &TargetTable) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let limit = if t.key.is_empty() { " LIMIT 1" } else { "" };
    for (before, after) in &ev.rows {
        if let (RowsKind::Update, Some(b), Some(a)) = (ev.kind, before, after) {
            if is_partial(a) {
                out.extend(update_in_place(b, a, tm, t, limit)?);
                continue;
            }
        }
        if let (RowsKind::Update | RowsKind::Delete, Some(b)) = (ev.kind, before) {
            out.push(format!(
                "DELETE FROM {} WHERE {}{limit}",
                t.qualified,
                where_clause(b, tm, t, false)?
            ));
        }
        if let (RowsKind::Update | RowsKind::Write, Some(a)) = (ev.kind, after) {
            let (cols, vals) = row_values(a, tm, t)?;
            let verb = if t.key.is_empty() {
                "INSERT"
            } else {
                "REPLACE"
            };
            out.push(format!(
                "{verb} INTO {} ({}) VALUES {vals}",
                t.qualified,
                cols.join(",")
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::decode::{decode_file, Change};
    use crate::jsondiff::{JsonDiff, JsonDiffOp};
    use std::sync::Arc;

    /// The ROWS events of json.binlog.000001, through the decode path catch-up uses: three
    /// WRITEs, a full UPDATE, then a PARTIAL_UPDATE (`REPLACE $.age`, key-only before image).
    fn json_fixture() -> Vec<(Arc<TableMap>, RowsEvent)> {
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common/json.binlog.000001");
        decode_file(&std::fs::read(p).unwrap())
            .unwrap()
            .into_iter()
            .filter_map(|c| match c {
                Change::Rows { table, event } => Some((table, event)),
                _ => None,
            })
            .collect()
    }

    fn target(key: Vec<usize>) -> TargetTable {
        TargetTable {
            generated: vec![],
            fixed_binary: vec![],
            unsigned: vec![],
            qualified: "`mysql`.`t`".into(),
            columns: ["id", "json_col", "name", "age"].map(String::from).to_vec(),
            key,
        }
    }

    #[test]
    fn strings_are_escaped_literals_and_other_bytes_hex() {
        let mut out = String::new();
        push_quoted(&mut out, "a'b\\c\0d\ne\rf\u{1a}g ü");
        assert_eq!(out, "'a\\'b\\\\c\\0d\\ne\\rf\\Zg ü'");
        let col = Column {
            type_code: ty::VARCHAR,
            meta: 100,
            nullable: true,
            unsigned: None,
            name: None,
        };
        let mut out = String::new();
        literal(&Cell::Bytes(vec![0xff, 0x00, b'a']), &col, &mut out).unwrap();
        assert_eq!(out, "_binary 0xff0061");
        let mut out = String::new();
        literal(&Cell::Bytes(b"it's".to_vec()), &col, &mut out).unwrap();
        assert_eq!(out, "_binary'it\\'s'");
    }

    #[test]
    fn json_diffs_become_an_update_in_place() {
        ferry_shared::conformance_or_skip!();
        let events = json_fixture();
        let (tm, ev) = events.last().unwrap();
        let sql = statements(ev, tm, &target(vec![0])).unwrap();
        assert_eq!(sql.len(), 6);
        assert_eq!(
            sql[0],
            "UPDATE `mysql`.`t` SET `json_col` = JSON_REPLACE(`json_col`, '$.age', \
             JSON_EXTRACT('26', '$')), `name` = _binary'Joe', `age` = 26 WHERE `id` <=> 1"
        );
        assert!(
            sql[5].ends_with(
                "JSON_EXTRACT('42', '$')), `name` = _binary'Pete', `age` = 42 WHERE `id` <=> 6"
            ),
            "{}",
            sql[5]
        );
    }

    #[test]
    fn whole_row_updates_stay_delete_and_replace() {
        ferry_shared::conformance_or_skip!();
        let events = json_fixture();
        let (tm, ev) = events
            .iter()
            .find(|(_, e)| e.kind == RowsKind::Update)
            .unwrap();
        let sql = statements(ev, tm, &target(vec![0])).unwrap();
        assert_eq!(sql.len(), 12);
        assert_eq!(sql[0], "DELETE FROM `mysql`.`t` WHERE `id` <=> 1");
        assert!(
            sql[1].starts_with(
                "REPLACE INTO `mysql`.`t` (`id`,`json_col`,`name`,`age`) VALUES (1,_utf8mb4 0x"
            ),
            "{}",
            sql[1]
        );
    }

    fn one_update(before: Vec<Option<Cell>>, after: Vec<Option<Cell>>) -> RowsEvent {
        RowsEvent {
            table_id: 1,
            kind: RowsKind::Update,
            rows: vec![(Some(before), Some(after))],
        }
    }

    #[test]
    fn minimal_images_update_only_their_columns() {
        ferry_shared::conformance_or_skip!();
        let events = json_fixture();
        let tm = &events[0].0;
        // binlog_row_image=MINIMAL: key-only before image, only the changed column after.
        let ev = one_update(
            vec![Some(Cell::Int(7)), None, None, None],
            vec![None, None, None, Some(Cell::Int(30))],
        );
        assert_eq!(
            statements(&ev, tm, &target(vec![0])).unwrap(),
            ["UPDATE `mysql`.`t` SET `age` = 30 WHERE `id` <=> 7"]
        );
        // No key on the target: match on every column the before image has, one row.
        assert_eq!(
            statements(&ev, tm, &target(vec![])).unwrap(),
            ["UPDATE `mysql`.`t` SET `age` = 30 WHERE `id` <=> 7 LIMIT 1"]
        );
        // A target key the before image lacks is an error, not a wider match.
        let err = statements(&ev, tm, &target(vec![0, 3])).unwrap_err();
        assert!(err.contains("lacks key column `age`"), "{err}");
    }

    #[test]
    fn every_diff_operation_nests_and_unchanged_json_is_left_alone() {
        ferry_shared::conformance_or_skip!();
        let events = json_fixture();
        let tm = &events[0].0;
        let diffs = vec![
            JsonDiff {
                op: JsonDiffOp::Insert,
                path: "$.tags[0]".into(),
                value: Some("\"it's\"".into()),
            },
            JsonDiff {
                op: JsonDiffOp::Remove,
                path: "$.data".into(),
                value: None,
            },
        ];
        let ev = one_update(
            vec![Some(Cell::Int(1)), None, None, None],
            vec![Some(Cell::Int(1)), Some(Cell::JsonDiff(diffs)), None, None],
        );
        assert_eq!(
            statements(&ev, tm, &target(vec![0])).unwrap(),
            ["UPDATE `mysql`.`t` SET `id` = 1, `json_col` = JSON_REMOVE(JSON_ARRAY_INSERT(`json_col`, \
              '$.tags[0]', JSON_EXTRACT(_utf8mb4 0x226974277322, '$')), '$.data') WHERE `id` <=> 1"]
        );
        // An empty diff vector: the column did not change; nothing else did either.
        let ev = one_update(
            vec![Some(Cell::Int(1)), None, None, None],
            vec![None, Some(Cell::JsonDiff(Vec::new())), None, None],
        );
        assert!(statements(&ev, tm, &target(vec![0])).unwrap().is_empty());
        // A diff is never a literal (a WRITE cannot carry one).
        let mut out = String::new();
        assert!(literal(&Cell::JsonDiff(Vec::new()), &tm.columns[1], &mut out).is_err());
    }
}
