//! The catch-up loop's wiring: stream the source's binlog from the checkpoints (or the start)
//! and execute what the [`Coordinator`] decides for each change, on the workers of a
//! [`Pool`]; after a lost connection, resume from the checkpoints with backoff.
//!
//! The rules that keep catch-up exact are in the modules that keep them:
//! [`crate::coordinator`] (groups, idle commit, barriers, resume-skip, floors, `--until`),
//! [`crate::checkpoint`] (what a checkpoint covers and how a run resumes), [`crate::route`]
//! (causality), [`crate::pool`] (batching, bounded memory), [`crate::ddl`] (the barrier),
//! [`crate::schema_tracker`] and [`crate::precheck`].

use crate::checkpoint;
use crate::coordinator::{Action, CommitReason, Coordinator, Rules};
pub use crate::error::CatchupError;
use crate::error::{db_err, located};
use crate::pool::{Pool, SESSION_SETUP};
use crate::progress::{Counts, Reporter};
use crate::schema_tracker::{self, SchemaTracker};
use crate::source::{self, StreamStart};
use ferry_shared::conn::ConnSpec;
use ferry_shared::failure::Classify;
use ferry_shared::location::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;
use tokio::sync::mpsc;

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
    /// Where progress reports go (`None`: none are made).
    pub progress: Option<std::sync::Arc<crate::progress::ProgressFeed>>,
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
    Ok(spec.connect().await?)
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
    let r = loop {
        let before = totals.transactions + totals.ddl;
        match run_once(&cfg, &mut totals).await {
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

/// The target's `ferry_meta` tables, and where this attempt starts: per worker, the position
/// before which it committed everything, and the last GTID.
async fn start_point(
    cfg: &CatchupConfig,
    tgt: &mut Conn,
    src: &mut Conn,
) -> Result<checkpoint::Resume, CatchupError> {
    let tables = [checkpoint::CHECKPOINT_TABLE, schema_tracker::SCHEMA_TABLE];
    ferry_shared::meta::ensure(tgt, &tables)
        .await
        .map_err(CatchupError::Failed)?;
    tgt.query_drop(SESSION_SETUP)
        .await
        .map_err(db_err("target session setup"))?;
    // Worker checkpoints: start at the lowest; each worker skips what it already committed.
    let saved = checkpoint::read_checkpoints(tgt, &cfg.task_id).await?;
    if let Some(r) = checkpoint::resume(&saved, cfg.workers) {
        let position = checkpoint::lowest(&r.done);
        tracing::info!(%position, workers = r.workers, "resuming from the checkpoint");
        return Ok(r);
    }
    let (first, gtid) = match &cfg.start {
        Start::Position(p) => (p.clone(), None),
        Start::Gtid(set) => (
            crate::locate::start_for_gtid(src, set, cfg.server_id)
                .await
                .map_err(located)?,
            Some(set.clone()),
        ),
        Start::Time(t) => (
            crate::locate::start_for_time(src, *t, cfg.server_id)
                .await
                .map_err(located)?,
            None,
        ),
    };
    tracing::info!(position = %first, "start position");
    Ok(checkpoint::Resume::fresh(first, gtid, cfg.workers))
}

/// The binlog reader: streams from `start` into `tx`, reconnecting while the source still
/// holds a killed run's replica connection under our server id.
fn spawn_reader(
    cfg: &CatchupConfig,
    stream_conn: Conn,
    stream_start: StreamStart,
    tx: mpsc::Sender<Vec<source::Positioned>>,
) -> tokio::task::JoinHandle<Result<(), source::SourceError>> {
    let source_spec = cfg.source.clone();
    tokio::spawn(async move {
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
    })
}

/// Ends the reader (and its replica connection) on every way out of an attempt.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What one attempt works with.
struct Attempt<'a> {
    cfg: &'a CatchupConfig,
    tgt: Conn,
    src: Conn,
    pool: Pool,
    tracker: SchemaTracker,
    coordinator: Coordinator,
    totals: &'a mut Totals,
}

impl Attempt<'_> {
    /// Executes the coordinator's actions; returns true at `Stop`.
    async fn execute(&mut self, actions: &mut Vec<Action>) -> Result<bool, CatchupError> {
        let mut stop = false;
        for a in actions.drain(..) {
            match a {
                Action::Begin { skip } => self.pool.txn_start(&skip),
                Action::Rows { table, event } => {
                    let t = self.tracker.table(&mut self.tgt, &table).await?;
                    self.totals.rows +=
                        crate::route::stage_event(&mut self.pool, &t, &table, event).await?;
                }
                Action::End => {
                    self.pool.txn_end().await?;
                    self.totals.transactions += 1;
                }
                Action::Commit {
                    at,
                    all,
                    reason: CommitReason::CutOff,
                } => {
                    self.pool.commit(&at, all).await.ok();
                }
                Action::Commit { at, all, .. } => {
                    self.pool.commit(&at, all).await?;
                    self.totals.stopped_at = at.pos.to_string();
                }
                Action::Ddl(d) => {
                    let task = &self.cfg.task_id;
                    crate::ddl::apply(&mut self.tgt, &mut self.pool, &mut self.tracker, task, &d)
                        .await?;
                    self.totals.ddl += 1;
                }
                Action::Discard => self.pool.discard_txn().await?,
                Action::Stop => stop = true,
            }
        }
        Ok(stop)
    }

    fn counts(&self) -> Counts {
        Counts {
            transactions: self.totals.transactions,
            rows: self.totals.rows,
        }
    }
}

