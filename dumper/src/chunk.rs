//! Chunk planning: split a table into key ranges of about `--rows` rows.
//!
//! The server chooses every boundary; Rust never compares key values itself.
//!
//! - **Single integer key.** Start from the table's real `[MIN, MAX]` and bisect: a range whose
//!   optimizer estimate (`EXPLAIN`, index dives — no scan) exceeds the target is cut at its
//!   midpoint and each half is shrunk to the keys it really holds (`MAX`/`MIN` index seeks). Empty
//!   space therefore costs nothing: ids clustered at both ends of BIGINT give chunks around the
//!   two clusters, not millions of empty ranges. Adjacent small ranges are then merged, with
//!   the estimates rescaled so that they add up to the table's row estimate.
//! - **Other keys** (strings, decimals, composite). Walk the index in key order with keyset
//!   pagination: `SELECT key FROM t WHERE key >= last ORDER BY key LIMIT 1 OFFSET rows`. The
//!   server compares with the column's collation; bounds go back as literals that carry the
//!   collation (`_utf8mb4 x'..' COLLATE ..`).
//! - **No usable key.** One chunk.
//!
//! Chunks cover the whole key space: the first has no lower bound and the last no upper bound,
//! so rows inserted after planning (and visible in the snapshot) are never missed, and bounds
//! need not come from the snapshot. `--where` is applied when chunks are read, not here.

use crate::error::DumpError;
use crate::schema::{key_literal, TableInfo};
use ferry_shared::ident::quote_ident;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use serde::{Deserialize, Serialize};

/// Hard cap on chunks per table, whatever `--rows` says.
const MAX_CHUNKS: usize = 200_000;

/// A planned key range. Bounds are SQL literals, one per key column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkPlan {
    pub index: u32,
    pub lower: Option<Vec<String>>,
    pub upper: Option<Vec<String>>,
}

