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
pub mod schema;
pub mod split;
pub mod sql;
pub mod transcode;
mod worker;

use crate::checkpoint::{Owner, META_DB};
use crate::discover::{DataKind, DumpLayout, TablePlan};
use crate::error::{from_driver, LoadError};
use crate::transcode::{CsvFormat, Method, TableShape};
use ferry_shared::conn::{ConnSpec, ServerInfo};
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

/// CSV dialect for dumps without a manifest.
#[derive(Debug, Clone)]
pub struct CsvOptions {
    pub separator: String,
    pub delimiter: String,
    pub null_value: String,
    pub header: bool,
    pub backslash_escape: bool,
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
    pub csv: CsvOptions,
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
    pub csv: Option<CsvFormat>,
    /// Target column names (lower case) for checking CSV headers.
    pub target_columns: Vec<String>,
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
fn dump_identity(storage: &Arc<dyn Storage>) -> String {
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
    let storage = ferry_shared::storage::open(&cfg.from, &cfg.s3).await?;
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
    let setup = setup_tables(&cfg, &storage, &layout, &task, &mut ctl).await;
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
    for i in 0..run.tables.len() {
        worker::finalize_table(&run, &mut ctl, i).await?;
    }
    let views = finish_views_and_post(&run, &layout, &mut ctl).await?;
    let mut verified = Vec::new();
    if run.cfg.verify {
        verified = verify(&run, &mut ctl).await?;
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

/// Creates databases and tables and registers the files; returns the tables to load, how many
/// were skipped (`--on-existing skip`) and the task's chunk size.
async fn setup_tables(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    layout: &DumpLayout,
    task: &str,
    ctl: &mut mysql_async::Conn,
) -> Result<(Vec<TableCtx>, usize, u64), LoadError> {
    let chunk_size =
        checkpoint::register_task(ctl, task, &dump_identity(storage), cfg.chunk_size).await?;
    ctl.query_drop("SET SESSION foreign_key_checks = 0")
        .await
        .map_err(|e| from_driver(e, "session setup"))?;
    if !cfg.no_schema {
        for (db, file) in &layout.databases {
            let text = match file {
                Some(f) => Some((
                    read_schema_text(cfg, storage, f).await?,
                    storage.describe(f),
                )),
                None => None,
            };
            schema::create_database(ctl, db, text.as_ref().map(|(t, f)| (&t[..], f.as_str())))
                .await?;
        }
    }
    // Existing data first: one report for all tables.
    let mut occupied = Vec::new();
    let mut states = Vec::new();
    for t in &layout.tables {
        let state = checkpoint::table_state(ctl, task, &t.db, &t.name).await?;
        let exists = schema::table_exists(ctl, &t.db, &t.name).await?;
        if state.is_none() && exists && schema::table_has_rows(ctl, &t.db, &t.name).await? {
            occupied.push(qualified(&t.db, &t.name));
        }
        states.push((state, exists));
    }
    let resumed = states.iter().filter(|(s, _)| s.is_some()).count();
    let existing = states.iter().filter(|(s, e)| s.is_none() && *e).count();
    tracing::info!(
        new = states.len() - resumed - existing,
        existing_empty = existing - occupied.len(),
        holding_rows = occupied.len(),
        resumed,
        "precheck: target tables"
    );
    if !occupied.is_empty() && cfg.on_existing == OnExisting::Error {
        let n = occupied.len();
        occupied.truncate(10);
        return Err(LoadError::Target(format!(
            "precheck: {n} target table(s) already hold rows: {}; use --on-existing append|truncate|skip, or empty them",
            occupied.join(", ")
        )));
    }
    let mut out = Vec::new();
    let mut skipped = 0;
    for (t, (state, exists)) in layout.tables.iter().zip(states) {
        let q = qualified(&t.db, &t.name);
        let had_rows = occupied.contains(&q);
        if state.is_none() {
            if had_rows && cfg.on_existing == OnExisting::Skip {
                tracing::info!(table = %q, "target table holds rows: skipped (--on-existing skip)");
                checkpoint::set_table_state(
                    ctl,
                    task,
                    &t.db,
                    &t.name,
                    checkpoint::TABLE_FINISHED,
                    None,
                )
                .await?;
                skipped += 1;
                continue;
            }
            if had_rows && cfg.on_existing == OnExisting::Truncate {
                tracing::info!(table = %q, "emptying the target table (--on-existing truncate)");
                schema::exec(ctl, format!("TRUNCATE TABLE {q}").as_bytes(), &q).await?;
            }
            if !exists {
                if cfg.no_schema {
                    return Err(LoadError::Target(format!(
                        "{q} does not exist on the target and --no-schema was given: create it first, or drop --no-schema"
                    )));
                }
                let Some(f) = &t.schema_file else {
                    return Err(LoadError::Dump(format!(
                        "{q}: the dump has no schema file for it and the target has no such table: create it on the target and use --no-schema"
                    )));
                };
                let text = read_schema_text(cfg, storage, f).await?;
                schema::create_table(ctl, &t.db, &t.name, &text, &storage.describe(f)).await?;
            }
            let mut restore = None;
            // Only tables this load created: a user's existing table keeps its indexes.
            if cfg.defer_indexes && !exists {
                let idx = schema::secondary_indexes(ctl, &t.db, &t.name).await?;
                if !idx.is_empty() {
                    let drop: Vec<String> = idx
                        .iter()
                        .map(|(n, _)| format!("DROP INDEX {}", ferry_shared::ident::quote_ident(n)))
                        .collect();
                    let add: Vec<String> = idx.iter().map(|(_, d)| format!("ADD {d}")).collect();
                    let restore_sql = format!("ALTER TABLE {q} {}", add.join(", "));
                    // Record the definitions before dropping: a crash in between keeps them.
                    checkpoint::set_table_state(ctl, task, &t.db, &t.name, 0, Some(&restore_sql))
                        .await?;
                    match ctl
                        .query_drop(format!("ALTER TABLE {q} {}", drop.join(", ")))
                        .await
                    {
                        Ok(()) => {
                            tracing::info!(table = %q, indexes = idx.len(), "secondary indexes deferred");
                            restore = Some(restore_sql);
                        }
                        Err(e) => {
                            tracing::warn!(table = %q, error = %e, "cannot defer the indexes (kept)");
                            checkpoint::set_table_state(ctl, task, &t.db, &t.name, 0, Some(""))
                                .await?;
                        }
                    }
                }
            }
            for f in &t.files {
                checkpoint::register_file(ctl, task, &f.name, &t.db, &t.name, f.size).await?;
            }
            checkpoint::set_table_state(
                ctl,
                task,
                &t.db,
                &t.name,
                checkpoint::TABLE_LOADING,
                restore.as_deref(),
            )
            .await?;
        } else if state.as_ref().is_some_and(|(s, _)| *s == 0) {
            // A crash between deferring indexes and registering files: finish the setup.
            for f in &t.files {
                checkpoint::register_file(ctl, task, &f.name, &t.db, &t.name, f.size).await?;
            }
            checkpoint::set_table_state(ctl, task, &t.db, &t.name, checkpoint::TABLE_LOADING, None)
                .await?;
        }
        out.push(table_ctx(cfg, storage, layout, t, ctl).await?);
    }
    Ok((out, skipped, chunk_size))
}

async fn read_schema_text(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    name: &str,
) -> Result<Vec<u8>, LoadError> {
    let raw = input::read_all(storage, name).await?;
    decode_text(cfg, raw, &storage.describe(name))
}

/// Schema text in the connection's character set: GB18030 input is transcoded; with `auto`,
/// text that is not UTF-8 but is valid GB18030 is transcoded too.
fn decode_text(cfg: &LoadConfig, raw: Vec<u8>, file: &str) -> Result<Vec<u8>, LoadError> {
    let gb = || {
        let (text, _, bad) = encoding_rs::GB18030.decode(&raw);
        (!bad).then(|| text.into_owned().into_bytes())
    };
    match cfg.charset.as_str() {
        "gb18030" => gb().ok_or_else(|| LoadError::Input {
            file: file.to_string(),
            offset: 0,
            message: "not valid GB18030 text (--character-set gb18030)".into(),
        }),
        "utf8mb4" => match std::str::from_utf8(&raw) {
            Ok(_) => Ok(raw),
            Err(e) => Err(LoadError::Input {
                file: file.to_string(),
                offset: e.valid_up_to() as u64,
                message: "invalid UTF-8 (--character-set utf8mb4): set the file's --character-set"
                    .into(),
            }),
        },
        "auto" if std::str::from_utf8(&raw).is_err() => match gb() {
            Some(t) => {
                tracing::info!(file, "schema file is not UTF-8; read as GB18030");
                Ok(t)
            }
            None => Ok(raw),
        },
        _ => Ok(raw),
    }
}

async fn table_ctx(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    layout: &DumpLayout,
    t: &TablePlan,
    ctl: &mut mysql_async::Conn,
) -> Result<TableCtx, LoadError> {
    let q = qualified(&t.db, &t.name);
    let target = schema::target_columns(ctl, &t.db, &t.name).await?;
    let target_lower: Vec<String> = target.iter().map(|c| c.name.to_lowercase()).collect();
    let dump_columns: Vec<String> = if let Some(m) = &t.manifest {
        m.columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.clone())
            .collect()
    } else if let (true, Some(f)) = (
        cfg.no_schema || cfg.on_existing == OnExisting::Append,
        &t.schema_file,
    ) {
        let text = read_schema_text(cfg, storage, f).await?;
        let scratch = format!("scratch_{}", &checkpoint::file_id(&q)[..16]);
        schema::schema_file_columns(ctl, META_DB, &scratch, &text, &storage.describe(f))
            .await?
            .into_iter()
            .filter(|c| !c.generated)
            .map(|c| c.name)
            .collect()
    } else {
        target
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.clone())
            .collect()
    };
    for c in &dump_columns {
        if !target_lower.contains(&c.to_lowercase()) {
            return Err(LoadError::Target(format!(
                "column `{c}` of {q} in the dump does not exist in the target table (it has: {}): add it on the target, or load into a table that has it",
                target.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let csv = t
        .files
        .iter()
        .any(|f| f.kind == DataKind::Csv)
        .then(|| csv_format(cfg, layout));
    Ok(TableCtx {
        plan: t.clone(),
        shape: TableShape {
            qualified: q,
            columns: dump_columns,
            bit_columns: target
                .iter()
                .filter(|c| c.data_type == "bit")
                .map(|c| c.name.clone())
                .collect(),
            typed_text_columns: target
                .iter()
                .filter(|c| matches!(c.data_type.as_str(), "inet4" | "inet6" | "uuid"))
                .map(|c| c.name.clone())
                .collect(),
        },
        csv,
        target_columns: target_lower,
    })
}

fn csv_format(cfg: &LoadConfig, layout: &DumpLayout) -> CsvFormat {
    let (sep, delim, null, header, esc) =
        match layout.manifest.as_ref().and_then(|m| m.output.csv.as_ref()) {
            Some(d) => (
                d.separator.clone(),
                d.delimiter.clone(),
                d.null_value.clone(),
                d.header,
                d.escape_backslash,
            ),
            None => (
                cfg.csv.separator.clone(),
                cfg.csv.delimiter.clone(),
                cfg.csv.null_value.clone(),
                cfg.csv.header,
                cfg.csv.backslash_escape,
            ),
        };
    CsvFormat {
        separator: sep.into_bytes(),
        delimiter: delim.bytes().next(),
        backslash_escape: esc,
        null_values: if null.is_empty() && !cfg.csv.null_value.is_empty() {
            Vec::new()
        } else {
            vec![null.into_bytes()]
        },
        header,
    }
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
                let text = read_schema_text(&run.cfg, &run.storage, file).await?;
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
        let raw = read_schema_text(&run.cfg, &run.storage, &v.file).await?;
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

async fn verify(run: &Run, ctl: &mut mysql_async::Conn) -> Result<Vec<TableCheck>, LoadError> {
    let mut out = Vec::new();
    for t in &run.tables {
        let q = &t.shape.qualified;
        let m = t.plan.manifest.as_ref();
        let strict =
            run.cfg.on_existing != OnExisting::Append && run.cfg.on_duplicate == OnDuplicate::Error;
        let (rows, checksum_ok) = match m.and_then(|m| m.checksum.as_ref()) {
            Some(c) => {
                let qtext = ferry_shared::checksum::query(&c.row_expression, q, None);
                let r: Option<(u64, String)> = ctl
                    .query_first(qtext)
                    .await
                    .map_err(|e| from_driver(e, &format!("checksum of {q}")))?;
                let (n, sum) = r.unwrap_or((0, "0".into()));
                (n, Some(sum == c.sum && n == c.rows))
            }
            None => {
                let n: Option<u64> = ctl
                    .query_first(format!("SELECT COUNT(*) FROM {q}"))
                    .await
                    .map_err(|e| from_driver(e, &format!("counting {q}")))?;
                (n.unwrap_or(0), None)
            }
        };
        let expected = match m {
            Some(m) => Some(m.rows),
            None => Some(checkpoint::loaded_rows(ctl, &run.task, &t.plan.db, &t.plan.name).await?),
        };
        let count_ok = !strict || expected.is_none_or(|e| e == rows);
        let ok = count_ok && (!strict || checksum_ok.unwrap_or(true));
        out.push(TableCheck {
            table: q.clone(),
            rows,
            expected_rows: expected,
            checksum: match checksum_ok {
                Some(true) => "ok".into(),
                Some(false) => "mismatch".into(),
                None => "not checked".into(),
            },
            ok,
        });
    }
    Ok(out)
}
