//! Catch-up's checkpoints: one row per task and worker in `ferry_meta.catchup_checkpoint_v2`,
//! `(task_id, worker) -> (workers, file, pos, gtid)`.
//!
//! Invariants:
//! - Worker `k` writes its row in the same target transaction as the changes it covers, so
//!   after a crash the target holds exactly the changes up to each worker's checkpoint.
//! - A checkpoint is the position *after* a whole source transaction (or a group of them); it
//!   never points inside one. A DDL gets its own checkpoint on every worker, written right
//!   after the DDL ran (with the schema tracker's new state).
//! - After a restart the stream starts at the lowest worker checkpoint, and worker `k` skips
//!   the transactions that start before its own (see [`resume`]): routing is deterministic,
//!   so those are exactly the ones it had committed. Changes replayed past a checkpoint are
//!   applied in safe mode (REPLACE / DELETE by key), so they converge instead of doubling.
//! - A task that stopped mid-group keeps its worker count (routing by `hash % workers` must
//!   not change while the workers' checkpoints differ); another count is taken only when all
//!   checkpoints are equal.
//! - Before streaming, a run replaces the task's rows by exactly one per worker, all with its
//!   worker count ([`rows_sql`]). Rows are otherwise written lazily (a worker commits when it
//!   has changes, or once a second), so without it a restart could read a row of an earlier run
//!   with another count, or miss a worker's row, and skip transactions that a worker had routed
//!   but not committed.
//!
//! The persisted format is fixed: `file`, `pos` and the last applied GTID (or the start set)
//! as text; rows written by earlier versions read back as they are.

use crate::error::{db_err, CatchupError};
use ferry_shared::location::{BinlogPos, GtidSet, Location};
use ferry_shared::meta::MetaTable;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// One worker's checkpoint: where its applied changes end, and the GTID of the last
/// transaction they include (as a set of that one transaction; the start set when nothing
/// was applied since `--start-gtid`), where the source has GTIDs.
pub type Checkpoint = Location;

/// The checkpoint at `pos`, after the transaction of GTID `gtid` (the text the stream or the
/// user gave).
pub fn at(pos: &BinlogPos, gtid: Option<&str>) -> Checkpoint {
    Location::new(pos.clone(), gtid.and_then(parse_gtid))
}

fn parse_gtid(g: &str) -> Option<GtidSet> {
    match GtidSet::parse_any(g) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(gtid = g, error = %e, "a checkpoint's GTID does not parse; kept without it (--until GTID bounds compare with the next transaction's)");
            None
        }
    }
}

/// A checkpoint row as stored (`file`, `pos`, `gtid`): rows of earlier versions read back
/// the same.
pub fn from_row(file: String, pos: u64, gtid: Option<String>) -> Checkpoint {
    Location::new(
        BinlogPos::new(file, pos),
        gtid.as_deref().and_then(parse_gtid),
    )
}

/// One row per task and worker: where that worker's committed changes end.
pub(crate) const CHECKPOINT_TABLE: MetaTable = MetaTable {
    family: "catchup_checkpoint",
    version: 2,
    definition: "task_id VARCHAR(64) NOT NULL,
    worker INT NOT NULL,
    workers INT NOT NULL,
    file VARCHAR(512) NOT NULL,
    pos BIGINT NOT NULL,
    gtid VARCHAR(2048) NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (task_id, worker)",
};

/// The statement writing worker `k`'s checkpoint row.
pub fn checkpoint_sql(task: &str, worker: usize, workers: usize, c: &Checkpoint) -> String {
    let q = ferry_shared::ident::quote_str;
    format!(
        "REPLACE INTO `ferry_meta`.`catchup_checkpoint_v2` (task_id, worker, workers, file, pos, gtid, updated_at) VALUES ({}, {worker}, {workers}, {}, {}, {}, NOW(6))",
        q(task),
        q(&c.pos.file),
        c.pos.pos,
        c.gtid.as_ref().map_or("NULL".to_string(), |g| q(&g.to_string()))
    )
}

