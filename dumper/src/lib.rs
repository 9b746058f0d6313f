//! `ferry dump`: a consistent, parallel snapshot of a MySQL-protocol server to a local directory
//! or S3.
//!
//! The run, and what makes it resumable:
//! 1. Connect, discover tables through the filter, write schema files.
//! 2. Plan chunks (see [`chunk`]) and persist the plan as `.ferry-dump/plan.json` together with a
//!    fingerprint of the options. A re-run with the same options reuses this plan; other options
//!    are refused rather than mixing two dumps.
//! 3. Open N snapshot workers at one consistent point (see [`consistency`]).
//! 4. Workers take chunks from a shared queue and stream them to files. When a chunk's files are
//!    complete, a marker `.ferry-dump/done/<table>.<chunk>.json` records its files, rows, checksum
//!    and the Location of the snapshot it was read at. A chunk without a marker is redone from
//!    scratch on the next run (its leftover files are deleted first), so nothing is duplicated.
//! 5. When every chunk has a marker: write `metadata` and, last, `ferry-manifest.json`; remove the
//!    state directory. A killed and resumed dump reads its remaining chunks at a new consistent
//!    point, so its manifest lists several Locations.

pub mod chunk;
pub mod consistency;
pub mod dataconn;
pub mod encode;
pub mod error;
pub mod schema;
pub mod writer;

use crate::chunk::ChunkPlan;
use crate::consistency::{Consistency, SnapshotWorker};
use crate::dataconn::DataConn;
use crate::encode::{CsvEncoder, RowEncoder, SqlEncoder, SqlOptions};
pub use crate::error::DumpError;
use crate::schema::{TableInfo, ViewInfo};
use crate::writer::{ChunkWriter, Compression};
use bytes::Bytes;
use ferry_shared::conn::{ConnSpec, ServerInfo};
use ferry_shared::failure::Backoff;
use ferry_shared::filter::TableFilter;
use ferry_shared::ident::encode_file_name;
use ferry_shared::manifest::*;
use ferry_shared::progress::{Counters, ProgressMode, ProgressReporter, TableBars};
use ferry_shared::storage::{self, S3Options, Storage};
use ferry_shared::{checksum, Location};
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

const STATE_DIR: &str = ".ferry-dump";
const PLAN_NAME: &str = ".ferry-dump/plan.json";
const DONE_PREFIX: &str = ".ferry-dump/done/";
const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Sql,
    Csv,
}

/// Everything `ferry dump` needs, validated by the CLI.
#[derive(Debug, Clone)]
pub struct DumpConfig {
    pub source: ConnSpec,
    /// Local directory or `s3://bucket/prefix`.
    pub to: String,
    pub s3: S3Options,
    /// How long reading keeps retrying a source that went away (each retry at a new
    /// consistent point).
    pub retry: ferry_shared::failure::RetryPolicy,
    pub threads: usize,
    /// Target rows per chunk; None: one chunk per table.
    pub rows: Option<u64>,
    pub filetype: FileType,
    pub sql: SqlOptions,
    pub csv: CsvDialect,
    pub compression: Compression,
    /// Split data files at about this many uncompressed bytes.
    pub file_size: Option<u64>,
    pub consistency: Consistency,
    pub filter: TableFilter,
    pub where_clause: Option<String>,
    pub no_data: bool,
    pub no_schemas: bool,
    pub no_views: bool,
    pub triggers: bool,
    pub routines: bool,
    pub checksum: bool,
    pub progress: ProgressMode,
    pub progress_interval: Duration,
}

impl DumpConfig {
    /// Options that must not change between a run and its resumption.
    fn fingerprint(&self) -> String {
        format!(
            "filetype={:?};compress={};csv={:?};sql={}/{}/{};filesize={:?};rows={:?};filter={};where={:?};no_data={};checksum={}",
            self.filetype,
            self.compression.name(),
            self.csv,
            self.sql.statement_size,
            self.sql.complete_insert,
            self.sql.escape_backslash,
            self.file_size,
            self.rows,
            self.filter,
            self.where_clause,
            self.no_data,
            self.checksum
        )
    }
}

