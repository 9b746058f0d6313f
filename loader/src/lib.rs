//! `ferry load`: parallel, resumable, verifiable import of a dump into a MySQL-protocol target.
//!
//! The run, in order:
//! 1. Discover the dump's files ([`discover`]) and check the target (precheck report).
//! 2. Under the task's setup lock, create databases and tables, defer indexes, and register
//!    every data file in `ferry_meta` ([`checkpoint`]).
//! 3. Claim files one by one (several processes may share a task); split each into chunks at
//!    row boundaries ([`split`]); workers transcode chunks to `LOAD DATA` streams
//!    ([`transcode`]) and commit each chunk together with its checkpoint row ([`worker`]).
//! 4. When a table's last file is done: restore deferred indexes, rebase AUTO_INCREMENT.
//! 5. Views, triggers and routines; then verify row counts and checksums against the dump.

pub mod checkpoint;
pub mod discover;
pub mod error;
pub mod input;
pub mod scan;
pub mod schema;
mod setup;
pub mod split;
pub mod sql;
pub mod transcode;
mod verify;
mod worker;

use crate::checkpoint::Owner;
use crate::discover::{DataKind, DumpLayout, TablePlan};
use crate::error::{from_driver, LoadError};
use crate::transcode::{Method, TableShape};
use ferry_shared::conn::{ConnSpec, ServerInfo};
use ferry_shared::csv::CsvDialect;
use ferry_shared::filter::TableFilter;
use ferry_shared::ident::qualified;
use ferry_shared::progress::{Counters, ProgressMode, ProgressReporter};
use ferry_shared::storage::{S3Options, Storage};
use mysql_async::prelude::Queryable;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    Error,
    Append,
    Truncate,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Error,
    Replace,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Auto,
    LoadData,
    Insert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinerPolicy {
    /// Keep DEFINERs whose account exists on the target; drop the others.
    Auto,
    Keep,
    Strip,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: ConnSpec,
    /// Local directory or `s3://bucket/prefix`.
    pub from: String,
    pub s3: S3Options,
    pub threads: usize,
    pub task_id: Option<String>,
    pub filter: TableFilter,
    /// Tables exist on the target already; do not run schema files.
    pub no_schema: bool,
    pub on_existing: OnExisting,
    pub on_duplicate: OnDuplicate,
    pub method: MethodChoice,
    pub defer_indexes: bool,
    pub definer: DefinerPolicy,
    pub disable_binlog: bool,
    /// Chunk size in decompressed bytes.
    pub chunk_size: u64,
    /// `auto`, `utf8mb4`, `gb18030`, `latin1`, `binary`.
    pub charset: String,
    /// CSV dialect of files without a manifest (`--csv-*`); a ferry dump's manifest gives its
    /// own, which wins.
    pub csv: CsvDialect,
    pub verify: bool,
    /// How long a chunk or the coordination keeps retrying a target that went away.
    pub retry: ferry_shared::failure::RetryPolicy,
    pub sql_mode: String,
    /// Session time zone while loading (TIMESTAMP text in dumps is UTC unless a file says).
    pub time_zone: String,
    pub progress: ProgressMode,
    pub progress_interval: Duration,
    /// A claimant silent for longer than this is presumed dead.
    pub lease: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    pub table: String,
    pub rows: u64,
    pub expected_rows: Option<u64>,
    /// `ok`, `mismatch`, `not checked`.
    pub checksum: String,
    pub ok: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    pub task_id: String,
    pub source: String,
    pub format: String,
    pub method: String,
    pub tables: usize,
    pub views: usize,
    pub files: u64,
    pub chunks: u64,
    pub chunks_skipped: u64,
    /// Chunks each worker connection committed (how evenly the work spread).
    pub chunks_per_worker: Vec<u64>,
    pub files_taken_over: u64,
    pub rows: u64,
    pub bytes: u64,
    pub warnings: u64,
    pub elapsed_secs: f64,
    pub rows_per_sec: f64,
    pub mb_per_sec: f64,
    pub verified: Vec<TableCheck>,
    pub mismatches: usize,
}

/// What a worker needs to know about a table.
#[derive(Debug)]
pub(crate) struct TableCtx {
    pub plan: TablePlan,
    pub shape: TableShape,
    pub csv: Option<CsvDialect>,
    /// Target column names (lower case) for checking CSV headers.
    pub target_columns: Vec<String>,
    /// The target table's AUTO_INCREMENT column, if it has one.
    pub auto_increment: Option<String>,
}

