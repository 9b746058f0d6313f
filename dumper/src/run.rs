//! The run of a dump: check the destination, plan (or resume the plan of an interrupted run),
//! read the chunks without a completion marker ([`crate::worker`]), then write `metadata` and
//! the manifest ([`crate::manifest`]).

use crate::config::DumpConfig;
use crate::consistency;
use crate::error::DumpError;
use crate::manifest::{build_manifest, write_outputs};
use crate::markers::{read_markers, unfinished, ChunkDone};
use crate::plan::{plan_or_resume, DumpPlan};
use crate::summary::DumpSummary;
use crate::worker::{read_chunks, WorkerCtx};
use ferry_shared::conn::ServerInfo;
use ferry_shared::manifest::{DumpLocation, MANIFEST_NAME};
use ferry_shared::storage::{self, S3Options, Storage};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Runs a dump (or resumes an interrupted one) and returns its summary.
pub async fn run(cfg: DumpConfig) -> Result<DumpSummary, DumpError> {
    let started = Instant::now();
    // S3 part buffers: one filling per worker and two more uploading at a time (memory:
    // (workers + 2) parts; a writer whose part is uploading waits for a slot before it fills
    // the next); part uploads retry as long as everything else (--retry-for-secs).
    let s3 = S3Options {
        max_buffered_parts: Some(cfg.s3.max_buffered_parts.unwrap_or(cfg.threads + 2)),
        retry: cfg.retry,
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
    let counters = cfg.progress.counters.clone();
    counters.chunks_total.store(total_chunks, Ordering::Relaxed);
    counters.chunks_done.store(resumed, Ordering::Relaxed);
    let est_rows: u64 = plan.tables.iter().map(|t| t.info.est_rows).sum();
    cfg.progress.begin(est_rows);

    let strategy_name: String;
    let mut blocked_ms = 0;
    let mut point_without_chunks = None;
    let lock_list: Vec<(String, String)> = plan
        .tables
        .iter()
        .map(|t| (t.info.db.clone(), t.info.name.clone()))
        .collect();
    if !queue.is_empty() {
        cfg.progress.track_tables(
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
        );
        let base = WorkerCtx {
            cfg: cfg.clone(),
            storage: storage.clone(),
            plan: plan.clone(),
            queue: Mutex::new(queue),
            abort: AtomicBool::new(false),
            counters: counters.clone(),
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
                cfg.progress.end();
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
    cfg.progress.end();

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