/// What a dump did, for the summary line and `--output json`.
#[derive(Debug, Clone, Serialize)]
pub struct DumpSummary {
    pub destination: String,
    pub consistency: String,
    pub blocked_ms: u64,
    pub locations: Vec<String>,
    pub tables: u64,
    pub views: u64,
    pub chunks: u64,
    pub chunks_resumed: u64,
    pub files: u64,
    pub rows: u64,
    /// Bytes stored (after compression).
    pub bytes: u64,
    /// Bytes before compression.
    pub raw_bytes: u64,
    pub elapsed_secs: f64,
    pub rows_per_sec: f64,
    pub raw_mb_per_sec: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TablePlan {
    info: TableInfo,
    chunks: Vec<ChunkPlan>,
    schema_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DumpPlan {
    version: u32,
    fingerprint: String,
    started_at: String,
    server: ServerInfo,
    databases: Vec<DatabaseEntry>,
    tables: Vec<TablePlan>,
    views: Vec<ViewEntry>,
}

/// Marker of a finished chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ChunkDone {
    table: usize,
    chunk: u32,
    rows: u64,
    raw_bytes: u64,
    files: Vec<FileEntry>,
    location: Option<Location>,
    taken_at: String,
    strategy: String,
    checksum: Option<ChunkChecksum>,
}

/// A marker object: a batch of chunks, or (written by earlier versions) a single chunk.
#[derive(Deserialize)]
#[serde(untagged)]
enum MarkerObject {
    Batch(Vec<ChunkDone>),
    One(ChunkDone),
}

fn done_name(table: usize, chunk: u32) -> String {
    format!("{DONE_PREFIX}{table:06}.{chunk:09}.json")
}

fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

/// Runs a dump (or resumes an interrupted one) and returns its summary.
pub async fn run(cfg: DumpConfig) -> Result<DumpSummary, DumpError> {
    let started = Instant::now();
    // S3 part buffers: one filling and one uploading per worker (memory: workers x 2 parts).
    let s3 = S3Options {
        max_buffered_parts: Some(cfg.s3.max_buffered_parts.unwrap_or(2 * cfg.threads)),
        ..cfg.s3.clone()
    };
    let storage = open_destination(&cfg, &s3).await?;
    let mut ctl = cfg.source.connect().await?;
    let server = ServerInfo::query(&mut ctl)
        .await
        .map_err(|e| DumpError::query("reading the server version", e))?;
    tracing::info!(server = %cfg.source.display(), flavor = %server.flavor, version = %server.version, "connected to source");

    let (plan, resuming) = plan_or_resume(&cfg, &mut ctl, &server, &*storage).await?;
    let _ = ctl.disconnect().await;

    // Which chunks are finished already?
    let mut done: BTreeMap<(usize, u32), ChunkDone> = BTreeMap::new();
    read_markers(&*storage, &mut done).await?;
    let resumed = done.len() as u64;
    let queue = unfinished(&cfg, &plan, &done);
    let total_chunks: u64 = if cfg.no_data {
        0
    } else {
        plan.tables.iter().map(|t| t.chunks.len() as u64).sum()
    };
    let counters = Arc::new(Counters::default());
    counters.chunks_total.store(total_chunks, Ordering::Relaxed);
    counters.chunks_done.store(resumed, Ordering::Relaxed);
    let est_rows: u64 = plan.tables.iter().map(|t| t.info.est_rows).sum();
    let reporter = ProgressReporter::start(
        "dump",
        cfg.progress,
        counters.clone(),
        est_rows,
        cfg.progress_interval,
    );

    let strategy_name: String;
    let mut blocked_ms = 0;
    let mut point_without_chunks = None;
    let lock_list: Vec<(String, String)> = plan
        .tables
        .iter()
        .map(|t| (t.info.db.clone(), t.info.name.clone()))
        .collect();
    if !queue.is_empty() {
        let table_bars = Arc::new(
            reporter.table_bars(
                plan.tables
                    .iter()
                    .enumerate()
                    .map(|(ti, t)| {
                        let left = t
                            .chunks
                            .iter()
                            .filter(|c| !done.contains_key(&(ti, c.index)))
                            .count();
                        (t.info.display(), t.info.est_rows, left as u64)
                    })
                    .collect(),
            ),
        );
        let base = WorkerCtx {
            cfg: cfg.clone(),
            storage: storage.clone(),
            plan: plan.clone(),
            queue: Mutex::new(queue),
            abort: AtomicBool::new(false),
            counters: counters.clone(),
            table_bars,
            taken_at: String::new(),
            strategy: String::new(),
            resuming,
            finished: Mutex::new(Vec::new()),
        };
        match read_chunks(base, &lock_list, &mut done).await {
            Ok((strategy, blocked)) => {
                strategy_name = strategy;
                blocked_ms = blocked;
            }
            Err(e) => {
                reporter.finish();
                return Err(e);
            }
        }
    } else if let Some(m) = done.values().next() {
        strategy_name = m.strategy.clone();
    } else {
        let (strategy, blocked, point) = read_point_without_chunks(&cfg, &plan, &lock_list).await?;
        strategy_name = strategy;
        blocked_ms = blocked;
        point_without_chunks = point;
    }
    reporter.finish();

    let manifest = build_manifest(&plan, &done, point_without_chunks, &cfg, &strategy_name)?;
    write_outputs(&*storage, &plan, &manifest).await?;

    let elapsed = started.elapsed().as_secs_f64();
    let raw: u64 = done.values().map(|d| d.raw_bytes).sum();
    Ok(DumpSummary {
        destination: storage.describe(""),
        consistency: strategy_name,
        blocked_ms,
        locations: manifest
            .locations
            .iter()
            .map(|l| l.location.to_string())
            .collect(),
        tables: manifest.tables.len() as u64,
        views: manifest.views.len() as u64,
        chunks: manifest.tables.iter().map(|t| t.chunks.len() as u64).sum(),
        chunks_resumed: resumed,
        files: manifest.totals.files,
        rows: manifest.totals.rows,
        bytes: manifest.totals.bytes,
        raw_bytes: raw,
        elapsed_secs: elapsed,
        rows_per_sec: manifest.totals.rows as f64 / elapsed.max(1e-9),
        raw_mb_per_sec: raw as f64 / 1e6 / elapsed.max(1e-9),
    })
}

/// The destination, checked: writable, and not holding a complete dump already.
async fn open_destination(cfg: &DumpConfig, s3: &S3Options) -> Result<Arc<dyn Storage>, DumpError> {
    let storage = storage::open(&cfg.to, s3).await?;
    if storage.exists(MANIFEST_NAME).await? {
        return Err(DumpError::Definite(format!(
            "{} already holds a complete dump ({} exists); choose another --to or remove it",
            storage.describe(""),
            MANIFEST_NAME
        )));
    }
    storage.check_writable().await.map_err(|e| {
        DumpError::Definite(format!(
            "destination {} is not writable: {e}",
            storage.describe("")
        ))
    })?;
    Ok(storage)
}

/// The plan of an interrupted dump with the same options (resumed), or a new one.
async fn plan_or_resume(
    cfg: &DumpConfig,
    ctl: &mut mysql_async::Conn,
    server: &ServerInfo,
    storage: &dyn Storage,
) -> Result<(DumpPlan, bool), DumpError> {
    let found = match load_plan(storage).await? {
        Some(plan) => {
            if plan.fingerprint != cfg.fingerprint() {
                return Err(DumpError::Definite(format!(
                    "{} holds an unfinished dump made with other options ({}); re-run with the same options to resume, or choose an empty --to",
                    storage.describe(""),
                    plan.fingerprint
                )));
            }
            let n = storage.clean_incomplete().await.unwrap_or(0);
            tracing::info!(leftovers_removed = n, "resuming an interrupted dump");
            (plan, true)
        }
        None => {
            let plan = make_plan(cfg, ctl, server, storage).await?;
            storage.put(PLAN_NAME, json(&plan)).await?;
            (plan, false)
        }
    };
    Ok(found)
}

/// Nothing to read (databases without tables, or --no-data): still take a consistent point, so
/// that the manifest records the Location catch-up starts from. Returns the strategy's name,
/// how long it blocked and the point.
async fn read_point_without_chunks(
    cfg: &DumpConfig,
    plan: &DumpPlan,
    lock_list: &[(String, String)],
) -> Result<(String, u64, Option<DumpLocation>), DumpError> {
    let snaps =
        consistency::open_snapshots(&cfg.source, &plan.server, cfg.consistency, 1, lock_list)
            .await?;
    let point = snaps
        .workers
        .into_iter()
        .find_map(|w| w.location)
        .map(|location| DumpLocation {
            location,
            taken_at: snaps.taken_at.clone(),
        });
    Ok((
        snaps.strategy.name().to_string(),
        snaps.blocked.as_millis() as u64,
        point,
    ))
}

/// `metadata` and the manifest (written last: its presence means "dump complete"), then the
/// run's state files are removed.
async fn write_outputs(
    storage: &dyn Storage,
    plan: &DumpPlan,
    manifest: &Manifest,
) -> Result<(), DumpError> {
    storage
        .put("metadata", Bytes::from(metadata_text(plan, manifest)))
        .await?;
    storage
        .put(MANIFEST_NAME, Bytes::from(manifest.to_json()))
        .await?;
    let state_files = storage.list(&format!("{STATE_DIR}/")).await?;
    for part in state_files.chunks(64) {
        futures::future::join_all(part.iter().map(|obj| storage.delete(&obj.name))).await;
    }
    Ok(())
}

/// Reads the queued chunks of `base` with workers in snapshots at one consistent point; adds
/// their markers to `done`. Returns the strategy's name and how long it blocked commits.
///
/// A lost connection loses its snapshot: the chunks not finished are read again at a new
/// consistent point (their markers record its Location), as a resumed run would, until the
/// source has failed for `--retry-for-secs` without a chunk finishing.
async fn read_chunks(
    base: WorkerCtx,
    lock_list: &[(String, String)],
    done: &mut BTreeMap<(usize, u32), ChunkDone>,
) -> Result<(String, u64), DumpError> {
    let cfg = &base.cfg;
    let progress = || base.counters.chunks_done.load(Ordering::Relaxed);
    let mut backoff = Backoff::new(&cfg.retry, "reading chunks from the source", progress());
    let mut queue = base
        .queue
        .lock()
        .map(|mut q| std::mem::take(&mut *q))
        .unwrap_or_default();
    let mut resuming = base.resuming;
    let mut blocked = Duration::ZERO;
    loop {
        let threads = cfg.threads.clamp(1, queue.len().max(1));
        let opened = consistency::open_snapshots(
            &cfg.source,
            &base.plan.server,
            cfg.consistency,
            threads,
            lock_list,
        )
        .await;
        let snaps = match opened {
            Ok(snaps) => snaps,
            Err(e) => {
                backoff.failed(e, progress()).await?;
                continue;
            }
        };
        blocked += snaps.blocked;
        let strategy = snaps.strategy.name().to_string();
        let ctx = Arc::new(WorkerCtx {
            cfg: cfg.clone(),
            storage: base.storage.clone(),
            plan: base.plan.clone(),
            queue: Mutex::new(std::mem::take(&mut queue)),
            abort: AtomicBool::new(false),
            counters: base.counters.clone(),
            table_bars: base.table_bars.clone(),
            taken_at: snaps.taken_at.clone(),
            strategy: strategy.clone(),
            resuming,
            finished: Mutex::new(Vec::new()),
        });
        let mut handles = Vec::new();
        for (i, w) in snaps.workers.into_iter().enumerate() {
            let ctx = ctx.clone();
            handles.push(tokio::spawn(async move { worker_loop(i, ctx, w).await }));
        }
        let mut first_err: Option<DumpError> = None;
        for h in handles {
            let r = h
                .await
                .unwrap_or_else(|e| Err(DumpError::Definite(format!("worker panicked: {e}"))));
            if let Err(e) = r {
                first_err.get_or_insert(e);
            }
        }
        // The markers this attempt wrote, as its tails recorded them (no need to read them
        // back); after a failure the storage is read too, as the truth.
        let finished = std::mem::take(&mut *ctx.finished.lock().unwrap_or_else(|p| p.into_inner()));
        for marker in finished {
            done.insert((marker.table, marker.chunk), marker);
        }
        if first_err.is_some() {
            read_markers(&*base.storage, done).await?;
        }
        let Some(e) = first_err else {
            return Ok((strategy, blocked.as_millis() as u64));
        };
        backoff.failed(e, progress()).await?;
        queue = unfinished(cfg, &base.plan, done);
        resuming = true;
        let n = base.storage.clean_incomplete().await.unwrap_or(0);
        tracing::info!(
            chunks_left = queue.len(),
            leftovers_removed = n,
            "reading the unfinished chunks again at a new consistent point"
        );
    }
}

/// Reads the chunks' completion markers into `done`.
async fn read_markers(
    storage: &dyn Storage,
    done: &mut BTreeMap<(usize, u32), ChunkDone>,
) -> Result<(), DumpError> {
    for obj in storage.list(DONE_PREFIX).await? {
        let data = storage.read(&obj.name).await?;
        let markers: MarkerObject = serde_json::from_slice(&data).map_err(|e| {
            DumpError::Definite(format!(
                "{}: corrupt chunk marker ({e}); delete it to redo its chunks",
                storage.describe(&obj.name)
            ))
        })?;
        let markers = match markers {
            MarkerObject::Batch(list) => list,
            MarkerObject::One(marker) => vec![marker],
        };
        for marker in markers {
            done.insert((marker.table, marker.chunk), marker);
        }
    }
    Ok(())
}

/// The chunks of the plan without a completion marker, in plan order.
fn unfinished(
    cfg: &DumpConfig,
    plan: &DumpPlan,
    done: &BTreeMap<(usize, u32), ChunkDone>,
) -> VecDeque<(usize, ChunkPlan)> {
    let mut queue = VecDeque::new();
    if !cfg.no_data {
        for (ti, t) in plan.tables.iter().enumerate() {
            for c in &t.chunks {
                if !done.contains_key(&(ti, c.index)) {
                    queue.push_back((ti, c.clone()));
                }
            }
        }
    }
    queue
}

async fn load_plan(storage: &dyn Storage) -> Result<Option<DumpPlan>, DumpError> {
    if !storage.exists(PLAN_NAME).await? {
        return Ok(None);
    }
    let data = storage.read(PLAN_NAME).await?;
    let plan: DumpPlan = serde_json::from_slice(&data).map_err(|e| {
        DumpError::Definite(format!(
            "{}: unreadable dump state ({e}); remove the {STATE_DIR} directory to start over",
            storage.describe(PLAN_NAME)
        ))
    })?;
    if plan.version != STATE_VERSION {
        return Err(DumpError::Definite(format!(
            "{}: dump state version {} is not {STATE_VERSION}; finish it with the ferry that started it, or start over",
            storage.describe(PLAN_NAME),
            plan.version
        )));
    }
    Ok(Some(plan))
}

async fn make_plan(
    cfg: &DumpConfig,
    ctl: &mut mysql_async::Conn,
    server: &ServerInfo,
    storage: &dyn Storage,
) -> Result<DumpPlan, DumpError> {
    ctl.query_drop("SET NAMES binary")
        .await
        .map_err(|e| DumpError::query("SET NAMES binary", e))?;
    let (dbs, table_names, views) = schema::discover(ctl, &cfg.filter, !cfg.no_views).await?;
    // A database the filter names that has no tables yet is still dumped (its schema file), so
    // it can be loaded and caught up into; only a filter that matches nothing is an error.
    if table_names.is_empty() && views.is_empty() && dbs.is_empty() {
        return Err(DumpError::Definite(format!(
            "no table matches the filter ({}); check -f/--filter rules and the user's privileges",
            cfg.filter
        )));
    }
    let mut databases = Vec::new();
    for db in &dbs {
        let mut entry = DatabaseEntry {
            name: db.clone(),
            schema_file: None,
        };
        if !cfg.no_schemas {
            let name = format!("{}-schema-create.sql", encode_file_name(db));
            storage
                .put(&name, Bytes::from(schema::database_schema(ctl, db).await?))
                .await?;
            entry.schema_file = Some(name);
            if cfg.routines {
                if let Some(text) = schema::routines_schema(ctl, db).await? {
                    storage
                        .put(
                            &format!("{}-schema-post.sql", encode_file_name(db)),
                            Bytes::from(text),
                        )
                        .await?;
                }
            }
        }
        databases.push(entry);
    }
    // Schema files and chunk plans, tables spread over a few connections.
    let infos = schema::describe_tables(ctl, &table_names).await?;
    let queue = Mutex::new(infos.into_iter().enumerate().collect::<VecDeque<_>>());
    let helpers = cfg
        .threads
        .clamp(1, 8)
        .min(table_names.len())
        .saturating_sub(1);
    let mut extra = Vec::with_capacity(helpers);
    for _ in 0..helpers {
        let mut c = cfg.source.connect().await?;
        c.query_drop("SET NAMES binary")
            .await
            .map_err(|e| DumpError::query("SET NAMES binary", e))?;
        extra.push(c);
    }
    let mut planners = vec![plan_tables_from(ctl, &queue, cfg, storage)];
    for c in extra.iter_mut() {
        planners.push(plan_tables_from(c, &queue, cfg, storage));
    }
    let mut planned = Vec::new();
    for r in futures::future::join_all(planners).await {
        planned.extend(r?);
    }
    for c in extra {
        let _ = c.disconnect().await;
    }
    planned.sort_by_key(|(i, _)| *i);
    let tables: Vec<TablePlan> = planned.into_iter().map(|(_, t)| t).collect();
    let mut view_entries = Vec::new();
    if !cfg.no_schemas {
        for v in &views {
            let (placeholder, view) = schema::view_schema(ctl, v).await?;
            let base = format!("{}.{}", encode_file_name(&v.db), encode_file_name(&v.name));
            let placeholder_file = format!("{base}-schema.sql");
            let schema_file = format!("{base}-schema-view.sql");
            storage
                .put(&placeholder_file, Bytes::from(placeholder))
                .await?;
            storage.put(&schema_file, Bytes::from(view)).await?;
            let ViewInfo { db, name } = v.clone();
            view_entries.push(ViewEntry {
                database: db,
                name,
                schema_file,
                placeholder_file,
            });
        }
    }
    Ok(DumpPlan {
        version: STATE_VERSION,
        fingerprint: cfg.fingerprint(),
        started_at: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        server: server.clone(),
        databases,
        tables,
        views: view_entries,
    })
}

/// Schema files written together by one planner: a batch costs about one fsync (the
/// filesystem commits them together).
const CONCURRENT_SCHEMA_PUTS: usize = 32;

/// Writes the schema files of the tables it takes from `queue` and plans their chunks.
async fn plan_tables_from(
    conn: &mut mysql_async::Conn,
    queue: &Mutex<VecDeque<(usize, TableInfo)>>,
    cfg: &DumpConfig,
    storage: &dyn Storage,
) -> Result<Vec<(usize, TablePlan)>, DumpError> {
    let mut out = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    loop {
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some((index, info)) = next else {
            put_all(storage, &mut files).await?;
            return Ok(out);
        };
        let mut schema_file = None;
        if !cfg.no_schemas {
            let fname = format!("{}-schema.sql", info.file_base());
            files.push((fname.clone(), schema::table_schema(conn, &info).await?));
            schema_file = Some(fname);
            if cfg.triggers {
                if let Some(text) = schema::triggers_schema(conn, &info).await? {
                    files.push((format!("{}-schema-triggers.sql", info.file_base()), text));
                }
            }
            if files.len() >= CONCURRENT_SCHEMA_PUTS {
                put_all(storage, &mut files).await?;
            }
        }
        let chunks = if cfg.no_data {
            Vec::new()
        } else {
            chunk::plan_table(conn, &info, cfg.rows).await?
        };
        tracing::info!(table = %info.display(), chunks = chunks.len(), key = ?info.chunk_key, est_rows = info.est_rows, "planned");
        out.push((
            index,
            TablePlan {
                info,
                chunks,
                schema_file,
            },
        ));
    }
}

/// Writes `files` (name, text) together and empties the list.
async fn put_all(
    storage: &dyn Storage,
    files: &mut Vec<(String, String)>,
) -> Result<(), DumpError> {
    let objects = files
        .drain(..)
        .map(|(name, text)| (name, Bytes::from(text)))
        .collect();
    Ok(storage.put_many(objects).await?)
}

struct WorkerCtx {
    cfg: DumpConfig,
    storage: Arc<dyn Storage>,
    plan: DumpPlan,
    queue: Mutex<VecDeque<(usize, ChunkPlan)>>,
    abort: AtomicBool,
    counters: Arc<Counters>,
    table_bars: Arc<TableBars>,
    taken_at: String,
    strategy: String,
    /// An earlier run may have left files of unfinished chunks behind.
    resuming: bool,
    /// Markers written by this run's chunk tails.
    finished: Mutex<Vec<ChunkDone>>,
}

async fn worker_loop(
    id: usize,
    ctx: Arc<WorkerCtx>,
    mut w: SnapshotWorker,
) -> Result<(), DumpError> {
    w.conn
        .query_drop("SET NAMES binary", "SET NAMES binary")
        .await?;
    w.conn
        .query_drop("SET SESSION time_zone = '+00:00'", "SET time_zone")
        .await?;
    let mut pending = VecDeque::new();
    let mut batch = MarkerBatch::default();
    let result = read_queue(id, &ctx, &mut w, &mut pending, &mut batch).await;
    if result.is_err() {
        ctx.abort.store(true, Ordering::Relaxed);
    }
    // Finish the chunks already read and write their markers whatever happened, so the run
    // knows them before it decides what to read again.
    let mut finished = Ok(());
    while let Some((tail, _)) = pending.pop_front() {
        let r = await_tail(&ctx, Some(tail), &mut batch).await;
        finished = finished.and(r);
    }
    let written = batch.write(&ctx).await;
    result.and(finished).and(written)?;
    // Release the snapshot.
    let _ = w.conn.query_drop("COMMIT", "COMMIT").await;
    w.conn.close().await;
    Ok(())
}

/// Chunk tails still running, each with the bytes it may hold.
type PendingTails = VecDeque<(ChunkTail, u64)>;

/// Reads chunks from the shared queue until it is empty, the run is aborted or a chunk fails.
async fn read_queue(
    id: usize,
    ctx: &WorkerCtx,
    w: &mut SnapshotWorker,
    pending: &mut PendingTails,
    batch: &mut MarkerBatch,
) -> Result<(), DumpError> {
    while !ctx.abort.load(Ordering::Relaxed) {
        let next = ctx.queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some((ti, chunk)) = next else { break };
        let table = &ctx.plan.tables[ti];
        let span = tracing::info_span!(
            "chunk",
            worker = id,
            table = %table.info.display(),
            chunk = chunk.index
        );
        pending.push_back(dump_chunk(ctx, w, ti, &chunk).instrument(span).await?);
        while pending.len() > MAX_PENDING_TAILS
            || pending.len() > MIN_PENDING_TAILS
                && pending.iter().map(|(_, b)| b).sum::<u64>() > PENDING_TAIL_BYTES
        {
            await_tail(ctx, pending.pop_front().map(|(t, _)| t), batch).await?;
        }
    }
    Ok(())
}

/// Rows and bytes of a chunk not yet added to the shared counters.
#[derive(Default)]
struct ChunkProgress {
    rows: u64,
    raw_bytes: u64,
}

impl ChunkProgress {
    fn report(&mut self, ctx: &WorkerCtx, table: usize, writer: &ChunkWriter) {
        let rows = writer.rows - self.rows;
        let bytes = writer.raw_bytes.saturating_sub(self.raw_bytes);
        ctx.counters.add(rows, bytes);
        ctx.table_bars.add_rows(table, rows);
        self.rows = writer.rows;
        self.raw_bytes = self.raw_bytes.max(writer.raw_bytes);
    }
}

/// Chunk tails (last file's fsync + rename, then the completion marker) that may still be
/// running per worker while the next chunks stream: always [`MIN_PENDING_TAILS`], more while
/// their chunks add up to at most [`PENDING_TAIL_BYTES`], never more than this. Small chunks
/// (many small tables) thus have many fsyncs in flight, which the filesystem commits together,
/// while the buffers held by big chunks' tails stay bounded as before.
const MAX_PENDING_TAILS: usize = 8;
const MIN_PENDING_TAILS: usize = 2;

/// Bytes the pending tails of a worker may hold (each at least [`TAIL_BUFFER_BYTES`]).
const PENDING_TAIL_BYTES: u64 = 8 << 20;

/// What a small chunk's tail holds at most: its writer's buffer.
const TAIL_BUFFER_BYTES: u64 = 1 << 20;

/// A chunk's tail: its marker, once written.
type ChunkTail = tokio::task::JoinHandle<Result<ChunkDone, DumpError>>;

async fn await_tail(
    ctx: &WorkerCtx,
    tail: Option<ChunkTail>,
    batch: &mut MarkerBatch,
) -> Result<(), DumpError> {
    let Some(tail) = tail else { return Ok(()) };
    let r = tail.await.unwrap_or_else(|e| {
        Err(DumpError::Definite(format!(
            "chunk finalizer panicked: {e}"
        )))
    });
    match r {
        Ok(marker) => {
            batch.push(marker);
            if batch.due() {
                batch.write(ctx).await?;
            }
            Ok(())
        }
        Err(e) => {
            ctx.abort.store(true, Ordering::Relaxed);
            Err(e)
        }
    }
}

/// Chunks of one worker whose files are complete and durable but whose completion marker is
/// not written yet. One marker object records a batch of chunks: many small chunks (many small
/// tables) then cost one marker (create, fsync, rename, and a delete at the end) instead of one
/// each, while a big chunk still gets its marker as soon as it is done. A chunk whose marker is
/// lost to a crash is read again on resume; a marker never names a chunk whose files are not
/// durable, because its chunks' tails have finished their files before they reach the batch.
#[derive(Default)]
struct MarkerBatch {
    chunks: Vec<ChunkDone>,
    raw_bytes: u64,
    since: Option<Instant>,
}

/// A batch is written once it holds this many chunks ...
const MARKER_BATCH_CHUNKS: usize = 64;
/// ... or this many bytes of rows (at most this much is read again after a crash) ...
const MARKER_BATCH_BYTES: u64 = 32 << 20;
/// ... or its oldest chunk has waited this long.
const MARKER_BATCH_AGE: Duration = Duration::from_secs(1);

impl MarkerBatch {
    fn push(&mut self, marker: ChunkDone) {
        self.since.get_or_insert_with(Instant::now);
        self.raw_bytes += marker.raw_bytes;
        self.chunks.push(marker);
    }