/// A file being loaded by this process.
#[derive(Debug)]
pub(crate) struct FileState {
    pub name: String,
    pub file_id: String,
    pub table: usize,
    pub kind: DataKind,
    /// `.dat` files: the dialect from their control file, read before splitting.
    pub dat: std::sync::OnceLock<Arc<transcode::LoadDataSpec>>,
    pub control: Option<String>,
    pub expected_rows: Option<u64>,
    pub emitted: AtomicU32,
    pub completed: AtomicU32,
    pub rows: AtomicU64,
    pub split_done: AtomicBool,
    pub finished: AtomicBool,
}

/// Shared state of a run.
pub(crate) struct Run {
    pub cfg: LoadConfig,
    pub storage: Arc<dyn Storage>,
    pub task: String,
    pub owner: String,
    pub tables: Vec<TableCtx>,
    pub method: Method,
    pub default_charset: String,
    pub validate_utf8: bool,
    /// Backslashes escape in SQL strings.
    pub sql_backslash: bool,
    pub counters: Arc<Counters>,
    pub warnings: AtomicU64,
    pub skipped: AtomicU64,
    pub failed: std::sync::Mutex<Option<LoadError>>,
    pub cancel: AtomicBool,
    pub max_packet: u64,
    /// Chunks committed by each worker of this process.
    pub worker_chunks: Vec<AtomicU64>,
    /// Per-table progress bars (a terminal only); a unit is a file.
    pub bars: ferry_shared::progress::TableBars,
    /// Signalled when this process finishes a file.
    pub file_done: tokio::sync::Notify,
}

