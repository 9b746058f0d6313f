//! Turning decoded row changes into statements for the target.
//!
//! Safe mode (the only mode so far): a WRITE becomes `REPLACE`, an UPDATE becomes `DELETE` of
//! the old key then `REPLACE` of the new row, a DELETE deletes by key — so replaying changes
//! that were already applied (after a restart between checkpoint and crash) converges to the
//! same rows instead of failing or doubling. Rows map to target columns by name (from the
//! table map's COLUMN_NAME metadata), so a target with more columns keeps their defaults.
//! Tables without a key are matched on every column (`<=>`, one row at a time).

use crate::rows::{ty, Cell, Column, RowsEvent, RowsKind, TableMap};
use ferry_shared::ident::quote_ident;
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
}

fn push_hex(out: &mut String, b: &[u8]) {
    if b.is_empty() {
        out.push_str("''");
        return;
    }
    out.push_str("0x");
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

/// The SQL literal of a cell of `col` (session time zone `+00:00`).
pub fn literal(cell: &Cell, col: &Column, out: &mut String) -> Result<(), String> {
    match cell {
        Cell::Null => out.push_str("NULL"),
        Cell::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::UInt(v) => {
            let _ = write!(out, "{v}");
        }
        Cell::Float(v) => {
            let _ = write!(out, "{v:?}");
        }
        Cell::Double(v) => {
            let _ = write!(out, "{v:?}");
        }
        Cell::Text(t) => {
            out.push('\'');
            out.push_str(&t.replace('\\', "\\\\").replace('\'', "\\'"));
            out.push('\'');
        }
        Cell::Timestamp(0, 0) => out.push_str("'0000-00-00 00:00:00'"),
        Cell::Timestamp(s, us) => {
            let _ = write!(out, "FROM_UNIXTIME({s}.{us:06})");
        }
        Cell::Enum(i) => {
            let _ = write!(out, "{i}");
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
            _ => {
                out.push_str("_binary ");
                push_hex(out, b);
            }
        },
    }
    Ok(())
}

fn row_values(
    image: &[Option<Cell>],
    tm: &TableMap,
    t: &TargetTable,
) -> Result<(Vec<String>, String), String> {
    let mut cols = Vec::new();
    let mut vals = String::from("(");
    for (i, cell) in image.iter().enumerate() {
        let Some(cell) = cell else { continue };
        if !cols.is_empty() {
            vals.push(',');
        }
        cols.push(quote_ident(&t.columns[i]));
        literal(cell, &tm.columns[i], &mut vals)?;
    }
    vals.push(')');
    Ok((cols, vals))
}

fn where_clause(image: &[Option<Cell>], tm: &TableMap, t: &TargetTable) -> Result<String, String> {
    let idx: Vec<usize> = if t.key.is_empty() {
        (0..image.len()).collect()
    } else {
        t.key.clone()
    };
    let mut w = String::new();
    for i in idx {
        let Some(cell) = image.get(i).and_then(|c| c.as_ref()) else {
            continue;
        };
        if !w.is_empty() {
            w.push_str(" AND ");
        }
        w.push_str(&quote_ident(&t.columns[i]));
        w.push_str(" <=> ");
        literal(cell, &tm.columns[i], &mut w)?;
    }
    if w.is_empty() {
        return Err(format!("no column of {} to find the row by", t.qualified));
    }
    Ok(w)
}

/// Statements applying `ev` to `t` in safe mode.
pub fn statements(ev: &RowsEvent, tm: &TableMap, t: &TargetTable) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let limit = if t.key.is_empty() { " LIMIT 1" } else { "" };
    for (before, after) in &ev.rows {
        if let (RowsKind::Update | RowsKind::Delete, Some(b)) = (ev.kind, before) {
            out.push(format!(
                "DELETE FROM {} WHERE {}{limit}",
                t.qualified,
                where_clause(b, tm, t)?
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