    fn due(&self) -> bool {
        self.chunks.len() >= MARKER_BATCH_CHUNKS
            || self.raw_bytes >= MARKER_BATCH_BYTES
            || self.since.is_some_and(|t| t.elapsed() >= MARKER_BATCH_AGE)
    }

    /// Writes the batch's marker (named after its first chunk, which no other marker can
    /// hold) and hands its chunks to the run.
    async fn write(&mut self, ctx: &WorkerCtx) -> Result<(), DumpError> {
        let Some(first) = self.chunks.first() else {
            return Ok(());
        };
        let name = done_name(first.table, first.chunk);
        ctx.storage.put(&name, json(&self.chunks)).await?;
        let chunks = std::mem::take(&mut self.chunks);
        *self = MarkerBatch::default();
        ctx.finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(chunks);
        Ok(())
    }
}

/// The SELECT of a chunk in key order, and its WHERE condition (key range and `--where`).
fn chunk_query(
    cfg: &DumpConfig,
    server: &ServerInfo,
    t: &TableInfo,
    chunk: &ChunkPlan,
) -> (String, Option<String>) {
    let mut conds = Vec::new();
    if let Some(c) = chunk.condition(&t.chunk_key) {
        conds.push(c);
    }
    if let Some(wc) = &cfg.where_clause {
        conds.push(format!("({wc})"));
    }
    let cond = (!conds.is_empty()).then(|| conds.join(" AND "));
    let mut sql = format!("SELECT {} FROM {}", t.select_list(server), t.qualified());
    if let Some(c) = &cond {
        sql.push_str(" WHERE ");
        sql.push_str(c);
    }
    if !t.chunk_key.is_empty() {
        let key: Vec<String> = t
            .chunk_key
            .iter()
            .map(|k| ferry_shared::ident::quote_ident(k))
            .collect();
        sql.push_str(" ORDER BY ");
        sql.push_str(&key.join(","));
    }
    (sql, cond)
}

/// The ferry checksum of a chunk, computed by the source in the chunk's snapshot; its row count
/// must equal the rows read.
async fn chunk_checksum(
    w: &mut SnapshotWorker,
    t: &TableInfo,
    chunk: u32,
    cond: Option<&str>,
    rows: u64,
) -> Result<ChunkChecksum, DumpError> {
    let cols: Vec<String> = t.data_columns().map(|c| c.name.clone()).collect();
    let q = checksum::query(&checksum::row_expression(&cols), &t.qualified(), cond);
    let r = w
        .conn
        .query_rows(&q, &format!("checksum of {}", t.display()))
        .await?;
    let crows: u64 = dataconn::first_text(&r, 0)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sum = dataconn::first_text(&r, 1).unwrap_or_else(|| "0".into());
    if crows != rows {
        return Err(DumpError::Definite(format!(
            "{} chunk {}: read {rows} rows but the checksum query in the same snapshot counted {crows}",
            t.display(),
            chunk
        )));
    }
    Ok(ChunkChecksum { rows: crows, sum })
}

/// Streams one chunk's rows (and, with `--checksum`, checksums them in the same snapshot); the
/// returned tail finishes its files and only then writes the chunk's completion marker, so a
/// marker always describes durable, complete files.
async fn dump_chunk(
    ctx: &WorkerCtx,
    w: &mut SnapshotWorker,
    ti: usize,
    chunk: &ChunkPlan,
) -> Result<(ChunkTail, u64), DumpError> {
    let cfg = &ctx.cfg;
    let t = &ctx.plan.tables[ti].info;
    let base = t.file_base();
    // Files of an earlier, unfinished attempt at this chunk (only a resumed run can have them).
    if ctx.resuming {
        for obj in ctx
            .storage
            .list(&ChunkWriter::chunk_prefix(&base, chunk.index))
            .await?
        {
            ctx.storage.delete(&obj.name).await?;
        }
    }
    let (sql, cond) = chunk_query(cfg, &ctx.plan.server, t, chunk);
    let encoder = match cfg.filetype {
        FileType::Sql => RowEncoder::Sql(SqlEncoder::new(t, cfg.sql.clone())),
        FileType::Csv => RowEncoder::Csv(CsvEncoder::new(t, cfg.csv.clone())),
    };
    let mut writer = ChunkWriter::new(
        ctx.storage.clone(),
        encoder,
        cfg.compression,
        base,
        chunk.index,
        cfg.file_size,
    );
    let what = format!("reading {} chunk {}", t.display(), chunk.index);
    let mut progress = ChunkProgress::default();
    match &mut w.conn {
        DataConn::Wire(c) => {
            let mut stream = c
                .query_stream(&sql)
                .await
                .map_err(|e| DumpError::wire(&what, e))?;
            let mut encode_err = None;
            while stream
                .next_batch(|row| {
                    if encode_err.is_none() {
                        if let Err(e) = writer.encode_row(row) {
                            encode_err = Some(e);
                        }
                    }
                })
                .await
                .map_err(|e| DumpError::wire(&what, e))?
            {
                if let Some(e) = encode_err.take() {
                    return Err(e);
                }
                writer.after_rows().await?;
                progress.report(ctx, ti, &writer);
            }
            if let Some(e) = encode_err {
                return Err(e);
            }
        }
        DataConn::Driver(c) => {
            let mut result = c
                .query_iter(sql)
                .await
                .map_err(|e| DumpError::query(&what, e))?;
            while let Some(row) = result
                .next()
                .await
                .map_err(|e| DumpError::query(&what, e))?
            {
                let values: Vec<Option<Vec<u8>>> = row
                    .unwrap()
                    .into_iter()
                    .map(dataconn::value_bytes)
                    .collect();
                let refs: Vec<Option<&[u8]>> = values.iter().map(|v| v.as_deref()).collect();
                writer.encode_row(&refs)?;
                writer.after_rows().await?;
                if writer.rows.is_multiple_of(4096) {
                    progress.report(ctx, ti, &writer);
                }
            }
        }
    }
    progress.report(ctx, ti, &writer);
    let rows = writer.rows;
    let checksum = if cfg.checksum {
        Some(chunk_checksum(w, t, chunk.index, cond.as_deref(), rows).await?)
    } else {
        None
    };
    let counters = ctx.counters.clone();
    let table_bars = ctx.table_bars.clone();
    let mut marker = ChunkDone {
        table: ti,
        chunk: chunk.index,
        rows,
        raw_bytes: 0,
        files: Vec::new(),
        location: w.location.clone(),
        taken_at: ctx.taken_at.clone(),
        strategy: ctx.strategy.clone(),
        checksum,
    };
    // What the tail may hold: its unflushed buffer (about 1 MiB of capacity) or what it moved.
    let held = writer.raw_bytes.max(TAIL_BUFFER_BYTES);
    let tail = tokio::spawn(async move {
        let (files, raw_bytes) = writer.finish().await?;
        counters
            .files
            .fetch_add(files.len() as u64, Ordering::Relaxed);
        marker.files = files;
        marker.raw_bytes = raw_bytes;
        counters.chunks_done.fetch_add(1, Ordering::Relaxed);
        table_bars.unit_done(marker.table);
        Ok(marker)
    });
    Ok((tail, held))
}

/// `point_without_chunks`: the Location of a dump that read no chunk (its only Location).
fn build_manifest(
    plan: &DumpPlan,
    done: &BTreeMap<(usize, u32), ChunkDone>,
    point_without_chunks: Option<DumpLocation>,
    cfg: &DumpConfig,
    strategy: &str,
) -> Result<Manifest, DumpError> {
    let mut locations: Vec<DumpLocation> = Vec::new();
    let mut tables = Vec::new();
    let mut totals = Totals::default();
    for (ti, tp) in plan.tables.iter().enumerate() {
        let mut chunks = Vec::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut sum = Some("0".to_string());
        for c in &tp.chunks {
            let d = done.get(&(ti, c.index)).ok_or_else(|| {
                DumpError::Definite(format!(
                    "internal: chunk {} of {} has no completion record",
                    c.index,
                    tp.info.display()
                ))
            })?;
            let loc_index = d.location.as_ref().map(|l| {
                locations
                    .iter()
                    .position(|x| &x.location == l)
                    .unwrap_or_else(|| {
                        locations.push(DumpLocation {
                            location: l.clone(),
                            taken_at: d.taken_at.clone(),
                        });
                        locations.len() - 1
                    })
            });
            rows += d.rows;
            let fbytes: u64 = d.files.iter().map(|f| f.bytes).sum();
            bytes += fbytes;
            totals.files += d.files.len() as u64;
            sum = match (&sum, &d.checksum) {
                (Some(s), Some(cs)) => checksum::add_sums(s, &cs.sum),
                _ => None,
            };
            chunks.push(ChunkEntry {
                index: c.index,
                lower: c.lower.clone(),
                upper: c.upper.clone(),
                location: loc_index,
                rows: d.rows,
                files: d.files.clone(),
                checksum: d.checksum.clone(),
            });
        }
        totals.rows += rows;
        totals.bytes += bytes;
        let data_cols: Vec<String> = tp.info.data_columns().map(|c| c.name.clone()).collect();
        tables.push(TableEntry {
            database: tp.info.db.clone(),
            name: tp.info.name.clone(),
            schema_file: tp.schema_file.clone(),
            columns: tp
                .info
                .columns
                .iter()
                .map(|c| ColumnEntry {
                    name: c.name.clone(),
                    column_type: c.column_type.clone(),
                    nullable: c.nullable,
                    generated: c.generated,
                })
                .collect(),
            chunk_key: tp.info.chunk_key.clone(),
            rows,
            bytes,
            chunks,
            checksum: if cfg.checksum && !cfg.no_data {
                sum.map(|s| TableChecksum {
                    algorithm: checksum::ALGORITHM.to_string(),
                    row_expression: checksum::row_expression(&data_cols),
                    rows,
                    sum: s,
                })
            } else {
                None
            },
        });
    }
    totals.tables = tables.len() as u64;
    if locations.is_empty() {
        locations.extend(point_without_chunks);
    }
    Ok(Manifest {
        format: "ferry-dump".into(),
        version: MANIFEST_VERSION,
        tool: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        started_at: plan.started_at.clone(),
        finished_at: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        source: plan.server.clone(),
        consistency: strategy.to_string(),
        locations,
        output: OutputFormat {
            filetype: match cfg.filetype {
                FileType::Sql => "sql".into(),
                FileType::Csv => "csv".into(),
            },
            compression: cfg.compression.name().into(),
            csv: (cfg.filetype == FileType::Csv).then(|| cfg.csv.clone()),
            charset: "binary".into(),
            time_zone: "+00:00".into(),
            escape_backslash: cfg.sql.escape_backslash,
        },
        databases: plan.databases.clone(),
        tables,
        views: plan.views.clone(),
        totals,
    })
}

/// Dumpling's `metadata` text. With several Locations (a resumed dump) the earliest is shown:
/// it is where replication must start.
fn metadata_text(plan: &DumpPlan, m: &Manifest) -> String {
    let mut s = format!("Started dump at: {}\n", plan.started_at);
    if let Some((earliest, _)) = m.location_bounds() {
        s.push_str("SHOW MASTER STATUS:\n");
        s.push_str(&format!(
            "\tLog: {}\n\tPos: {}\n\tGTID:{}\n",
            earliest.pos.file,
            earliest.pos.pos,
            earliest
                .gtid
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
    }
    s.push('\n');
    s.push_str(&format!("Finished dump at: {}\n", m.finished_at));
    s
}