impl Run {
    pub fn fail(&self, e: LoadError) {
        let mut f = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(e);
        }
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn take_failure(&self) -> Option<LoadError> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// What identifies the dump across processes and machines: the S3 URL, or the local
/// directory's canonical path.
pub(crate) fn dump_identity(storage: &Arc<dyn Storage>) -> String {
    match storage.local_path("") {
        Some(p) => std::fs::canonicalize(&p)
            .map(|c| c.display().to_string())
            .unwrap_or_else(|_| storage.describe("")),
        None => storage.describe(""),
    }
}

fn default_task_id(storage: &Arc<dyn Storage>) -> String {
    format!(
        "load-{}",
        &checkpoint::file_id(&dump_identity(storage))[..12]
    )
}

pub async fn run(cfg: LoadConfig) -> Result<LoadSummary, LoadError> {
    let started = Instant::now();
    // Ranged reads retry as long as everything else (--retry-for-secs).
    let s3 = S3Options {
        retry: cfg.retry,
        ..cfg.s3.clone()
    };
    let storage = ferry_shared::storage::open(&cfg.from, &s3).await?;
    let layout = discover::discover(&storage, &cfg.filter).await?;
    // A dump of databases without tables still creates them (catch-up may fill them).
    if layout.tables.is_empty() && layout.views.is_empty() && layout.databases.is_empty() {
        return Err(LoadError::Dump(format!(
            "no tables to load in {} (format: {}){}",
            storage.describe(""),
            layout.format,
            if cfg.filter.rules() == ["*.*"] {
                String::new()
            } else {
                format!(" with the filter {:?}", cfg.filter.rules())
            }
        )));
    }
    let task = cfg
        .task_id
        .clone()
        .unwrap_or_else(|| default_task_id(&storage));
    let total_bytes: u64 = layout.tables.iter().map(|t| t.bytes()).sum();
    let total_files: usize = layout.tables.iter().map(|t| t.files.len()).sum();
    tracing::info!(
        dump = %storage.describe(""),
        format = layout.format,
        tables = layout.tables.len(),
        views = layout.views.len(),
        files = total_files,
        bytes = total_bytes,
        task = %task,
        "dump found"
    );

    // Precheck.
    let mut ctl = cfg.target.connect().await?;
    let info = ServerInfo::query(&mut ctl)
        .await
        .map_err(|e| from_driver(e, "reading the target's version"))?;
    let (local_infile, max_packet): (Option<i64>, Option<u64>) = ctl
        .query_first("SELECT @@local_infile, @@max_allowed_packet")
        .await
        .map_err(|e| from_driver(e, "reading target settings"))?
        .unwrap_or((None, None));
    let local_infile = local_infile.unwrap_or(0) == 1;
    let max_packet = max_packet.unwrap_or(16 << 20);
    tracing::info!(target = %cfg.target.display(), version = %info.version, "precheck: target reachable");
    let method = match (cfg.method, local_infile) {
        (MethodChoice::Insert, _) => Method::Insert,
        (MethodChoice::LoadData, false) => {
            return Err(LoadError::Target(
                "precheck: the target has local_infile=OFF, so LOAD DATA LOCAL cannot run: SET GLOBAL local_infile=1 on the target, or use --method insert".into(),
            ))
        }
        (_, true) => Method::LoadData,
        (MethodChoice::Auto, false) => {
            tracing::warn!("precheck: the target has local_infile=OFF: loading with batched INSERTs instead of LOAD DATA LOCAL (slower); SET GLOBAL local_infile=1 on the target to use LOAD DATA");
            Method::Insert
        }
    };
    tracing::info!(
        local_infile,
        max_allowed_packet = max_packet,
        method = if method == Method::LoadData {
            "load-data"
        } else {
            "insert"
        },
        "precheck: target settings"
    );
    let disk: Option<Option<u64>> = ctl
        .query_first("SELECT CAST(SUM(Available) AS UNSIGNED) * 1024 FROM information_schema.DISKS")
        .await
        .ok()
        .flatten();
    match disk.flatten() {
        Some(free) if free < total_bytes => {
            return Err(LoadError::Target(format!(
                "precheck: the target's disks have {} free, the dump holds {} (more once decompressed): free space first",
                ferry_shared::progress::human_bytes(free),
                ferry_shared::progress::human_bytes(total_bytes)
            )))
        }
        Some(free) => tracing::info!(free, needed_at_least = total_bytes, "precheck: target disk space"),
        None => tracing::info!(
            needed_at_least = total_bytes,
            "precheck: target disk space is not visible over SQL (information_schema.DISKS); make sure the target has room for the data"
        ),
    }
    checkpoint::ensure_schema(&mut ctl).await?;
    tracing::info!("precheck: privileges: the checkpoint schema `ferry_meta` is writable");

    // This process's presence: a named lock on its own connection, and a heartbeat.
    let mut owner_conn = cfg.target.connect().await?;
    let owner = Owner::register(&mut owner_conn, &task).await?;
    let hb_task = task.clone();
    let (hb_owner, hb_lock, hb_target) = (owner.id.clone(), owner.lock.clone(), cfg.target.clone());
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            if let Err(e) = Owner::heartbeat(&mut owner_conn, &hb_task, &hb_owner).await {
                tracing::warn!(error = %e, "heartbeat failed");
                // The target restarted (the owner lock went with the connection): take it
                // again on a new connection, so other processes still see this one alive.
                if let Ok(mut c) = hb_target.connect().await {
                    if checkpoint::get_lock(&mut c, &hb_lock, Duration::ZERO)
                        .await
                        .is_ok()
                    {
                        owner_conn = c;
                    }
                }
            }
        }
    });
    let result = run_owned(
        cfg, storage, layout, task, owner, method, max_packet, ctl, started,
    )
    .await;
    heartbeat.abort();
    result
}