/// Reads the task's worker checkpoints: (worker, workers, position).
pub(crate) async fn read_checkpoints(
    tgt: &mut Conn,
    task: &str,
) -> Result<Vec<(usize, usize, Checkpoint)>, CatchupError> {
    let rows: Vec<(u32, u32, String, u64, Option<String>)> = tgt
        .exec(
            "SELECT worker, workers, file, pos, gtid FROM `ferry_meta`.`catchup_checkpoint_v2` WHERE task_id = ? ORDER BY worker",
            (task,),
        )
        .await
        .map_err(db_err("reading the checkpoint"))?;
    Ok(rows
        .into_iter()
        .map(|(w, n, file, pos, gtid)| (w as usize, n as usize, from_row(file, pos, gtid)))
        .collect())
}

/// The lowest of per-worker positions: where the stream starts.
pub(crate) fn lowest(done: &[BinlogPos]) -> BinlogPos {
    done.iter()
        .cloned()
        .reduce(|a, b| if b < a { b } else { a })
        .unwrap_or_else(|| BinlogPos::new(String::new(), 4))
}

/// Where a task with saved checkpoints resumes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resume {
    /// The worker count to run with (the saved one while the checkpoints differ).
    pub workers: usize,
    /// Per worker: every transaction starting before it is committed by that worker.
    pub done: Vec<BinlogPos>,
    /// The lowest checkpoint's GTID (for `--until` GTID bounds).
    pub gtid: Option<String>,
    /// Per worker: its checkpoint, as [`rows_sql`] writes them back before streaming.
    pub rows: Vec<Checkpoint>,
}

impl Resume {
    /// A run without saved checkpoints: every worker at `start`.
    pub(crate) fn fresh(start: BinlogPos, gtid: Option<String>, workers: usize) -> Self {
        let workers = workers.max(1);
        Resume {
            workers,
            rows: vec![at(&start, gtid.as_deref()); workers],
            done: vec![start; workers],
            gtid,
        }
    }
}

/// Replaces the task's checkpoint rows by exactly one per worker of this run, each with this
/// run's worker count, before anything is streamed. Without it, rows of an earlier run with
/// another count (or a worker's row not written yet) would be read as this run's at the next
/// restart: a worker could skip transactions that another one had routed and not committed.
pub(crate) fn rows_sql(task: &str, rows: &[Checkpoint]) -> String {
    let mut sql = format!(
        "START TRANSACTION;DELETE FROM `ferry_meta`.`catchup_checkpoint_v2` WHERE task_id = {};",
        ferry_shared::ident::quote_str(task)
    );
    for (k, c) in rows.iter().enumerate() {
        sql.push_str(&checkpoint_sql(task, k, rows.len(), c));
        sql.push(';');
    }
    sql.push_str("COMMIT");
    sql
}

