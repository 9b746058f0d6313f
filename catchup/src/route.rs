//! Causality: which worker applies a row change.
//!
//! Every row change is routed by a stable hash of its table and key values, so all changes to
//! one key go to one worker, in binlog order. Tables whose rows cannot be told apart by one
//! key alone (no primary key, or other unique keys that REPLACE could collide on) are routed
//! by table: one worker applies them serially, exactly as the binlog has them.
//!
//! A full-image UPDATE is split into a DELETE of the old key and a REPLACE of the new row,
//! each routed by its own key (a key change moves the row between workers; both halves are in
//! the same source transaction, so both commit with the same group). Partial images (and
//! JSON diffs) stay one statement, routed by the row's before image.
//!
//! Invariant: the hash ([`stable_hash`], FNV-1a) and `hash % workers` must never change, as
//! a restart relies on every transaction going to the same worker as before (see
//! [`crate::checkpoint`]).

use crate::apply;
use crate::error::CatchupError;
use crate::pool::{Pool, Staged};
use crate::rows::{Cell, Image, RowsEvent, RowsKind, TableMap};
use crate::schema_tracker::Table;

/// FNV-1a: stable across processes and versions (routing must be the same after a restart).
pub fn stable_hash(parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for p in parts {
        for b in p.iter().chain(&[0xff]) {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// The worker for a route hash.
pub fn worker_of(hash: u64, workers: usize) -> usize {
    (hash % workers.max(1) as u64) as usize
}

/// The worker a row image's changes go to.
pub(crate) fn route(t: &Table, key: Option<&str>, workers: usize) -> usize {
    let name = t.target.qualified.as_bytes();
    if workers <= 1 {
        return 0;
    }
    match key {
        Some(k) if !t.serial => worker_of(stable_hash(&[name, k.as_bytes()]), workers),
        // Serial tables, and rows without a key value to route by: the table's own worker
        // keeps them in order.
        _ => worker_of(stable_hash(&[name]), workers),
    }
}

/// Stages the rows of `event` on their workers; returns the number of rows.
pub(crate) async fn stage_event(
    pool: &mut Pool,
    t: &Table,
    table: &TableMap,
    event: RowsEvent,
) -> Result<u64, CatchupError> {
    let workers = pool.n();
    let kind = event.kind;
    let mut rows = 0;
    for (before, after) in event.rows {
        let parts: Vec<(RowsKind, Option<Image>, Option<Image>)> =
            if kind == RowsKind::Update && full(&before) && full(&after) {
                vec![
                    (RowsKind::Delete, before, None),
                    (RowsKind::Write, None, after),
                ]
            } else {
                vec![(kind, before, after)]
            };
        for (kind, before, after) in parts {
            let Some(img) = before.as_ref().or(after.as_ref()) else {
                continue;
            };
            let key = if t.serial {
                None
            } else {
                apply::key_tuple(img, table, &t.target).map_err(CatchupError::Definite)?
            };
            let w = route(t, key.as_deref(), workers);
            // Whole rows of a table with only a primary key: batched by key.
            if kind != RowsKind::Update {
                if let Some(key) = key {
                    let row = match &after {
                        Some(a) => {
                            let (cols, vals) = apply::row_values(a, table, &t.target)
                                .map_err(CatchupError::Definite)?;
                            Some((cols.join(","), vals))
                        }
                        None => None,
                    };
                    let staged = Staged::Row {
                        table: t.name.clone(),
                        key_cols: t.key_cols.clone(),
                        key,
                        row,
                    };
                    pool.stage(w, staged).await?;
                    continue;
                }
            }
            let one = RowsEvent {
                table_id: event.table_id,
                kind,
                rows: vec![(before, after)],
            };
            let mut sql = String::new();
            for st in apply::statements(&one, table, &t.target).map_err(CatchupError::Definite)? {
                sql.push_str(&st);
                sql.push(';');
            }
            let staged = Staged::Stmts {
                table: t.name.clone(),
                sql,
            };
            pool.stage(w, staged).await?;
        }
        rows += 1;
    }
    Ok(rows)
}

/// A full row image: every column present, none a JSON diff.
fn full(i: &Option<Image>) -> bool {
    i.as_ref().is_none_or(|i| {
        i.iter()
            .all(|c| matches!(c, Some(c) if !matches!(c, Cell::JsonDiff(_))))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_is_stable_and_spread() {
        // Pinned: a change of hash would re-route keys after an upgrade mid-task.
        assert_eq!(
            stable_hash(&[b"`db`.`t`", b"1"]),
            stable_hash(&[b"`db`.`t`", b"1"])
        );
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            counts[worker_of(stable_hash(&[b"`db`.`t`", i.to_string().as_bytes()]), 4)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 800), "{counts:?}");
        assert_eq!(worker_of(12345, 1), 0);
    }
}