#[allow(clippy::too_many_arguments)]
async fn run_owned(
    cfg: LoadConfig,
    storage: Arc<dyn Storage>,
    layout: DumpLayout,
    task: String,
    owner: Owner,
    method: Method,
    max_packet: u64,
    mut ctl: mysql_async::Conn,
    started: Instant,
) -> Result<LoadSummary, LoadError> {
    let setup_lock = checkpoint::lock_name(&task, "setup");
    checkpoint::get_lock(&mut ctl, &setup_lock, Duration::from_secs(3600)).await?;
    let setup = setup::setup_tables(&cfg, &storage, &layout, &task, &mut ctl).await;
    checkpoint::release_lock(&mut ctl, &setup_lock).await?;
    let (tables, skipped_tables, chunk_size) = setup?;

    let explicit_charset = cfg.charset != "auto";
    let manifest_charset = layout.manifest.as_ref().map(|m| m.output.charset.clone());
    let default_charset = match (&manifest_charset, explicit_charset) {
        (_, true) if cfg.charset == "gb18030" => "utf8mb4".to_string(),
        (_, true) => cfg.charset.clone(),
        (Some(cs), false) => cs.clone(),
        (None, false) => "utf8mb4".to_string(),
    };
    let threads = cfg.threads;
    let counters = Arc::new(Counters::default());
    let total_rows: u64 = tables
        .iter()
        .filter_map(|t| t.plan.manifest.as_ref().map(|m| m.rows))
        .sum();
    let sql_backslash = layout
        .manifest
        .as_ref()
        .is_none_or(|m| m.output.escape_backslash)
        && !cfg
            .sql_mode
            .to_ascii_uppercase()
            .contains("NO_BACKSLASH_ESCAPES");
    let progress = ProgressReporter::start(
        "load",
        cfg.progress,
        counters.clone(),
        total_rows,
        cfg.progress_interval,
    );
    let bars = progress.table_bars(
        tables
            .iter()
            .map(|t| {
                (
                    t.shape.qualified.clone(),
                    t.plan.manifest.as_ref().map_or(0, |m| m.rows),
                    t.plan.files.len() as u64,
                )
            })
            .collect(),
    );
    let run = Arc::new(Run {
        bars,
        file_done: tokio::sync::Notify::new(),
        validate_utf8: cfg.charset == "utf8mb4",
        sql_backslash,
        cfg,
        storage,
        task: task.clone(),
        owner: owner.id.clone(),
        tables,
        method,
        default_charset,
        counters: counters.clone(),
        warnings: AtomicU64::new(0),
        skipped: AtomicU64::new(0),
        failed: std::sync::Mutex::new(None),
        cancel: AtomicBool::new(false),
        max_packet,
        worker_chunks: (0..threads).map(|_| AtomicU64::new(0)).collect(),
    });
    let taken_over = worker::load_all(&run, chunk_size).await;
    progress.finish();
    if let Some(e) = run.take_failure() {
        return Err(e);
    }
    let taken_over = taken_over?;
    // The control connection idled through the data phase, across any target restart.
    let mut ctl = worker::fresh_connection(&run, ctl).await?;

    // Tables whose last file another (possibly dead) process finished.
    let states = checkpoint::table_states(&mut ctl, &run.task).await?;
    for (i, t) in run.tables.iter().enumerate() {
        let key = (t.plan.db.clone(), t.plan.name.clone());
        if states
            .get(&key)
            .is_none_or(|(s, _)| *s != checkpoint::TABLE_FINISHED)
        {
            worker::finalize_table(&run, &mut ctl, i).await?;
        }
    }
    let views = finish_views_and_post(&run, &layout, &mut ctl).await?;
    let mut verified = Vec::new();
    if run.cfg.verify {
        verified = verify::verify(&run, &mut ctl).await?;
    }
    let mismatches = verified.iter().filter(|c| !c.ok).count();
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let rows = counters.rows.load(Ordering::Relaxed);
    let bytes = counters.bytes.load(Ordering::Relaxed);
    let summary = LoadSummary {
        task_id: task,
        source: run.storage.describe(""),
        format: layout.format.to_string(),
        method: if run.method == Method::LoadData {
            "load-data"
        } else {
            "insert"
        }
        .into(),
        tables: run.tables.len() + skipped_tables,
        views,
        files: counters.files.load(Ordering::Relaxed),
        chunks: counters.chunks_done.load(Ordering::Relaxed),
        chunks_skipped: run.skipped.load(Ordering::Relaxed),
        chunks_per_worker: run
            .worker_chunks
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect(),
        files_taken_over: taken_over,
        rows,
        bytes,
        warnings: run.warnings.load(Ordering::Relaxed),
        elapsed_secs: secs,
        rows_per_sec: rows as f64 / secs,
        mb_per_sec: bytes as f64 / secs / 1e6,
        verified,
        mismatches,
    };
    if mismatches > 0 {
        return Err(mismatch_error(&summary.verified));
    }
    Ok(summary)
}

/// The verification failure naming every table that differs from the dump.
fn mismatch_error(verified: &[TableCheck]) -> LoadError {
    let mismatches = verified.iter().filter(|c| !c.ok).count();
    let list: Vec<String> = verified
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{}: {} rows (expected {}), checksum {}",
                c.table,
                c.rows,
                c.expected_rows.map_or("?".into(), |r| r.to_string()),
                c.checksum
            )
        })
        .collect();
    LoadError::Verify(format!(
        "{mismatches} table(s) differ from the dump:\n  {}",
        list.join("\n  ")
    ))
}

