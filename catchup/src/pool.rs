//! The apply workers and the coordinator's side of them.
//!
//! `--workers N` target connections, each with its own transaction and checkpoint row
//! ([`crate::checkpoint`]); a worker runs the messages it is sent in order ([`worker`]).
//! The coordinator stages the changes of the current source transaction per worker
//! ([`Pool::stage`]); at the transaction's end they are merged into the worker's batches:
//! whole-row changes of keyed tables are compacted by key (safe mode: the last change of a
//! key is a REPLACE of its final row, or a DELETE), statements of serial tables keep their
//! order (after the table's batched changes). Merged changes go out once a worker holds
//! [`FLUSH_BYTES`], and at every commit.
//!
//! Invariants:
//! - A worker's commit carries its checkpoint, and a checkpoint is only sent after the whole
//!   transactions it covers were staged and merged: never in the middle of one.
//! - A large source transaction may go out before it ends ([`FLUSH_BYTES`]); if the stream
//!   is cut before its end, those workers roll back ([`Pool::discard_txn`]) and their
//!   checkpoints stay where they were.
//! - Memory is bounded: at most [`FLUSH_BYTES`] staged per worker, and 4 messages queued.
//! - Idle workers commit their checkpoint too, at least every [`IDLE_CHECKPOINT`], so a
//!   restart does not replay from far behind.

use crate::checkpoint::{checkpoint_sql, Checkpoint};
use crate::error::{db_err, CatchupError};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Buffered statements are sent to a worker once they reach this size.
pub const FLUSH_BYTES: usize = 2 << 20;

pub(crate) enum Msg {
    /// `;`-terminated statements to run in the open target transaction (opened if needed).
    Stmts(String),
    /// Commit what is applied with the worker's checkpoint.
    Commit(Checkpoint),
    /// Roll back the open transaction (a source transaction was cut off).
    Rollback,
    /// Answer once everything before it ran.
    Sync(oneshot::Sender<()>),
}

/// Session settings of every applying connection: UTC literals, no FK checks (the source
/// checked them), explicit zero ids kept, and READ COMMITTED so that workers touching
/// different keys take no gap locks that could make them wait for each other.
pub const SESSION_SETUP: &str = "SET SESSION time_zone = '+00:00', foreign_key_checks = 0, unique_checks = 1, sql_mode = 'NO_AUTO_VALUE_ON_ZERO'; SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Applies messages in order on `conn` until the channel closes.
async fn worker(
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

/// Idle workers commit their checkpoint at least this often.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

/// The coordinator's side of the workers: per-worker statement buffers and what to skip.
pub(crate) struct Pool {
    senders: Vec<mpsc::Sender<Msg>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), CatchupError>>>,
    /// Per worker: statements ready to send (`;`-terminated).
    bufs: Vec<String>,
    /// Per worker, per table: whole-row changes of keyed tables, compacted by key.
    batches: Vec<HashMap<Arc<str>, Batch>>,
    /// Per worker: changes of the current source transaction, merged at its end (or when it
    /// grows past [`FLUSH_BYTES`]).
    stage: Vec<Vec<Staged>>,
    /// Per worker: bytes in `bufs`, `batches` and `stage`.
    pending: Vec<usize>,
    /// Changes of the current source transaction already sent (not just buffered).
    sent_in_txn: Vec<bool>,
    /// Changes applied (buffered or sent) since the worker's last commit.
    dirty: Vec<bool>,
    last_commit: Vec<Instant>,
    /// For the current source transaction: which workers skip it (they committed it before a
    /// restart).
    skip: Vec<bool>,
}

/// A change waiting for the end of its source transaction.
pub(crate) enum Staged {
    /// Statements of a table that is applied in order (`;`-terminated).
    Stmts { table: Arc<str>, sql: String },
    /// The final state of a keyed row: its values, or deleted.
    Row {
        table: Arc<str>,
        key_cols: Arc<str>,
        key: String,
        row: Option<(String, String)>,
    },
}

/// One table's whole-row changes on one worker, by key: only the last change of each key
/// counts (safe mode: REPLACE of the final row, or DELETE), so a group's changes collapse to
/// one multi-row DELETE and one multi-row REPLACE. Keys are disjoint between the two, so the
/// order does not matter.
struct Batch {
    key_cols: Arc<str>,
    insert_cols: String,
    rows: HashMap<String, Option<String>>,
}

