//! Reading the chunks: workers in snapshots at one consistent point take chunks from a shared
//! queue and stream them to files. A chunk's tail (its last file's fsync and rename, then its
//! completion marker) runs while the worker streams the next chunks, so a marker always
//! describes durable, complete files. A lost connection loses its snapshot: the unfinished
//! chunks are read again at a new consistent point ([`read_chunks`]).

use crate::chunk::ChunkPlan;
use crate::config::{DumpConfig, FileType};
use crate::consistency::{self, SnapshotWorker};
use crate::dataconn::{self, DataConn};
use crate::encode::{CsvEncoder, RowEncoder, SqlEncoder};
use crate::error::DumpError;
use crate::markers::{read_markers, unfinished, ChunkDone, MarkerBatch};
use crate::plan::DumpPlan;
use crate::schema::TableInfo;
use crate::writer::ChunkWriter;
use ferry_shared::checksum;
use ferry_shared::conn::ServerInfo;
use ferry_shared::failure::Backoff;
use ferry_shared::manifest::ChunkChecksum;
use ferry_shared::progress::Counters;
use ferry_shared::storage::Storage;
use mysql_async::prelude::Queryable;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// Reads the queued chunks of `base` with workers in snapshots at one consistent point; adds
/// their markers to `done`. Returns the strategy's name and how long it blocked commits.
///
/// A lost connection loses its snapshot: the chunks not finished are read again at a new
/// consistent point (their markers record its Location), as a resumed run would, until the
/// source has failed for `--retry-for-secs` without a chunk finishing.
pub(crate) async fn read_chunks(
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

pub(crate) struct WorkerCtx {
    pub(crate) cfg: DumpConfig,
    pub(crate) storage: Arc<dyn Storage>,
    pub(crate) plan: DumpPlan,
    pub(crate) queue: Mutex<VecDeque<(usize, ChunkPlan)>>,
    pub(crate) abort: AtomicBool,
    pub(crate) counters: Arc<Counters>,
    pub(crate) taken_at: String,
    pub(crate) strategy: String,
    /// An earlier run may have left files of unfinished chunks behind.
    pub(crate) resuming: bool,
    /// Chunks whose markers this run wrote.
    pub(crate) finished: Mutex<Vec<ChunkDone>>,
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
    let written = batch.write(&*ctx.storage, &ctx.finished).await;
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
        ctx.cfg.progress.add_rows(table, rows);
        self.rows = writer.rows;
        self.raw_bytes = self.raw_bytes.max(writer.raw_bytes);
    }
}

/// Chunk tails (last file's fsync + rename) that may still be
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

/// A chunk's tail: the chunk's marker, once its files are durable.
type ChunkTail = tokio::task::JoinHandle<Result<ChunkDone, DumpError>>;

/// Waits for a chunk's tail and adds the chunk to the worker's marker batch, writing the
/// batch when it is due.
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
                batch.write(&*ctx.storage, &ctx.finished).await?;
            }
            Ok(())
        }
        Err(e) => {
            ctx.abort.store(true, Ordering::Relaxed);
            Err(e)
        }
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
    let run_progress = ctx.cfg.progress.clone();
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
        run_progress.unit_done(marker.table);
        Ok(marker)
    });
    Ok((tail, held))
}