/// The resume point of saved checkpoints `(worker, workers, checkpoint)` for a run asking for
/// `requested` workers; `None` without any.
pub(crate) fn resume(saved: &[(usize, usize, Checkpoint)], requested: usize) -> Option<Resume> {
    let first = saved.first()?;
    let saved_n = first.1.max(1);
    let all_equal = saved.iter().all(|(_, _, c)| c.pos == first.2.pos);
    let mut workers = requested.max(1);
    if !all_equal && saved_n != workers {
        tracing::warn!(
            saved_n,
            requested = workers,
            "the task stopped mid-group with another worker count; keeping {saved_n} workers so that nothing is applied twice"
        );
        workers = saved_n;
    }
    let lowest = saved
        .iter()
        .map(|(_, _, c)| c)
        .reduce(|a, b| if b.pos < a.pos { b } else { a })?;
    let mut rows = vec![lowest.clone(); workers];
    if !all_equal {
        for (k, _, c) in saved {
            if *k < workers {
                rows[*k] = c.clone();
            }
        }
    }
    Some(Resume {
        workers,
        done: rows.iter().map(|c| c.pos.clone()).collect(),
        gtid: lowest.gtid.as_ref().map(ToString::to_string),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(pos: u64, gtid: &str) -> Checkpoint {
        at(&BinlogPos::new("b.000001", pos), Some(gtid))
    }

    #[test]
    fn checkpoint_sql_quotes() {
        let s = checkpoint_sql("t'x", 2, 4, &at(&BinlogPos::new("b.000001", 9), None));
        assert!(s.contains("'t\\'x', 2, 4, 'b.000001', 9, NULL"), "{s}");
    }

    /// Rows as versions before the typed checkpoint wrote them (file, pos, last GTID or the
    /// start set) read back, and are written again the same.
    #[test]
    fn old_checkpoint_rows_read_back() {
        let uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        for (gtid, written) in [
            (Some("0-1-77"), "'0-1-77'".to_string()),
            (Some("0-1-77,1-2-5"), "'0-1-77,1-2-5'".to_string()),
            (Some(&*format!("{uuid}:23")), format!("'{uuid}:23'")),
            (Some(&*format!("{uuid}:tag:23")), format!("'{uuid}:tag:23'")),
            (Some(&*format!("{uuid}:1-23")), format!("'{uuid}:1-23'")),
            (None, "NULL".to_string()),
        ] {
            let c = from_row("mysql-bin.000003".into(), 1234, gtid.map(str::to_string));
            assert_eq!(c.pos, BinlogPos::new("mysql-bin.000003", 1234));
            assert_eq!(c.gtid.as_ref().map(ToString::to_string).as_deref(), gtid);
            let sql = checkpoint_sql("task", 0, 1, &c);
            let row = format!("'mysql-bin.000003', 1234, {written}, NOW(6))");
            assert!(sql.ends_with(&row), "{sql}");
        }
    }

    #[test]
    fn resume_at_equal_checkpoints_takes_the_requested_worker_count() {
        let saved = [(0, 2, ck(500, "0-1-5")), (1, 2, ck(500, "0-1-5"))];
        let r = resume(&saved, 4).unwrap();
        assert_eq!(r.workers, 4);
        assert_eq!(r.done, vec![BinlogPos::new("b.000001", 500); 4]);
        assert_eq!(r.gtid.as_deref(), Some("0-1-5"));
        assert_eq!(resume(&[], 4), None);
    }

    #[test]
    fn a_run_rewrites_every_row_with_its_own_worker_count() {
        let r = resume(&[(0, 3, ck(500, "0-1-5")), (1, 3, ck(900, "0-1-9"))], 2).unwrap();
        assert_eq!(r.workers, 3);
        let sql = rows_sql("t", &r.rows);
        assert!(
            sql.starts_with("START TRANSACTION;DELETE FROM `ferry_meta`.`catchup_checkpoint_v2` WHERE task_id = 't';"),
            "{sql}"
        );
        // Exactly workers 0..3, each with the count 3; worker 2 had no row: at the lowest.
        for (k, pos, gtid) in [(0, 500, "0-1-5"), (1, 900, "0-1-9"), (2, 500, "0-1-5")] {
            let row = format!("VALUES ('t', {k}, 3, 'b.000001', {pos}, '{gtid}', NOW(6))");
            assert!(sql.contains(&row), "{row} in {sql}");
        }
        assert_eq!(sql.matches("REPLACE INTO").count(), 3);
        assert!(sql.ends_with(";COMMIT"));
        let fresh = Resume::fresh(BinlogPos::new("b.000001", 4), None, 2);
        assert_eq!(
            rows_sql("t", &fresh.rows)
                .matches(", 2, 'b.000001', 4, NULL")
                .count(),
            2
        );
    }

    #[test]
    fn resume_mid_group_keeps_each_workers_checkpoint_and_count() {
        let saved = [(0, 2, ck(900, "0-1-9")), (1, 2, ck(500, "0-1-5"))];
        let r = resume(&saved, 4).unwrap();
        assert_eq!(r.workers, 2);
        assert_eq!(
            r.done,
            vec![
                BinlogPos::new("b.000001", 900),
                BinlogPos::new("b.000001", 500)
            ]
        );
        // The stream restarts at the lowest; its GTID is the one --until compares with.
        assert_eq!(r.gtid.as_deref(), Some("0-1-5"));
    }
}
