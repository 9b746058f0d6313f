//! The catch-up loop: stream the source's binlog from a start position and apply each
//! transaction to the target together with its checkpoint.
//!
//! Invariants: each worker's checkpoint (`ferry_meta.catchup_checkpoint_v2`) is written in the
//! same target transaction as the rows it covers (see [`crate::parallel`]), so after a crash the target holds exactly the
//! changes up to the checkpoint; changes replayed from there are applied in safe mode
//! (REPLACE / DELETE by key), so they converge instead of doubling. DDL runs as a barrier,
//! followed by its own checkpoint.

use crate::apply;
use crate::decode::Change;
pub use crate::error::CatchupError;
use crate::error::{db_err, located};
use crate::parallel::{self, Checkpoint, Msg};
use crate::rows::{RowsEvent, RowsKind};
use crate::schema_tracker::{self, SchemaTracker, Table};
use crate::source::{self, StreamStart};
use ferry_shared::conn::ConnSpec;
use ferry_shared::location::BinlogPos;
use ferry_shared::progress::ProgressMode;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, Clone)]
pub struct CatchupConfig {
    pub source: ConnSpec,
    pub target: ConnSpec,
    /// Where to start when the target has no checkpoint for the task.
    pub start: Start,
    pub task_id: String,
    pub server_id: u32,
    /// Where to stop (`caught-up`: the source's binlog end as it was when catch-up started,
    /// lag 0); `None`: run until stopped.
    pub until: Option<crate::locate::Until>,
    /// Only changes to these databases are applied (`None`: all).
    pub schemas: Option<Vec<String>>,
    /// Per table (database, name): the earliest Location its dumped rows were read at.
    /// Row changes of transactions that started before it are in the dump already and are
    /// skipped (from a dump of several Locations, tables without a key would double them).
    pub table_floors: HashMap<(String, String), BinlogPos>,
    /// Per table: the source's column names as the dump read them (the schema tracker's
    /// start, for binlogs without column names).
    pub dump_columns: HashMap<(String, String), Vec<String>>,
    /// Target connections applying changes in parallel (causality by key).
    pub workers: usize,
    /// How long to keep reconnecting after the source or target went away before giving up.
    pub retry_for: std::time::Duration,
    /// A progress line on a terminal, or log lines.
    pub progress: ferry_shared::progress::ProgressMode,
    /// Stop cleanly (after committing what is applied) once this turns true.
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
}

/// Where a task without a checkpoint starts.
#[derive(Debug, Clone)]
pub enum Start {
    Position(BinlogPos),
    /// After the transactions of this GTID set (the replica has executed them).
    Gtid(String),
    /// At the first transaction at or after this time (seconds since the epoch).
    Time(u32),
}

#[derive(Debug, Clone, Serialize)]
pub struct CatchupSummary {
    pub task_id: String,
    pub started_at: String,
    pub stopped_at: String,
    pub transactions: u64,
    pub rows: u64,
    pub ddl: u64,
    pub elapsed_secs: f64,
    pub rows_per_sec: f64,
    /// Lag when catch-up stopped: seconds behind the source's clock and bytes behind its
    /// binlog end (0 and 0 at `--until caught-up`).
    pub lag_seconds: u64,
    pub bytes_behind: Option<u64>,
    pub workers: usize,
    /// Times the stream was resumed from the checkpoint after a lost connection.
    pub reconnects: u64,
}

async fn connect(spec: &ConnSpec) -> Result<Conn, CatchupError> {
    spec.connect().await.map_err(|e| {
        if e.is_transient() {
            CatchupError::Transient(e.to_string())
        } else {
            CatchupError::Definite(e.to_string())
        }
    })
}

/// Errors that mean a replayed DDL statement is already in effect: database/table exists or
/// not, duplicate column/key, column/key to drop missing.
const ALREADY_APPLIED: &[u16] = &[1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146];

/// At most this many source transactions, or this long, per target commit.
const GROUP_MAX: u32 = 2000;
const GROUP_TIME: std::time::Duration = std::time::Duration::from_millis(200);

/// One row per task and worker: where that worker's committed changes end.
const CHECKPOINT_DDL: &str = "CREATE TABLE IF NOT EXISTS `ferry_meta`.`catchup_checkpoint_v2` (
    task_id VARCHAR(64) NOT NULL,
    worker INT NOT NULL,
    workers INT NOT NULL,
    file VARCHAR(512) NOT NULL,
    pos BIGINT NOT NULL,
    gtid VARCHAR(2048) NULL,
    updated_at DATETIME(6) NOT NULL,
    PRIMARY KEY (task_id, worker)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// Does a statement run without a default schema name `schema` in a qualified identifier?