impl ChunkPlan {
    /// The WHERE condition selecting this chunk (None: the whole table).
    pub fn condition(&self, key: &[String]) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(lo) = &self.lower {
            parts.push(compare(key, lo, ">="));
        }
        if let Some(hi) = &self.upper {
            parts.push(compare(key, hi, "<"));
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

/// Row-wise comparison `(k1,k2..) OP (v1,v2..)` spelled out so every server uses a range scan:
/// `k1 > v1 OR (k1 = v1 AND (k2 OP v2))`.
fn compare(key: &[String], vals: &[String], op: &str) -> String {
    let strict = if op.starts_with('>') { ">" } else { "<" };
    let n = key.len().min(vals.len());
    let mut expr = format!("{} {} {}", quote_ident(&key[n - 1]), op, vals[n - 1]);
    for i in (0..n - 1).rev() {
        let k = quote_ident(&key[i]);
        expr = format!("({k} {strict} {v} OR ({k} = {v} AND {expr}))", v = vals[i]);
    }
    format!("({expr})")
}

pub async fn plan_table(
    conn: &mut Conn,
    t: &TableInfo,
    rows_per_chunk: Option<u64>,
) -> Result<Vec<ChunkPlan>, DumpError> {
    let whole = vec![ChunkPlan {
        index: 0,
        lower: None,
        upper: None,
    }];
    let Some(target) = rows_per_chunk.filter(|r| *r > 0) else {
        return Ok(whole);
    };
    if t.chunk_key.is_empty() {
        return Ok(whole);
    }
    if t.integer_key().is_some() {
        plan_integer(conn, t, target).await
    } else {
        plan_keyset(conn, t, target).await
    }
}

async fn plan_integer(
    conn: &mut Conn,
    t: &TableInfo,
    target: u64,
) -> Result<Vec<ChunkPlan>, DumpError> {
    let key = quote_ident(&t.chunk_key[0]);
    let table = t.qualified();
    let what = format!("planning chunks of {}", t.display());
    let (min, max): (Option<i128>, Option<i128>) = conn
        .query_first(format!("SELECT MIN({key}), MAX({key}) FROM {table}"))
        .await
        .map_err(|e| DumpError::query(&what, e))?
        .unwrap_or((None, None));
    let (Some(min), Some(max)) = (min, max) else {
        return Ok(vec![ChunkPlan {
            index: 0,
            lower: None,
            upper: None,
        }]);
    };
    // Ranges are inclusive [lo, hi] and both ends hold a row.
    let mut pending = vec![(min, max)];
    let mut done: Vec<(i128, i128, u64)> = Vec::new();
    while let Some((lo, hi)) = pending.pop() {
        let est = estimate(conn, &table, &key, lo, hi, &what).await?;
        if est <= target + target / 2 || lo == hi || done.len() + pending.len() >= MAX_CHUNKS {
            done.push((lo, hi, est));
            continue;
        }
        let mid = lo + (hi - lo) / 2;
        let left_hi: Option<i128> = conn
            .query_first(format!(
                "SELECT MAX({key}) FROM {table} WHERE {key} BETWEEN {lo} AND {mid}"
            ))
            .await
            .map_err(|e| DumpError::query(&what, e))?
            .flatten();
        let right_lo: Option<i128> = conn
            .query_first(format!(
                "SELECT MIN({key}) FROM {table} WHERE {key} BETWEEN {} AND {hi}",
                mid + 1
            ))
            .await
            .map_err(|e| DumpError::query(&what, e))?
            .flatten();
        // Push right first so the left half is processed next (keeps work local).
        if let Some(r) = right_lo {
            pending.push((r, hi));
        }
        if let Some(l) = left_hi {
            pending.push((lo, l));
        }
    }
    done.sort_by_key(|r| r.0);
    // Range estimates are biased (InnoDB's index dives read about twice the rows of small PK
    // ranges); the table's row estimate rescales them so merged chunks come out near the target.
    let sum: u64 = done.iter().map(|r| r.2).sum();
    let scale = if t.est_rows > 0 && sum > 0 {
        (t.est_rows as f64 / sum as f64).clamp(0.1, 10.0)
    } else {
        1.0
    };
    // Merge neighbours while the estimate stays within the target.
    let mut starts: Vec<i128> = Vec::new();
    let mut acc = u64::MAX;
    for (lo, _, raw) in done {
        let est = (raw as f64 * scale) as u64;
        if acc != u64::MAX && acc + est <= target + target / 8 {
            acc += est;
        } else {
            starts.push(lo);
            acc = est;
        }
    }
    Ok(bounds_to_chunks(
        starts.into_iter().map(|s| vec![s.to_string()]).collect(),
    ))
}

/// Optimizer row estimate for `key BETWEEN lo AND hi` (index dives; no scan).
async fn estimate(
    conn: &mut Conn,
    table: &str,
    key: &str,
    lo: i128,
    hi: i128,
    what: &str,
) -> Result<u64, DumpError> {
    let rows: Vec<Row> = conn
        .query(format!(
            "EXPLAIN SELECT {key} FROM {table} WHERE {key} BETWEEN {lo} AND {hi}"
        ))
        .await
        .map_err(|e| DumpError::query(what, e))?;
    let mut est = 0u64;
    for row in rows {
        let idx = row
            .columns_ref()
            .iter()
            .position(|c| c.name_str().eq_ignore_ascii_case("rows"));
        if let Some(i) = idx {
            let v: Option<Value> = row.as_ref(i).cloned();
            if let Some(Value::Bytes(b)) = v {
                est = est.max(String::from_utf8_lossy(&b).parse().unwrap_or(0));
            } else if let Some(Value::Int(n)) = v {
                est = est.max(n.max(0) as u64);
            } else if let Some(Value::UInt(n)) = v {
                est = est.max(n);
            }
        }
    }
    Ok(est)
}

/// Keyset walk for non-integer or composite keys.
async fn plan_keyset(
    conn: &mut Conn,
    t: &TableInfo,
    target: u64,
) -> Result<Vec<ChunkPlan>, DumpError> {
    if t.est_rows <= target + target / 2 && t.est_rows > 0 {
        return Ok(vec![ChunkPlan {
            index: 0,
            lower: None,
            upper: None,
        }]);
    }
    let what = format!("planning chunks of {}", t.display());
    let cols: Vec<String> = t.chunk_key.iter().map(|c| quote_ident(c)).collect();
    let key_cols: Vec<_> = t
        .chunk_key
        .iter()
        .map(|c| {
            t.column(c)
                .cloned()
                .ok_or_else(|| DumpError::Definite(format!("{what}: key column {c} not found")))
        })
        .collect::<Result<_, _>>()?;
    let mut starts: Vec<Vec<String>> = Vec::new();
    let mut last: Option<Vec<String>> = None;
    loop {
        let cond = last
            .as_ref()
            .map(|l| format!(" WHERE {}", compare(&t.chunk_key, l, ">")))
            .unwrap_or_default();
        let sql = format!(
            "SELECT {cols} FROM {table}{cond} ORDER BY {cols} LIMIT 1 OFFSET {off}",
            cols = cols.join(","),
            table = t.qualified(),
            // The first chunk starts at the first row; later ones at the row after `last`.
            off = if last.is_none() { target } else { target - 1 },
        );
        let row: Option<Row> = conn
            .query_first(sql)
            .await
            .map_err(|e| DumpError::query(&what, e))?;
        let Some(row) = row else { break };
        let mut vals = Vec::with_capacity(key_cols.len());
        for (i, c) in key_cols.iter().enumerate() {
            match row.as_ref(i) {
                Some(Value::Bytes(b)) => vals.push(key_literal(c, b)),
                _ => {
                    return Ok(vec![ChunkPlan {
                        index: 0,
                        lower: None,
                        upper: None,
                    }])
                }
            }
        }
        starts.push(vals.clone());
        last = Some(vals);
        if starts.len() >= MAX_CHUNKS {
            break;
        }
    }
    // `starts` are the first keys of chunks 2..n; the first chunk is unbounded below.
    let mut all = vec![Vec::new()];
    all.extend(starts);
    Ok(bounds_to_chunks(all))
}

/// Turns sorted chunk start keys into chunks covering the whole key space. The first start is
/// replaced by "no lower bound".
fn bounds_to_chunks(starts: Vec<Vec<String>>) -> Vec<ChunkPlan> {
    let n = starts.len().max(1);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let lower = if i == 0 { None } else { starts.get(i).cloned() };
        let upper = starts.get(i + 1).cloned();
        out.push(ChunkPlan {
            index: i as u32,
            lower,
            upper,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_comparison() {
        let key = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            compare(&key, &["1".into(), "'x'".into()], ">="),
            "((`a` > 1 OR (`a` = 1 AND `b` >= 'x')))"
        );
        let c = ChunkPlan {
            index: 1,
            lower: Some(vec!["5".into()]),
            upper: Some(vec!["9".into()]),
        };
        assert_eq!(
            c.condition(&["id".into()]).unwrap(),
            "(`id` >= 5) AND (`id` < 9)"
        );
        assert_eq!(
            ChunkPlan {
                index: 0,
                lower: None,
                upper: None
            }
            .condition(&["id".into()]),
            None
        );
    }

    #[test]
    fn bounds_cover_everything() {
        let chunks = bounds_to_chunks(vec![vec!["1".into()], vec!["10".into()], vec!["20".into()]]);
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[0].lower, None);
        assert_eq!(chunks[0].upper, Some(vec!["10".into()]));
        assert_eq!(chunks[2].upper, None);
        assert_eq!(bounds_to_chunks(vec![vec![]]).len(), 1);
    }
}