/// At most this many rows or bytes per generated statement.
const BATCH_ROWS: usize = 2000;
const BATCH_BYTES: usize = 1 << 20;

impl Batch {
    /// Appends the batch's statements to `out`.
    fn emit(self, table: &str, out: &mut String) {
        let mut deletes: Vec<String> = Vec::new();
        let mut replaces: Vec<String> = Vec::new();
        for (k, v) in self.rows {
            match v {
                None => deletes.push(k),
                Some(v) => replaces.push(v),
            }
        }
        for chunk in deletes.chunks(BATCH_ROWS) {
            let _ = write!(
                out,
                "DELETE FROM {table} WHERE {} IN ({});",
                self.key_cols,
                chunk.join(",")
            );
        }
        let head = format!("REPLACE INTO {table} ({}) VALUES ", self.insert_cols);
        let mut stmt = String::new();
        let mut n = 0;
        for v in replaces {
            if n >= BATCH_ROWS || stmt.len() + v.len() > BATCH_BYTES && n > 0 {
                out.push_str(&stmt);
                out.push(';');
                stmt.clear();
                n = 0;
            }
            if n == 0 {
                stmt.push_str(&head);
            } else {
                stmt.push(',');
            }
            stmt.push_str(&v);
            n += 1;
        }
        if n > 0 {
            out.push_str(&stmt);
            out.push(';');
        }
    }
}

impl Pool {
    /// One worker task per connection (each set up with [`SESSION_SETUP`]).
    pub(crate) fn spawn(conns: Vec<Conn>, task: &str) -> Self {
        let workers = conns.len();
        let mut senders = Vec::new();
        let mut handles = Vec::new();
        for (k, c) in conns.into_iter().enumerate() {
            // A few messages of up to FLUSH_BYTES each: memory stays bounded per worker.
            let (tx, rx) = mpsc::channel(4);
            senders.push(tx);
            handles.push(tokio::spawn(worker(c, task.to_string(), k, workers, rx)));
        }
        Pool {
            senders,
            handles,
            bufs: vec![String::new(); workers],
            batches: (0..workers).map(|_| HashMap::new()).collect(),
            stage: (0..workers).map(|_| Vec::new()).collect(),
            pending: vec![0; workers],
            sent_in_txn: vec![false; workers],
            dirty: vec![false; workers],
            last_commit: vec![Instant::now(); workers],
            skip: vec![false; workers],
        }
    }

    pub(crate) fn n(&self) -> usize {
        self.senders.len()
    }

    async fn send(&mut self, k: usize, m: Msg) -> Result<(), CatchupError> {
        if self.senders[k].send(m).await.is_ok() {
            return Ok(());
        }
        Err(self.failure().await)
    }

    /// The error of a worker that stopped.
    async fn failure(&mut self) -> CatchupError {
        self.senders.clear();
        for h in self.handles.drain(..) {
            match h.await {
                Ok(Err(e)) => return e,
                Err(e) => return CatchupError::Transient(format!("apply worker: {e}")),
                Ok(Ok(())) => {}
            }
        }
        CatchupError::Transient("an apply worker stopped".into())
    }

    /// A source transaction starts; worker `k` skips it where `skip[k]`.
    pub(crate) fn txn_start(&mut self, skip: &[bool]) {
        for k in 0..self.n() {
            self.sent_in_txn[k] = false;
            self.skip[k] = skip.get(k).copied().unwrap_or(false);
        }
    }

    /// Stages a change of the current source transaction for worker `k`.
    pub(crate) async fn stage(&mut self, k: usize, s: Staged) -> Result<(), CatchupError> {
        if self.skip[k] {
            return Ok(());
        }
        self.pending[k] += match &s {
            Staged::Stmts { sql, .. } => sql.len(),
            Staged::Row { key, row, .. } => key.len() + row.as_ref().map_or(0, |r| r.1.len()),
        };
        self.stage[k].push(s);
        self.dirty[k] = true;
        if self.pending[k] >= FLUSH_BYTES {
            // A large source transaction: its changes go out before it ends.
            self.merge(k);
            self.flush(k).await?;
            self.sent_in_txn[k] = true;
        }
        Ok(())
    }