/// Views (after all tables), then triggers and routines; once per task.
async fn finish_views_and_post(
    run: &Run,
    layout: &DumpLayout,
    ctl: &mut mysql_async::Conn,
) -> Result<usize, LoadError> {
    let lock = checkpoint::lock_name(&run.task, "setup");
    checkpoint::get_lock(ctl, &lock, Duration::from_secs(3600)).await?;
    let r = async {
        if checkpoint::views_done(ctl, &run.task).await? {
            return Ok(layout.views.len());
        }
        if !run.cfg.no_schema {
            create_views(run, layout, ctl).await?;
            for (db, file) in &layout.post {
                let text = setup::read_schema_text(&run.cfg, &run.storage, file).await?;
                let desc = run.storage.describe(file);
                schema::exec(
                    ctl,
                    format!("USE {}", ferry_shared::ident::quote_ident(db)).as_bytes(),
                    &desc,
                )
                .await?;
                for s in post_statements(&text) {
                    schema::exec(ctl, &s, &desc).await?;
                }
            }
        }
        checkpoint::set_views_done(ctl, &run.task).await?;
        Ok(layout.views.len())
    }
    .await;
    checkpoint::release_lock(ctl, &lock).await?;
    r
}

/// Statements of a triggers/routines file, honouring `DELIMITER` lines.
fn post_statements(text: &[u8]) -> Vec<Vec<u8>> {
    let text = String::from_utf8_lossy(text);
    let mut delim = ";".to_string();
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        if let Some(d) = line
            .trim()
            .strip_prefix("DELIMITER ")
            .or_else(|| line.trim().strip_prefix("delimiter "))
        {
            delim = d.trim().to_string();
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if line.trim_end().ends_with(&delim) {
            let s = cur.trim_end();
            let s = s[..s.len() - delim.len()].trim();
            if !s.is_empty() {
                out.push(s.as_bytes().to_vec());
            }
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().as_bytes().to_vec());
    }
    out
}

async fn create_views(
    run: &Run,
    layout: &DumpLayout,
    ctl: &mut mysql_async::Conn,
) -> Result<(), LoadError> {
    let mut pending: Vec<(String, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
    for v in &layout.views {
        let raw = setup::read_schema_text(&run.cfg, &run.storage, &v.file).await?;
        let desc = run.storage.describe(&v.file);
        let strip = match run.cfg.definer {
            DefinerPolicy::Keep => false,
            DefinerPolicy::Strip => true,
            DefinerPolicy::Auto => match schema::definer_of(&raw) {
                None => false,
                Some((user, host)) => {
                    let found: Result<Option<u8>, _> = ctl
                        .exec_first(
                            "SELECT 1 FROM mysql.user WHERE User = ? AND Host = ?",
                            (&user, &host),
                        )
                        .await;
                    match found {
                        Ok(Some(_)) => false,
                        Ok(None) => {
                            tracing::info!(view = %qualified(&v.db, &v.name), definer = %format!("{user}@{host}"), "the view's DEFINER does not exist on the target: the view is created with the loading user as definer");
                            true
                        }
                        Err(_) => false,
                    }
                }
            },
        };
        let Some((stmt, settings)) = schema::view_statement(&raw, &v.db, &v.name, strip) else {
            return Err(LoadError::Input {
                file: desc,
                offset: 0,
                message: "no CREATE VIEW statement in the view file".into(),
            });
        };
        pending.push((desc, stmt, settings));
    }
    // Views may use other views: retry until no progress.
    let mut last_err = None;
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (desc, stmt, settings) in pending {
            for s in &settings {
                schema::exec(ctl, s, &desc).await?;
            }
            match schema::exec(ctl, &stmt, &desc).await {
                Ok(()) => {}
                Err(e) => {
                    last_err = Some(e);
                    rest.push((desc, stmt, settings));
                }
            }
        }
        if rest.len() == before {
            return Err(last_err.unwrap_or_else(|| LoadError::Internal("view creation".into())));
        }
        pending = rest;
    }
    Ok(())
}