async fn run_once(cfg: &CatchupConfig, totals: &mut Totals) -> Result<(), CatchupError> {
    let caught_up = cfg.until.as_ref().is_some_and(|u| u.stops_at_binlog_end());
    let mut tgt = connect(&cfg.target).await?;
    let mut src = connect(&cfg.source).await?;
    let resume = start_point(cfg, &mut tgt, &mut src).await?;
    let (done, gtid) = (resume.done, resume.gtid);
    let workers = done.len();
    totals.workers = workers;
    let start = checkpoint::lowest(&done);
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
    tgt.query_drop(checkpoint::rows_sql(&cfg.task_id, &resume.rows))
        .await
        .map_err(db_err("writing the checkpoint"))?;

    let mut conns = Vec::with_capacity(workers);
    for _ in 0..workers {
        let mut c = connect(&cfg.target).await?;
        c.query_drop(SESSION_SETUP)
            .await
            .map_err(db_err("target session setup"))?;
        conns.push(c);
    }
    let pool = Pool::spawn(conns, &cfg.task_id);

    let stream_conn = connect(&cfg.source).await?;
    // Changes arrive in a synchronous callback; apply them from an async loop fed by a channel.
    // A few batches in flight: decoded row images take a few times their binlog size, so a
    // long queue would hold hundreds of MiB while the target is the slow side.
    let (tx, mut rx) = mpsc::channel::<Vec<source::Positioned>>(4);
    let stream_start = StreamStart {
        file: start.file.clone(),
        pos: start.pos,
        server_id: cfg.server_id,
        non_blocking: caught_up,
    };
    let reader = spawn_reader(cfg, stream_conn, stream_start, tx);
    let _reader_guard = AbortOnDrop(reader.abort_handle());

    let tracker = SchemaTracker::load(&mut tgt, &cfg.task_id, cfg.dump_columns.clone()).await?;
    let rules = Rules {
        until: cfg.until.clone(),
        schemas: cfg.schemas.clone(),
        table_floors: cfg.table_floors.clone(),
    };
    let coordinator = Coordinator::new(rules, done, gtid, Instant::now());
    let mut at = Attempt {
        cfg,
        tgt,
        src,
        pool,
        tracker,
        coordinator,
        totals,
    };
    let mut queue = std::collections::VecDeque::new();
    let mut stop = cfg.stop.clone();
    let mut progress = Reporter::new(cfg.progress.as_deref(), at.counts());
    let mut actions = Vec::new();
    loop {
        if stop.as_ref().is_some_and(|s| *s.borrow()) {
            stop = None;
            at.coordinator.request_stop(&mut actions);
            if at.execute(&mut actions).await? {
                break;
            }
        }
        let nothing_ready = queue.is_empty() && rx.is_empty();
        at.coordinator
            .on_tick(nothing_ready, Instant::now(), &mut actions);
        at.execute(&mut actions).await?;
        let Some(p) = queue.pop_front() else {
            tokio::select! {
                biased;
                _ = wait_stop(&mut stop), if stop.is_some() => {}
                b = rx.recv() => match b { Some(b) => queue.extend(b), None => break },
            }
            continue;
        };
        let idle = queue.is_empty() && rx.is_empty();
        let counts = at.counts();
        let pos = at.coordinator.pos();
        if let Some(lag) = progress
            .event(p.timestamp, &mut at.src, pos, counts, idle)
            .await
        {
            at.totals.lag = lag;
        }
        at.coordinator.on_change(p, Instant::now(), &mut actions);
        if at.execute(&mut actions).await? {
            break;
        }
    }
    if !at.coordinator.stopping() {
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
    at.coordinator.finish(Instant::now(), &mut actions);
    at.execute(&mut actions).await?;
    at.pool.finish().await?;
    // The summary's lag: where the source is now against where catch-up stopped.
    let idle = caught_up || (queue.is_empty() && rx.is_empty());
    let pos = at.coordinator.pos();
    let ts = progress.last_event_ts;
    at.totals.lag = crate::progress::measure_lag(&mut at.src, &pos.file, pos.pos, ts, idle).await;
    Ok(())
}