    /// Moves worker `k`'s staged changes into its batches and buffer, in order.
    fn merge(&mut self, k: usize) {
        for s in std::mem::take(&mut self.stage[k]) {
            match s {
                Staged::Stmts { table, sql } => {
                    // Ordered statements of a table come after its batched changes.
                    if let Some(b) = self.batches[k].remove(&table) {
                        b.emit(&table, &mut self.bufs[k]);
                    }
                    self.bufs[k].push_str(&sql);
                }
                Staged::Row {
                    table,
                    key_cols,
                    key,
                    row,
                } => {
                    let cols = row.as_ref().map(|r| r.0.as_str());
                    let fits = self.batches[k].get(&table).is_some_and(|b| {
                        b.key_cols == key_cols
                            && cols.is_none_or(|c| b.insert_cols.is_empty() || b.insert_cols == c)
                    });
                    if !fits {
                        if let Some(b) = self.batches[k].remove(&table) {
                            b.emit(&table, &mut self.bufs[k]);
                        }
                    }
                    let b = self.batches[k].entry(table).or_insert_with(|| Batch {
                        key_cols,
                        insert_cols: String::new(),
                        rows: HashMap::new(),
                    });
                    if let Some((c, _)) = &row {
                        if b.insert_cols.is_empty() {
                            b.insert_cols = c.clone();
                        }
                    }
                    b.rows.insert(key, row.map(|r| r.1));
                }
            }
        }
    }

    /// The current source transaction ended: its changes join the group.
    pub(crate) async fn txn_end(&mut self) -> Result<(), CatchupError> {
        for k in 0..self.n() {
            self.merge(k);
            if self.pending[k] >= FLUSH_BYTES {
                self.flush(k).await?;
            }
        }
        Ok(())
    }

    /// Sends worker `k` everything merged so far (into its open transaction).
    async fn flush(&mut self, k: usize) -> Result<(), CatchupError> {
        for (table, b) in std::mem::take(&mut self.batches[k]) {
            b.emit(&table, &mut self.bufs[k]);
        }
        self.pending[k] = 0;
        if !self.bufs[k].is_empty() {
            let b = std::mem::take(&mut self.bufs[k]);
            self.send(k, Msg::Stmts(b)).await?;
        }
        Ok(())
    }

    /// Commits every worker with changes (and idle ones now and then, so their checkpoints
    /// keep up) with the checkpoint `c`.
    pub(crate) async fn commit(&mut self, c: &Checkpoint, all: bool) -> Result<(), CatchupError> {
        for k in 0..self.n() {
            self.flush(k).await?;
            if self.dirty[k] || all || self.last_commit[k].elapsed() >= IDLE_CHECKPOINT {
                self.send(k, Msg::Commit(c.clone())).await?;
                self.dirty[k] = false;
                self.last_commit[k] = Instant::now();
            }
        }
        Ok(())
    }

    /// Drops the current, unfinished source transaction: its staged changes are dropped;
    /// workers that already ran some of it roll back (their checkpoints stay where they
    /// were, so the transactions they lose are applied again after a restart).
    pub(crate) async fn discard_txn(&mut self) -> Result<(), CatchupError> {
        for k in 0..self.n() {
            self.stage[k].clear();
            if self.sent_in_txn[k] {
                self.bufs[k].clear();
                self.batches[k].clear();
                self.send(k, Msg::Rollback).await?;
                self.dirty[k] = false;
            }
            self.pending[k] = self.bufs[k].len();
        }
        Ok(())
    }

    /// Waits until every worker ran everything sent so far.
    pub(crate) async fn sync(&mut self) -> Result<(), CatchupError> {
        let mut waits = Vec::new();
        for k in 0..self.n() {
            let (tx, rx) = oneshot::channel();
            self.send(k, Msg::Sync(tx)).await?;
            waits.push(rx);
        }
        for w in waits {
            if w.await.is_err() {
                return Err(self.failure().await);
            }
        }
        Ok(())
    }

    pub(crate) async fn finish(mut self) -> Result<(), CatchupError> {
        self.senders.clear();
        for h in self.handles.drain(..) {
            match h.await {
                Ok(r) => r?,
                Err(e) => return Err(CatchupError::Transient(format!("apply worker: {e}"))),
            }
        }
        Ok(())
    }
}
