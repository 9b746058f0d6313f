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
//! - Rows that stopped mid-group with another worker count keep that count (routing by
//!   `hash % workers` must not change while the workers' checkpoints differ).
//!
//! The persisted format is fixed: `file`, `pos` and the last applied GTID (or the start set)
//! as text; rows written by earlier versions read back as they are.

use crate::error::{db_err, CatchupError};
use ferry_shared::location::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// One worker's checkpoint: where its applied changes end.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
}

impl Checkpoint {
    /// Its binlog coordinates.
    pub fn position(&self) -> BinlogPos {
        BinlogPos::new(self.file.clone(), self.pos)
    }

    pub fn at(pos: &ferry_shared::location::BinlogPos, gtid: &Option<String>) -> Self {
        Checkpoint {
            file: pos.file.clone(),
            pos: pos.pos,
            gtid: gtid.clone(),
        }
    }
}

/// One row per task and worker: where that worker's committed changes end.
pub(crate) const CHECKPOINT_DDL: &str =
    "CREATE TABLE IF NOT EXISTS `ferry_meta`.`catchup_checkpoint_v2` (
    task_id VARCHAR(64) NOT NULL,
    worker INT NOT NULL,
    workers INT NOT NULL,
    file VARCHAR(512) NOT NULL,
    pos BIGINT NOT NULL,
    gtid VARCHAR(2048) NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (task_id, worker)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// The statement writing worker `k`'s checkpoint row.
pub fn checkpoint_sql(task: &str, worker: usize, workers: usize, c: &Checkpoint) -> String {
    let q = ferry_shared::ident::quote_str;
    format!(
        "REPLACE INTO `ferry_meta`.`catchup_checkpoint_v2` (task_id, worker, workers, file, pos, gtid, updated_at) VALUES ({}, {worker}, {workers}, {}, {}, {}, NOW(6))",
        q(task),
        q(&c.file),
        c.pos,
        c.gtid.as_deref().map_or("NULL".to_string(), q)
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
        .map(|(w, n, file, pos, gtid)| (w as usize, n as usize, Checkpoint { file, pos, gtid }))
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
}

/// The resume point of saved checkpoints `(worker, workers, checkpoint)` for a run asking for
/// `requested` workers; `None` without any.
pub(crate) fn resume(saved: &[(usize, usize, Checkpoint)], requested: usize) -> Option<Resume> {
    let first = saved.first()?;
    let saved_n = first.1.max(1);
    let all_equal = saved
        .iter()
        .all(|(_, _, c)| c.file == first.2.file && c.pos == first.2.pos);
    let mut workers = requested.max(1);
    if !all_equal && saved_n != workers {
        tracing::warn!(
            saved_n,
            requested = workers,
            "the task stopped mid-group with another worker count; keeping {saved_n} workers so that nothing is applied twice"
        );
        workers = saved_n;
    }
    let (lowest, gtid) = saved
        .iter()
        .map(|(_, _, c)| (BinlogPos::new(c.file.clone(), c.pos), c.gtid.clone()))
        .reduce(|a, b| if b.0 < a.0 { b } else { a })?;
    let mut done = vec![lowest; workers];
    if !all_equal {
        for (k, _, c) in saved {
            if *k < workers {
                done[*k] = BinlogPos::new(c.file.clone(), c.pos);
            }
        }
    }
    Some(Resume {
        workers,
        done,
        gtid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ck(pos: u64, gtid: &str) -> Checkpoint {
        Checkpoint {
            file: "b.000001".into(),
            pos,
            gtid: Some(gtid.into()),
        }
    }

    #[test]
    fn checkpoint_sql_quotes() {
        let s = checkpoint_sql(
            "t'x",
            2,
            4,
            &Checkpoint {
                file: "b.000001".into(),
                pos: 9,
                gtid: None,
            },
        );
        assert!(s.contains("'t\\'x', 2, 4, 'b.000001', 9, NULL"), "{s}");
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