fn names_schema(sql: &str, schema: &str) -> bool {
    let quoted = format!("{}.", ferry_shared::ident::quote_ident(schema));
    sql.contains(&quoted)
        || sql.match_indices(&format!("{schema}.")).any(|(i, _)| {
            i == 0
                || !sql.as_bytes()[i - 1].is_ascii_alphanumeric() && sql.as_bytes()[i - 1] != b'_'
        })
}

/// Account and privilege statements (`GRANT`, `CREATE USER`, ...): the target's accounts
/// are the operator's, not replicated.
fn is_account_statement(upper: &str) -> bool {
    let s = upper.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    [
        "GRANT ",
        "REVOKE ",
        "CREATE USER",
        "DROP USER",
        "ALTER USER",
        "RENAME USER",
        "SET PASSWORD",
        "CREATE ROLE",
        "DROP ROLE",
        "SET DEFAULT ROLE",
        "FLUSH ",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// A binlog file name from a ROTATE event, without the bytes some servers append to the
/// artificial ones (their checksum, mysql_async issue 189): the name is cut to the current
/// file's shape, `base.` and as many digits as its sequence number has (a sequence that
/// outgrows its width would need a restart from `--start-position`).
fn clean_file_name(raw: &str, current: &str) -> String {
    let plain: String = raw
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if let Some((base, seq)) = current.rsplit_once('.') {
        let prefix = format!("{base}.");
        if let Some(rest) = plain.strip_prefix(&prefix) {
            let digits: String = rest
                .chars()
                .take_while(char::is_ascii_digit)
                .take(seq.len().max(1))
                .collect();
            if !digits.is_empty() {
                return format!("{prefix}{digits}");
            }
        }
    }
    plain
}

/// The worker a row image's changes go to.
fn route(t: &Table, key: Option<&str>, workers: usize) -> usize {
    let name = t.target.qualified.as_bytes();
    if workers <= 1 {
        return 0;
    }
    match key {
        Some(k) if !t.serial => {
            parallel::worker_of(parallel::stable_hash(&[name, k.as_bytes()]), workers)
        }
        // Serial tables, and rows without a key value to route by: the table's own worker
        // keeps them in order.
        _ => parallel::worker_of(parallel::stable_hash(&[name]), workers),
    }
}

/// The coordinator's side of the workers: per-worker statement buffers and what to skip.
struct Pool {
    senders: Vec<mpsc::Sender<Msg>>,
    handles: Vec<tokio::task::JoinHandle<Result<(), CatchupError>>>,
    /// Per worker: statements ready to send (`;`-terminated).
    bufs: Vec<String>,
    /// Per worker, per table: whole-row changes of keyed tables, compacted by key.
    batches: Vec<HashMap<Arc<str>, Batch>>,
    /// Per worker: changes of the current source transaction, merged at its end (or when it
    /// grows past [`parallel::FLUSH_BYTES`]).
    stage: Vec<Vec<Staged>>,
    /// Per worker: bytes in `bufs`, `batches` and `stage`.
    pending: Vec<usize>,
    /// Changes of the current source transaction already sent (not just buffered).
    sent_in_txn: Vec<bool>,
    /// Changes applied (buffered or sent) since the worker's last commit.
    dirty: Vec<bool>,
    last_commit: Vec<Instant>,
    /// Worker k already committed every transaction starting before `done[k]`.
    done: Vec<BinlogPos>,
    /// For the current source transaction: which workers skip it, and where it started.
    skip: Vec<bool>,
    txn_at: BinlogPos,
}

/// A change waiting for the end of its source transaction.
enum Staged {
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
    fn new(workers: usize, done: Vec<BinlogPos>) -> Self {
        Pool {
            senders: Vec::new(),
            handles: Vec::new(),
            bufs: vec![String::new(); workers],
            batches: (0..workers).map(|_| HashMap::new()).collect(),
            stage: (0..workers).map(|_| Vec::new()).collect(),
            pending: vec![0; workers],
            sent_in_txn: vec![false; workers],
            dirty: vec![false; workers],
            last_commit: vec![Instant::now(); workers],
            done,
            skip: vec![false; workers],
            txn_at: BinlogPos::new(String::new(), 4),
        }
    }

    fn n(&self) -> usize {
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

    /// A source transaction starts at `at`.
    fn txn_start(&mut self, at: &BinlogPos) {
        self.txn_at = at.clone();
        for k in 0..self.n() {
            self.sent_in_txn[k] = false;
            self.skip[k] = at.partial_cmp(&self.done[k]) == Some(std::cmp::Ordering::Less);
        }
    }

    /// Stages a change of the current source transaction for worker `k`.
    async fn stage(&mut self, k: usize, s: Staged) -> Result<(), CatchupError> {
        if self.skip[k] {
            return Ok(());
        }
        self.pending[k] += match &s {
            Staged::Stmts { sql, .. } => sql.len(),
            Staged::Row { key, row, .. } => key.len() + row.as_ref().map_or(0, |r| r.1.len()),
        };
        self.stage[k].push(s);
        self.dirty[k] = true;
        if self.pending[k] >= parallel::FLUSH_BYTES {
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
    async fn txn_end(&mut self) -> Result<(), CatchupError> {
        for k in 0..self.n() {
            self.merge(k);
            if self.pending[k] >= parallel::FLUSH_BYTES {
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
    async fn commit(&mut self, c: &Checkpoint, all: bool) -> Result<(), CatchupError> {
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
    async fn discard_txn(&mut self) -> Result<(), CatchupError> {
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
    async fn sync(&mut self) -> Result<(), CatchupError> {
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

    async fn finish(mut self) -> Result<(), CatchupError> {
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

/// Idle workers commit their checkpoint at least this often.
const IDLE_CHECKPOINT: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the task's worker checkpoints: (worker, workers, position).
async fn read_checkpoints(
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

/// Counters kept across reconnects.
#[derive(Default)]
struct Totals {
    transactions: u64,
    rows: u64,
    ddl: u64,
    reconnects: u64,
    started_at: Option<String>,
    stopped_at: String,
    lag: (u64, Option<u64>),
    workers: usize,
}

/// Runs catch-up; after a lost connection (source restart, network), resumes from the
/// checkpoints with backoff for up to `cfg.retry_for` without progress.
pub async fn run(cfg: CatchupConfig) -> Result<CatchupSummary, CatchupError> {
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut delay = std::time::Duration::from_secs(1);
    let mut failing_since: Option<Instant> = None;
    let bar = match cfg.progress {
        ProgressMode::Bars => true,
        ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ProgressMode::Log | ProgressMode::Off => false,
    }
    .then(|| {
        let b = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} catchup [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(250));
        b
    });
    let r = loop {
        let before = totals.transactions + totals.ddl;
        match run_once(&cfg, &mut totals, bar.as_ref()).await {
            Ok(()) => break Ok(()),
            Err(e) if e.is_transient() => {
                if totals.transactions + totals.ddl > before {
                    failing_since = None;
                    delay = std::time::Duration::from_secs(1);
                }
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= cfg.retry_for || stop_requested(&cfg) {
                    break Err(e);
                }
                tracing::warn!(error = %e, retry_in_secs = delay.as_secs(), "connection lost; resuming from the checkpoint");
                let mut stop = cfg.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = wait_stop(&mut stop) => break Err(e),
                }
                delay = (delay * 2).min(std::time::Duration::from_secs(30));
                totals.reconnects += 1;
            }
            Err(e) => break Err(e),
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    r?;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    Ok(CatchupSummary {
        task_id: cfg.task_id.clone(),
        started_at: totals.started_at.unwrap_or_default(),
        stopped_at: totals.stopped_at,
        transactions: totals.transactions,
        rows: totals.rows,
        ddl: totals.ddl,
        elapsed_secs: secs,
        rows_per_sec: totals.rows as f64 / secs,
        lag_seconds: totals.lag.0,
        bytes_behind: totals.lag.1,
        workers: totals.workers,
        reconnects: totals.reconnects,
    })
}

/// Has `--until` (other than caught-up) been reached before the transaction starting at `pos`?
fn until_reached(cfg: &CatchupConfig, pos: &BinlogPos, last_gtid: Option<&str>, ts: u32) -> bool {
    let hit = cfg
        .until
        .as_ref()
        .is_some_and(|u| u.reached(&pos.file, pos.pos, last_gtid, ts));
    if hit {
        tracing::info!(position = %pos, "--until reached");
    }
    hit
}

fn stop_requested(cfg: &CatchupConfig) -> bool {
    cfg.stop.as_ref().is_some_and(|s| *s.borrow())
}

/// Resolves once a stop is requested (never without a stop channel).
async fn wait_stop(stop: &mut Option<tokio::sync::watch::Receiver<bool>>) {
    match stop {
        Some(s) => {
            if s.wait_for(|v| *v).await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending::<()>().await,
    }
}

async fn run_once(
    cfg: &CatchupConfig,
    totals: &mut Totals,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<(), CatchupError> {
    let caught_up = cfg.until.as_ref().is_some_and(|u| u.stops_at_binlog_end());
    let mut tgt = connect(&cfg.target).await?;
    tgt.query_drop("CREATE DATABASE IF NOT EXISTS `ferry_meta`")
        .await
        .map_err(db_err("creating `ferry_meta` on the target"))?;
    tgt.query_drop(CHECKPOINT_DDL)
        .await
        .map_err(db_err("creating the catch-up checkpoint table"))?;
    tgt.query_drop(schema_tracker::SCHEMA_DDL)
        .await
        .map_err(db_err("creating the schema tracker's table"))?;
    tgt.query_drop(parallel::SESSION_SETUP)
        .await
        .map_err(db_err("target session setup"))?;

    // Worker checkpoints: start at the lowest; each worker skips what it already committed.
    let saved = read_checkpoints(&mut tgt, &cfg.task_id).await?;
    let mut src = connect(&cfg.source).await?;
    let mut workers = cfg.workers.max(1);
    let mut done: Vec<BinlogPos>;
    let mut gtid: Option<String> = None;
    if saved.is_empty() {
        let first = match &cfg.start {
            Start::Position(p) => p.clone(),
            Start::Gtid(set) => {
                gtid = Some(set.clone());
                crate::locate::start_for_gtid(&mut src, set, cfg.server_id)
                    .await
                    .map_err(located)?
            }
            Start::Time(t) => crate::locate::start_for_time(&mut src, *t, cfg.server_id)
                .await
                .map_err(located)?,
        };
        tracing::info!(position = %first, "start position");
        done = vec![first; workers];
    } else {
        let saved_n = saved[0].1.max(1);
        let all_equal = saved
            .iter()
            .all(|(_, _, c)| c.file == saved[0].2.file && c.pos == saved[0].2.pos);
        if !all_equal && saved_n != workers {
            tracing::warn!(
                saved_n,
                requested = workers,
                "the task stopped mid-group with another worker count; keeping {saved_n} workers so that nothing is applied twice"
            );
            workers = saved_n;
        }
        let (lowest, lowest_gtid) = saved
            .iter()
            .map(|(_, _, c)| (BinlogPos::new(c.file.clone(), c.pos), c.gtid.clone()))
            .reduce(|a, b| if b.0 < a.0 { b } else { a })
            .unwrap_or_else(|| (BinlogPos::new(String::new(), 4), None));
        gtid = lowest_gtid;
        done = vec![lowest.clone(); workers];
        if !all_equal {
            for (k, _, c) in &saved {
                if *k < workers {
                    done[*k] = BinlogPos::new(c.file.clone(), c.pos);
                }
            }
        }
        tracing::info!(position = %lowest, workers, "resuming from the checkpoint");
    }
    totals.workers = workers;
    let start = done
        .iter()
        .cloned()
        .reduce(|a, b| if b < a { b } else { a })
        .unwrap_or_else(|| BinlogPos::new(String::new(), 4));
    if let Some(u) = &cfg.until {
        let flavor = crate::locate::flavor(&mut src).await.map_err(located)?;
        u.check_start(&start, flavor).map_err(located)?;
    }
    if totals.started_at.is_none() {
        totals.started_at = Some(start.to_string());
    }
    totals.stopped_at = start.to_string();

    crate::precheck::precheck(&mut src, &start, cfg.server_id).await?;
    tracing::info!(start = %start, workers, "precheck passed; streaming");

    let mut pool = Pool::new(workers, done);
    for k in 0..workers {
        let mut c = connect(&cfg.target).await?;
        c.query_drop(parallel::SESSION_SETUP)
            .await
            .map_err(db_err("target session setup"))?;
        // A few messages of up to FLUSH_BYTES each: memory stays bounded per worker.
        let (tx, rx) = mpsc::channel(4);
        pool.senders.push(tx);
        pool.handles.push(tokio::spawn(parallel::worker(
            c,
            cfg.task_id.clone(),
            k,
            workers,
            rx,
        )));
    }

    let stream_conn = connect(&cfg.source).await?;
    // Changes arrive in a synchronous callback; apply them from an async loop fed by a channel.
    // A few batches in flight: decoded row images take a few times their binlog size, so a
    // long queue would hold hundreds of MiB while the target is the slow side.
    let (tx, mut rx) = mpsc::channel::<Vec<source::Positioned>>(4);
    let mut queue = std::collections::VecDeque::new();
    let stream_start = StreamStart {
        file: start.file.clone(),
        pos: start.pos,
        server_id: cfg.server_id,
        non_blocking: caught_up,
    };
    let source_spec = cfg.source.clone();
    let reader = tokio::spawn(async move {
        let mut conn = Some(stream_conn);
        let mut tries = 0;
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => connect(&source_spec).await.map_err(|e| match e {
                    CatchupError::Source(s) => s,
                    other => source::SourceError::Other(other.to_string()),
                })?,
            };
            match source::stream_to(c, &stream_start, tx.clone()).await {
                // The source still has our previous connection (a killed run) registered
                // under this server id; it drops it at its next heartbeat.
                Err(source::SourceError::Stream {
                    source: mysql_async::Error::Server(e),
                    ..
                }) if e.code == 4052 && tries < 30 => {
                    tries += 1;
                    tracing::info!(
                        "the source still holds a replica connection with this server id; retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                Err(source::SourceError::Stream {
                    source: mysql_async::Error::Server(e),
                    ..
                }) if e.code == 4052 => {
                    return Err(source::SourceError::Other(format!(
                        "another replica of the source uses server id {} ({}): give catch-up a unique --server-id",
                        stream_start.server_id, e.message
                    )))
                }
                r => return r,
            }
        }
    });
    // Ends the reader (and its replica connection) on every way out of this attempt.
    struct AbortOnDrop(tokio::task::AbortHandle);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _reader_guard = AbortOnDrop(reader.abort_handle());

    let mut applier = SchemaTracker::load(&mut tgt, &cfg.task_id, cfg.dump_columns.clone()).await?;
    let mut pos = start.clone();
    let mut in_txn = false;
    let mut grouped = 0u32;
    let mut group_started = Instant::now();
    let mut stopping = false;
    let mut stop = cfg.stop.clone();
    let mut last_report = Instant::now();
    let mut events = 0u64;
    let mut reported = (totals.rows, totals.transactions, 0u64);
    let mut last_event_ts = 0u32;
    loop {
        if !stopping && stop.as_ref().is_some_and(|s| *s.borrow()) {
            stopping = true;
            tracing::info!("stop requested: finishing the current transaction");
            stop = None;
            if !in_txn {
                break;
            }
        }
        // Whole source transactions waiting for their group commit: committed as soon as the
        // stream has nothing ready (or they waited long enough), so that what is applied does
        // not sit in open target transactions while the source is idle or sends only events
        // of other schemas.
        if grouped > 0
            && !in_txn
            && ((queue.is_empty() && rx.is_empty()) || group_started.elapsed() >= GROUP_TIME)
        {
            let ckpt = Checkpoint::at(&pos, &gtid);
            pool.commit(&ckpt, false).await?;
            grouped = 0;
            group_started = Instant::now();
            totals.stopped_at = pos.to_string();
        }
        let Some(p) = queue.pop_front() else {
            tokio::select! {
                biased;
                _ = wait_stop(&mut stop), if !stopping => {}
                b = rx.recv() => match b { Some(b) => queue.extend(b), None => break },
            }
            continue;
        };
        if p.timestamp > 0 {
            last_event_ts = p.timestamp;
        }
        events += 1;
        let every = if bar.is_some() {
            std::time::Duration::from_secs(1)
        } else {
            REPORT_EVERY
        };
        if last_report.elapsed() >= every && cfg.progress != ProgressMode::Off {
            totals.lag = measure_lag(
                &mut src,
                &pos.file,
                pos.pos,
                last_event_ts,
                queue.is_empty() && rx.is_empty(),
            )
            .await;
            let secs = last_report.elapsed().as_secs_f64();
            let rate = |now: u64, then: u64| ((now - then) as f64 / secs) as u64;
            let bytes_behind = totals
                .lag
                .1
                .map_or("?".to_string(), ferry_shared::progress::human_bytes);
            match bar {
                Some(b) => b.set_message(format!(
                    "at {pos} · {} trx ({}/s) · {} rows ({}/s) · {} events/s · lag {} s, {bytes_behind} behind",
                    totals.transactions,
                    rate(totals.transactions, reported.1),
                    totals.rows,
                    rate(totals.rows, reported.0),
                    rate(events, reported.2),
                    totals.lag.0,
                )),
                None => tracing::info!(
                    position = %pos,
                    transactions = totals.transactions,
                    rows = totals.rows,
                    rows_per_sec = rate(totals.rows, reported.0),
                    transactions_per_sec = rate(totals.transactions, reported.1),
                    events_per_sec = rate(events, reported.2),
                    lag_seconds = totals.lag.0,
                    bytes_behind = %bytes_behind,
                    "catchup progress"
                ),
            }
            reported = (totals.rows, totals.transactions, events);
            last_report = Instant::now();
        }
        let mut txn_ended = false;
        match p.change {
            // ROTATE: a real one ends a file; the server also sends an artificial one at the
            // start (naming the file we asked for, sometimes with stray bytes) and whenever
            // it opens the next file (after a STOP event at a restart, for one). Only a move
            // to another file changes the position: the artificial one at the start may
            // carry offset 4 instead of our start offset.
            Change::Rotate {
                file: f, pos: at, ..
            } => {
                let f = clean_file_name(&f, &pos.file);
                if !f.is_empty() && f != pos.file {
                    pos = BinlogPos::new(f, at);
                }
            }
            Change::Gtid(g) => {
                if !in_txn && until_reached(cfg, &pos, gtid.as_deref(), p.timestamp) {
                    stopping = true;
                    break;
                }
                gtid = Some(g);
                if !in_txn {
                    in_txn = true;
                    pool.txn_start(&pos);
                }
            }
            Change::Query {
                db,
                sql,
                sql_mode,
                charset_client,
            } => {
                let text = String::from_utf8_lossy(&sql).trim().to_string();
                let wanted = cfg.schemas.as_ref().is_none_or(|s| {
                    s.contains(&db) || (db.is_empty() && s.iter().any(|x| names_schema(&text, x)))
                });
                let upper = text.to_ascii_uppercase();
                if upper == "BEGIN" {
                    if !in_txn && until_reached(cfg, &pos, gtid.as_deref(), p.timestamp) {
                        stopping = true;
                        break;
                    }
                    if !in_txn {
                        in_txn = true;
                        pool.txn_start(&pos);
                    }
                } else if upper == "COMMIT" {
                    if p.end_pos > 0 {
                        pos.pos = p.end_pos;
                    }
                    txn_ended = true;
                } else if upper.starts_with("SAVEPOINT")
                    || upper.starts_with("ROLLBACK TO")
                    || upper.starts_with("RELEASE SAVEPOINT")
                {
                    // Savepoints inside a transaction: its row events already say what stayed.
                } else if !wanted || is_account_statement(&upper) {
                    tracing::debug!(schema = %db, "statement outside the replicated schemas, or about accounts, skipped");
                    if p.end_pos > 0 {
                        pos.pos = p.end_pos;
                    }
                    in_txn = false;
                } else {
                    // DDL: a barrier. Everything before it is committed on every worker, the
                    // statement runs in its schema, then every worker's checkpoint moves past it.
                    let ckpt = Checkpoint::at(&pos, &gtid);
                    pool.commit(&ckpt, false).await?;
                    pool.sync().await?;
                    // The statement's own sql_mode (ANSI_QUOTES changes how it parses) and
                    // client character set, as the source ran it.
                    let mut session = match sql_mode {
                        Some(m) => format!("SET SESSION sql_mode = {m}"),
                        None => "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'".to_string(),
                    };
                    match charset_client {
                        Some(c) => {
                            let _ = write!(session, ", character_set_client = {c}");
                        }
                        None => session.push_str(", character_set_client = utf8mb4"),
                    }
                    if let Err(e) = tgt.query_drop(&session).await {
                        tracing::warn!(error = %e, "the target does not take the source statement's session settings; applying the DDL with its own");
                    }
                    // CREATE/DROP DATABASE name their database as the default schema, which
                    // does not exist before (or after) them.
                    let database_ddl = upper.starts_with("CREATE DATABASE")
                        || upper.starts_with("CREATE SCHEMA")
                        || upper.starts_with("DROP DATABASE")
                        || upper.starts_with("DROP SCHEMA");
                    if !db.is_empty() && !database_ddl {
                        tgt.query_drop(format!("USE {}", ferry_shared::ident::quote_ident(&db)))
                            .await
                            .map_err(db_err("USE"))?;
                    }
                    let touched = applier.touched_by(&upper);
                    for key in &touched {
                        applier.extras_of(&mut tgt, key).await?;
                    }
                    match tgt.query_drop(&sql[..]).await {
                        Ok(()) => {}
                        // Replayed after a crash between the DDL and its checkpoint: the
                        // target already has the change.
                        Err(mysql_async::Error::Server(e)) if ALREADY_APPLIED.contains(&e.code) => {
                            tracing::warn!(code = e.code, error = %e.message, "DDL already applied on the target (a replay after a restart); skipped");
                        }
                        Err(e) => {
                            return Err(db_err(&format!(
                                "applying DDL `{}`",
                                text.chars().take(100).collect::<String>()
                            ))(e))
                        }
                    }
                    applier.forget_tables();
                    if p.end_pos > 0 {
                        pos.pos = p.end_pos;
                    }
                    let mut sql = String::from("START TRANSACTION;");
                    applier
                        .track_ddl(&mut tgt, &cfg.task_id, &touched, &mut sql)
                        .await?;
                    let c = Checkpoint::at(&pos, &gtid);
                    for k in 0..workers {
                        sql.push_str(&parallel::checkpoint_sql(&cfg.task_id, k, workers, &c));
                        sql.push(';');
                        pool.done[k] = pos.clone();
                    }
                    sql.push_str("COMMIT");
                    tgt.query_drop(sql)
                        .await
                        .map_err(db_err("writing the checkpoint"))?;
                    totals.ddl += 1;
                    in_txn = false;
                    grouped = 0;
                    group_started = Instant::now();
                    if stopping {
                        break;
                    }
                }
            }
            Change::Rows { table, event } => {
                if cfg.schemas.as_ref().is_some_and(|s| !s.contains(&table.db)) {
                    continue;
                }
                if !in_txn {
                    in_txn = true;
                    pool.txn_start(&pos);
                }
                if let Some(floor) = cfg
                    .table_floors
                    .get(&(table.db.clone(), table.table.clone()))
                {
                    if pool.txn_at.partial_cmp(floor) == Some(std::cmp::Ordering::Less) {
                        // Read by the dump already (a table dumped at a later Location).
                        continue;
                    }
                }
                let t = applier.table(&mut tgt, &table).await?;
                let kind = event.kind;
                for (before, after) in event.rows {
                    // Full images: an UPDATE is a DELETE of the old key and a REPLACE of the
                    // new row, each routed by its own key. Partial images stay one statement.
                    let full = |i: &Option<crate::rows::Image>| {
                        i.as_ref().is_none_or(|i| {
                            i.iter()
                                .all(|c| matches!(c, Some(c) if !matches!(c, crate::rows::Cell::JsonDiff(_))))
                        })
                    };
                    let parts: Vec<(
                        RowsKind,
                        Option<crate::rows::Image>,
                        Option<crate::rows::Image>,
                    )> = if kind == RowsKind::Update && full(&before) && full(&after) {
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
                            apply::key_tuple(img, &table, &t.target)
                                .map_err(CatchupError::Definite)?
                        };
                        let w = route(&t, key.as_deref(), workers);
                        // Whole rows of a table with only a primary key: batched by key.
                        if kind != RowsKind::Update {
                            if let Some(key) = key {
                                let row = match &after {
                                    Some(a) => {
                                        let (cols, vals) = apply::row_values(a, &table, &t.target)
                                            .map_err(CatchupError::Definite)?;
                                        Some((cols.join(","), vals))
                                    }
                                    None => None,
                                };
                                pool.stage(
                                    w,
                                    Staged::Row {
                                        table: t.name.clone(),
                                        key_cols: t.key_cols.clone(),
                                        key,
                                        row,
                                    },
                                )
                                .await?;
                                continue;
                            }
                        }
                        let one = RowsEvent {
                            table_id: event.table_id,
                            kind,
                            rows: vec![(before, after)],
                        };
                        let mut sql = String::new();
                        for st in apply::statements(&one, &table, &t.target)
                            .map_err(CatchupError::Definite)?
                        {
                            sql.push_str(&st);
                            sql.push(';');
                        }
                        pool.stage(
                            w,
                            Staged::Stmts {
                                table: t.name.clone(),
                                sql,
                            },
                        )
                        .await?;
                    }
                    totals.rows += 1;
                }
            }
            Change::Commit { .. } => {
                if p.end_pos > 0 {
                    pos.pos = p.end_pos;
                }
                txn_ended = true;
            }
            // The events that open a binlog file (after its FORMAT_DESCRIPTION): between
            // transactions, so the position moves past them; at the binlog's end catch-up
            // then stands exactly there (0 bytes behind), not at the file's offset 4.
            Change::GtidList(_) | Change::Other("MARIA_BINLOG_CHECKPOINT" | "PREVIOUS_GTIDS")
                if !in_txn && p.end_pos > 0 =>
            {
                pos.pos = p.end_pos;
            }
            _ => {}
        }
        if txn_ended {
            pool.txn_end().await?;
            in_txn = false;
            totals.transactions += 1;
            grouped += 1;
            // Group source transactions into one commit per worker while more are already
            // waiting (the loop's top commits the group once nothing is); each worker's
            // checkpoint moves only with the data it covers.
            if stopping || grouped >= GROUP_MAX {
                let ckpt = Checkpoint::at(&pos, &gtid);
                pool.commit(&ckpt, stopping).await?;
                grouped = 0;
                group_started = Instant::now();
                totals.stopped_at = pos.to_string();
            }
            if stopping {
                break;
            }
        }
    }
    if !stopping {
        match reader.await {
            Ok(Ok(())) if !caught_up => {
                return Err(CatchupError::Transient(
                    "the source ended the binlog stream".into(),
                ))
            }
            Ok(r) => r?,
            Err(e) if e.is_cancelled() => {}
            Err(e) => return Err(CatchupError::Transient(format!("binlog reader: {e}"))),
        }
    }
    if in_txn {
        // A source transaction cut off at the end of the stream: not applied.
        pool.discard_txn().await?;
    }
    let ckpt = Checkpoint::at(&pos, &gtid);
    if !in_txn {
        pool.commit(&ckpt, true).await?;
        totals.stopped_at = pos.to_string();
    } else {
        pool.commit(&ckpt, false).await.ok();
    }
    pool.finish().await?;
    // The summary's lag: where the source is now against where catch-up stopped.
    let idle = caught_up || (queue.is_empty() && rx.is_empty());
    totals.lag = measure_lag(&mut src, &pos.file, pos.pos, last_event_ts, idle).await;
    Ok(())
}

const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Seconds behind (source clock now minus the last applied event's time; 0 when nothing is
/// waiting) and bytes behind the source's binlog end (when in the same file).
async fn measure_lag(
    src: &mut Conn,
    file: &str,
    pos: u64,
    last_event_ts: u32,
    idle: bool,
) -> (u64, Option<u64>) {
    let status: Option<mysql_async::Row> =
        src.query_first("SHOW MASTER STATUS").await.ok().flatten();
    let now: Option<u64> = src
        .query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .ok()
        .flatten();
    let bytes = status.and_then(|r| {
        let f: String = r.get(0)?;
        let p: u64 = r.get(1)?;
        (f == file).then(|| p.saturating_sub(pos))
    });
    let secs = match (idle && bytes.is_none_or(|b| b == 0), now) {
        (true, _) | (_, None) => 0,
        (false, Some(n)) => n.saturating_sub(u64::from(last_event_ts)),
    };
    (secs, bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn rotate_names_lose_appended_bytes() {
        let c = "mysql-bin.000001";
        assert_eq!(super::clean_file_name("mysql-bin.000001u\u{1}x", c), c);
        assert_eq!(
            super::clean_file_name("mysql-bin.0000027", c),
            "mysql-bin.000002"
        );
        assert_eq!(
            super::clean_file_name("mysql-bin.000002", c),
            "mysql-bin.000002"
        );
        assert_eq!(
            super::clean_file_name("other.000009\u{0}", c),
            "other.000009"
        );
    }
}
