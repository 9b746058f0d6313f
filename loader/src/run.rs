//! The run of a load, in order: find the dump and check the target (precheck), register this
//! process, set the tables up under the task's setup lock ([`crate::setup`]), load every file
//! ([`crate::worker`]), finish the tables another process left, then views and post
//! statements ([`crate::views`]) and the verification ([`crate::verify`]).

use crate::checkpoint::{self, Owner};
use crate::config::{LoadConfig, MethodChoice};
use crate::context::{dump_identity, Run};
use crate::discover::{self, DumpLayout};
use crate::error::{from_driver, LoadError};
use crate::setup;
use crate::summary::{mismatch_error, LoadSummary};
use crate::transcode::Method;
use crate::verify;
use crate::views;
use crate::worker;
use ferry_shared::conn::ServerInfo;
use ferry_shared::storage::{S3Options, Storage};
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let counters = cfg.progress.counters.clone();
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
    cfg.progress.track_tables(
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
    cfg.progress.begin(total_rows);
    let run = Arc::new(Run {
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
    run.cfg.progress.end();
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
    let views = views::finish_views_and_post(&run, &layout, &mut ctl).await?;
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
