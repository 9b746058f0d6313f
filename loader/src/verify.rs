//! Verification after a load: each table's row count, and its checksum where the dump's
//! manifest has one, against the dump. Many tables are measured in one statement
//! ([`VERIFY_BATCH`]), so a dump of thousands of small tables is not verified one round trip
//! per table.

use crate::checkpoint;
use crate::config::{OnDuplicate, OnExisting};
use crate::context::{Run, TableCtx};
use crate::error::{from_driver, LoadError};
use crate::summary::TableCheck;
use ferry_shared::checksum;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;

/// Tables measured per statement.
const VERIFY_BATCH: usize = 100;

/// Row count and checksum (when the manifest has one) of every table of the run.
pub(crate) async fn verify(run: &Run, ctl: &mut Conn) -> Result<Vec<TableCheck>, LoadError> {
    let loaded = if run.tables.iter().any(|t| t.plan.manifest.is_none()) {
        checkpoint::loaded_rows(ctl, &run.task).await?
    } else {
        HashMap::new()
    };
    let strict =
        run.cfg.on_existing != OnExisting::Append && run.cfg.on_duplicate == OnDuplicate::Error;
    let mut out = Vec::with_capacity(run.tables.len());
    for part in run.tables.chunks(VERIFY_BATCH) {
        let measured = measure(ctl, part).await?;
        for (t, (rows, sum)) in part.iter().zip(measured) {
            let m = t.plan.manifest.as_ref();
            let checksum_ok = m
                .and_then(|m| m.checksum.as_ref())
                .map(|c| sum.as_deref() == Some(c.sum.as_str()) && rows == c.rows);
            let expected = match m {
                Some(m) => m.rows,
                None => loaded
                    .get(&(t.plan.db.clone(), t.plan.name.clone()))
                    .copied()
                    .unwrap_or(0),
            };
            let ok = !strict || (expected == rows && checksum_ok.unwrap_or(true));
            out.push(TableCheck {
                table: t.shape.qualified.clone(),
                rows,
                expected_rows: Some(expected),
                checksum: match checksum_ok {
                    Some(true) => "ok".into(),
                    Some(false) => "mismatch".into(),
                    None => "not checked".into(),
                },
                ok,
            });
        }
    }
    Ok(out)
}

/// `(rows, checksum)` of each table of `part`, in order, with one statement: the checksum
/// query of the tables with a manifest checksum, a count for the others.
async fn measure(
    ctl: &mut Conn,
    part: &[TableCtx],
) -> Result<Vec<(u64, Option<String>)>, LoadError> {
    let selects: Vec<String> = part
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let q = &t.shape.qualified;
            let inner = match t.plan.manifest.as_ref().and_then(|m| m.checksum.as_ref()) {
                Some(c) => checksum::query(&c.row_expression, q, None),
                None => format!("SELECT COUNT(*) AS row_count, NULL AS row_sum FROM {q}"),
            };
            format!("SELECT {i} AS n, v.* FROM ({inner}) v")
        })
        .collect();
    let what = match (part.first(), part.last()) {
        (Some(a), Some(b)) if part.len() > 1 => {
            format!(
                "checksums of {} .. {}",
                a.shape.qualified, b.shape.qualified
            )
        }
        (Some(a), _) => format!("checksum of {}", a.shape.qualified),
        _ => return Ok(Vec::new()),
    };
    let rows: Vec<(usize, u64, Option<String>)> = ctl
        .query(selects.join(" UNION ALL "))
        .await
        .map_err(|e| from_driver(e, &what))?;
    let mut out = vec![(0, None); part.len()];
    for (i, n, sum) in rows {
        if let Some(slot) = out.get_mut(i) {
            *slot = (n, sum);
        }
    }
    Ok(out)
}
