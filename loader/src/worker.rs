//! The load loop: claim files, split them into chunks on blocking threads, and let `threads`
//! workers commit each chunk with its checkpoint row in one transaction.
//!
//! Memory budget. What the loader holds depends on `chunk_size` (C) and `threads` (T) only, not
//! on the size of the data or the number of files and tables:
//! - raw chunks — being read by a splitter (at most T files at once, one buffer of C + 2 MiB
//!   each, [`split`]), queued, or held by a worker until committed (the raw bytes are kept: a
//!   retry transcodes them again) — are bounded by the [`ChunkBudget`] of (T + 2) buffers: each
//!   worker has a chunk and two more are being read. A splitter waits for room before it fills
//!   a buffer; a chunk keeps its own size of it. A row longer than a buffer grows its buffer
//!   past the budget (up to [`split::MAX_ROW`]). A worker lets go of its chunk before the work
//!   that finishes a file (index builds);
//! - S3: an open object holds four 1 MiB pieces ahead of its splitter ([`crate::input`]);
//! - transcoding is streamed: a worker's chunk is turned into steps of about 1 MiB
//!   ([`TRANSCODE_PIECE`]) that the target receives while the next ones are made, with
//!   [`STEPS_AHEAD`] queued — about 4.5 MiB per worker, not a second copy of the chunk;
//! - the driver copies each 64 KiB piece of a `LOAD DATA LOCAL` stream into its buffer pool
//!   ([`INFILE_PIECE`]), which keeps at most 128 buffers: 8 MiB.
//!
//! With the defaults (C = 8 MiB, T = 4): 60 MiB of raw chunks, 18 of transcoded pieces, 8 in the
//! driver, and 16 more from S3. Peak RSS of the debug build loading the same 327 MB dump (170k
//! rows of 1000 random bytes in 9 files; `/usr/bin/time -f %M ferry load --from DIR|s3://...`),
//! before the budget and with it: from local disk 285 and 180 MB (41 and 37 s), from S3 335 and
//! 202 MB. The rest of the RSS is code (the debug binary is large), the runtime and connections,
//! and what the allocator keeps of freed memory.

use crate::checkpoint;
use crate::config::OnDuplicate;
use crate::context::{FileState, Run};
use crate::discover::DataKind;
use crate::error::{from_driver, LoadError};
use crate::split::{self, Chunk, Syntax};
use crate::transcode::{self, Step, StepSink, TranscodeOptions};
use bytes::Bytes;
use ferry_shared::failure::{Backoff, Class, Classify};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};

/// Bytes per piece of a `LOAD DATA LOCAL` stream. The driver copies each piece into a buffer of
/// its global pool (up to 128 buffers, kept at their largest size up to 4 MiB), so the piece size
/// bounds what that pool holds: 128 x 64 KiB = 8 MiB, where 1 MiB pieces grew it to ~50 MB.
const INFILE_PIECE: usize = 64 << 10;

struct Job {
    file: Arc<FileState>,
    chunk: Chunk,
    /// The chunk's share of the [`ChunkBudget`], given back when the job is dropped.
    _budget: OwnedSemaphorePermit,
}

/// Bytes of chunks being read, queued, transcoded or sent, counted in KiB: `threads + 2`
/// splitter buffers' worth, so the workers each hold a chunk and two more are being read,
/// whatever the number of files being split at once. A splitter takes a buffer's worth before
/// it reads into a new buffer; the chunk cut from it keeps its own size until it is loaded and
/// gives the rest back at once.
struct ChunkBudget {
    kib: Arc<Semaphore>,
    total_kib: u32,
}

impl ChunkBudget {
    fn new(chunk_size: u64, threads: usize) -> Self {
        let buffer = split::buffer_size(usize::try_from(chunk_size).unwrap_or(usize::MAX));
        let total = (buffer as u64).saturating_mul(threads as u64 + 2) >> 10;
        let total_kib = u32::try_from(total.max(1))
            .unwrap_or(u32::MAX)
            .min(Semaphore::MAX_PERMITS as u32);
        ChunkBudget {
            kib: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    fn kib_of(&self, len: usize) -> u32 {
        u32::try_from(len.div_ceil(1 << 10))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib)
    }

    /// Waits (on a splitter thread) until `len` bytes fit in the budget. More than the whole
    /// budget waits for all of it.
    fn reserve_blocking(
        &self,
        len: usize,
        rt: &tokio::runtime::Handle,
    ) -> Result<OwnedSemaphorePermit, LoadError> {
        rt.block_on(self.kib.clone().acquire_many_owned(self.kib_of(len)))
            .map_err(|_| LoadError::Internal("the chunk budget was closed".into()))
    }

    /// The share a chunk of `len` bytes keeps: its size out of its buffer's `room` (the rest
    /// goes back), or a new share for a chunk cut without a buffer of its own. A chunk longer
    /// than its buffer (one long row) keeps the whole buffer's share.
    fn for_chunk(
        &self,
        room: Option<OwnedSemaphorePermit>,
        len: usize,
        rt: &tokio::runtime::Handle,
    ) -> Result<OwnedSemaphorePermit, LoadError> {
        match room {
            Some(mut room) => Ok(room.split(self.kib_of(len) as usize).unwrap_or(room)),
            None => self.reserve_blocking(len, rt),
        }
    }
}

/// Loads every file of the task (with other processes, if any). Returns how many files this
/// process took over from dead claimants.
pub(crate) async fn load_all(run: &Arc<Run>, chunk_size: u64) -> Result<u64, LoadError> {
    let (tx, rx) = mpsc::channel::<Job>(run.cfg.threads.max(1));
    let budget = Arc::new(ChunkBudget::new(chunk_size, run.cfg.threads));
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = tokio::task::JoinSet::new();
    for n in 0..run.cfg.threads {
        let run = run.clone();
        let rx = rx.clone();
        workers.spawn(async move {
            if let Err(e) = worker_loop(&run, rx, n).await {
                run.fail(e);
            }
        });
    }
    let progress = || run.counters.chunks_done.load(Ordering::Relaxed);
    let mut backoff = Backoff::new(
        &run.cfg.retry,
        "coordinating the load on the target",
        progress(),
    );
    let mut ctl = reconnect(run, &mut backoff).await?;
    let mut readers: tokio::task::JoinSet<Result<(), LoadError>> = tokio::task::JoinSet::new();
    let mut taken_over = 0u64;
    let mut claimed = VecDeque::new();
    let files: HashMap<&str, (usize, &crate::discover::DataFile)> = run
        .tables
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.plan.files.iter().map(move |f| (f.name.as_str(), (i, f))))
        .collect();
    // The checkpoint queries below run on `ctl`; when the target goes away they fail, and the
    // loop reconnects and goes on (claims are single statements, safe to repeat).
    let result: Result<(), LoadError> = loop {
        let r: Result<(), LoadError> = async {
            loop {
                if run.cancel.load(Ordering::SeqCst) {
                    break;
                }
                let mut busy = 0;
                while readers.len() < run.cfg.threads {
                    if claimed.is_empty() {
                        claim_more(run, &mut ctl, chunk_size, &mut busy, &mut claimed, &mut taken_over).await?;
                    }
                    let Some((claim, done)) = claimed.pop_front() else { break };
                    let Some((ti, df)) = files.get(claim.file.as_str()).map(|(i, f)| (*i, (*f).clone())) else {
                        // Registered by a run with another filter: not ours to load.
                        tracing::warn!(file = %claim.file, "claimed a file outside this run's tables; leaving it");
                        continue;
                    };
                    let state = Arc::new(FileState {
                        name: claim.file.clone(),
                        file_id: claim.file_id.clone(),
                        table: ti,
                        kind: df.kind,
                        dat: std::sync::OnceLock::new(),
                        control: df.control.clone(),
                        expected_rows: df.expected_rows,
                        emitted: AtomicU32::new(0),
                        completed: AtomicU32::new(0),
                        rows: AtomicU64::new(done.iter().map(|(_, r)| *r).sum()),
                        split_done: AtomicBool::new(false),
                        finished: AtomicBool::new(false),
                    });
                    let run2 = run.clone();
                    let (tx2, budget2) = (tx.clone(), budget.clone());
                    readers.spawn(async move { read_file(run2, state, (df.kind, df.size, chunk_size), done, budget2, tx2).await });
                }
                if readers.is_empty() {
                    if run.cancel.load(Ordering::SeqCst) {
                        break;
                    }
                    let left = checkpoint::files_left(&mut ctl, &run.task).await?;
                    if left == 0 {
                        break;
                    }
                    // Files held by live processes (or by our own workers finishing): wait for one
                    // of ours to finish, or poll the others' progress.
                    tokio::select! {
                        _ = run.file_done.notified() => {}
                        _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                    }
                    continue;
                }
                tokio::select! {
                    r = readers.join_next() => {
                        // A reader's failure (already retried) ends the load; not a `ctl` failure.
                        match r {
                            Some(Ok(Err(e))) => run.fail(e),
                            Some(Err(e)) => run.fail(LoadError::Internal(format!("reader task: {e}"))),
                            Some(Ok(Ok(()))) | None => {}
                        }
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
            Ok(())
        }
        .await;
        match r {
            Ok(()) => break Ok(()),
            Err(e) => match backoff.failed(e, progress()).await {
                Ok(()) => match reconnect(run, &mut backoff).await {
                    Ok(c) => ctl = c,
                    Err(e) => break Err(e),
                },
                Err(e) => break Err(e),
            },
        }
    };
    if let Err(e) = result {
        run.fail(e);
    }
    if run.cancel.load(Ordering::SeqCst) {
        readers.abort_all();
    }
    while readers.join_next().await.is_some() {}
    drop(tx);
    while workers.join_next().await.is_some() {}
    Ok(taken_over)
}

/// `conn` if it still answers, else a new connection (retried like any transient failure).
pub(crate) async fn fresh_connection(run: &Run, mut conn: Conn) -> Result<Conn, LoadError> {
    if conn.ping().await.is_ok() {
        return Ok(conn);
    }
    let progress = run.counters.chunks_done.load(Ordering::Relaxed);
    reconnect(
        run,
        &mut Backoff::new(&run.cfg.retry, "reconnecting to the target", progress),
    )
    .await
}

/// A new control connection, retried like any other transient failure.
async fn reconnect(run: &Run, backoff: &mut Backoff) -> Result<Conn, LoadError> {
    loop {
        match run.cfg.target.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => {
                let progress = run.counters.chunks_done.load(Ordering::Relaxed);
                backoff.failed(LoadError::from(e), progress).await?
            }
        }
    }
}

/// Files claimed but not started, with the chunks of each already loaded.
type Claimed = VecDeque<(checkpoint::Claim, Vec<(u32, u64)>)>;

/// Claims the next files (small ones many at once, up to `budget` bytes) into `claimed`.
async fn claim_more(
    run: &Run,
    ctl: &mut Conn,
    budget: u64,
    busy: &mut u64,
    claimed: &mut Claimed,
    taken_over: &mut u64,
) -> Result<(), LoadError> {
    let batch =
        checkpoint::claim_next(ctl, &run.task, &run.owner, run.cfg.lease, budget, busy).await?;
    let ids: Vec<&str> = batch.iter().map(|c| c.file_id.as_str()).collect();
    let mut done = checkpoint::done_chunks(ctl, &run.task, &ids).await?;
    for claim in batch {
        if let Some(old) = &claim.took_over {
            tracing::info!(file = %claim.file, previous_owner = %old, "taking over a file whose claimant is gone");
            *taken_over += 1;
        }
        let d = done.remove(&claim.file_id).unwrap_or_default();
        claimed.push_back((claim, d));
    }
    Ok(())
}

/// Splits one file (of `kind`, `size` bytes, into chunks of `chunk_size`) and queues its chunks
/// not `done` yet, each once it fits in the `budget`.
async fn read_file(
    run: Arc<Run>,
    state: Arc<FileState>,
    (kind, size, chunk_size): (DataKind, u64, u64),
    done: Vec<(u32, u64)>,
    budget: Arc<ChunkBudget>,
    tx: mpsc::Sender<Job>,
) -> Result<(), LoadError> {
    if kind == DataKind::Dat {
        let Some(control) = &state.control else {
            return Err(LoadError::Dump(format!(
                "{}: a .dat file without its LOAD DATA .sql file (mydumper --load-data layout)",
                run.storage.describe(&state.name)
            )));
        };
        let text = crate::input::read_all(&run.storage, control).await?;
        let spec = transcode::parse_load_data(&text).map_err(|m| LoadError::Input {
            file: run.storage.describe(control),
            offset: 0,
            message: m,
        })?;
        let _ = state.dat.set(Arc::new(spec));
    }
    let syntax = match (kind, &run.tables[state.table].csv) {
        (DataKind::Dat, _) => match state.dat.get() {
            Some(spec) => Syntax::csv(&spec.format),
            None => return Err(LoadError::Internal("control file not read".into())),
        },
        (DataKind::Csv, Some(f)) => Syntax::csv(f),
        _ => Syntax::Sql {
            backslash: run.sql_backslash,
        },
    };
    let rt = tokio::runtime::Handle::current();
    let storage = run.storage.clone();
    let describe = storage.describe(&state.name);
    let st = state.clone();
    let run2 = run.clone();
    let gb18030 = run.cfg.charset == "gb18030";
    let outcome = tokio::task::spawn_blocking(move || {
        let reader = crate::input::open(&storage, &st.name, size, &rt)?;
        let reader: Box<dyn std::io::Read + Send> = if gb18030 {
            Box::new(crate::input::Gb18030Reader::new(reader))
        } else {
            reader
        };
        let done: std::collections::HashSet<u32> = done.iter().map(|(c, _)| *c).collect();
        let room = |bytes| budget.reserve_blocking(bytes, &rt);
        split::split_within(
            reader,
            syntax,
            chunk_size as usize,
            &describe,
            room,
            |chunk, room| {
                if run2.cancel.load(Ordering::SeqCst) {
                    return Err(LoadError::Internal("cancelled".into()));
                }
                if done.contains(&chunk.index) {
                    run2.skipped.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                let permit = budget.for_chunk(room, chunk.data.len(), &rt)?;
                st.emitted.fetch_add(1, Ordering::SeqCst);
                run2.counters.chunks_total.fetch_add(1, Ordering::Relaxed);
                tx.blocking_send(Job {
                    file: st.clone(),
                    chunk,
                    _budget: permit,
                })
                .map_err(|_| LoadError::Internal("the workers stopped".into()))
            },
        )
    })
    .await
    .map_err(|e| LoadError::Internal(format!("splitter: {e}")))?;
    match outcome {
        Ok(_) => {}
        Err(LoadError::Internal(m)) if m == "cancelled" || m == "the workers stopped" => {
            return Ok(())
        }
        Err(e) => return Err(e),
    }
    state.split_done.store(true, Ordering::SeqCst);
    let mut meta = None;
    let r = maybe_finish_file(&run, &state, &mut meta).await;
    if let Some(c) = meta {
        let _ = c.disconnect().await;
    }
    r
}

/// Marks the file done once it is split and every chunk it emitted is committed, on `meta`
/// (connected when empty, kept for the next file).
async fn maybe_finish_file(
    run: &Arc<Run>,
    state: &Arc<FileState>,
    meta: &mut Option<Conn>,
) -> Result<(), LoadError> {
    if !state.split_done.load(Ordering::SeqCst)
        || state.completed.load(Ordering::SeqCst) != state.emitted.load(Ordering::SeqCst)
        || state.finished.swap(true, Ordering::SeqCst)
    {
        return Ok(());
    }
    let rows = state.rows.load(Ordering::SeqCst);
    if let Some(expected) = state.expected_rows {
        if expected != rows {
            return Err(LoadError::Verify(format!(
                "{}: {rows} rows read, the manifest says {expected}: the file does not match the dump it belongs to",
                run.storage.describe(&state.name)
            )));
        }
    }
    let what = format!("finishing {}", run.storage.describe(&state.name));
    let progress = || run.counters.chunks_done.load(Ordering::Relaxed);
    let mut backoff = Backoff::new(&run.cfg.retry, what, progress());
    loop {
        let kept = meta.is_some();
        let Err(e) = finish_on(run, state, rows, meta).await else {
            break;
        };
        *meta = None;
        // A kept connection may have gone stale (a target restart, a timeout): one more try
        // at once on a fresh one, then the backoff; finishing is idempotent.
        if kept && e.class() == Class::Transient {
            continue;
        }
        backoff.failed(e, progress()).await?;
    }
    run.counters.files.fetch_add(1, Ordering::Relaxed);
    run.cfg.progress.unit_done(state.table);
    run.file_done.notify_one();
    Ok(())
}

/// Marks the file done and finalizes its table if that was its last file, on `meta`.
async fn finish_on(
    run: &Run,
    state: &FileState,
    rows: u64,
    meta: &mut Option<Conn>,
) -> Result<(), LoadError> {
    if meta.is_none() {
        *meta = Some(run.cfg.target.connect().await?);
    }
    let Some(conn) = meta.as_mut() else {
        return Err(LoadError::Internal("no connection to finish a file".into()));
    };
    checkpoint::finish_file(conn, &run.task, &state.file_id, rows).await?;
    finalize_table(run, conn, state.table).await
}

/// Restores deferred indexes and rebases AUTO_INCREMENT once all of a table's files are done
/// (a table with files left is not touched).
pub(crate) async fn finalize_table(
    run: &Run,
    conn: &mut Conn,
    index: usize,
) -> Result<(), LoadError> {
    let t = &run.tables[index];
    let (db, name) = (&t.plan.db, &t.plan.name);
    if checkpoint::table_files_left(conn, &run.task, db, name).await? > 0 {
        return Ok(());
    }
    let lock = checkpoint::lock_name(&run.task, &format!("table:{db}.{name}"));
    checkpoint::get_lock(conn, &lock, Duration::from_secs(24 * 3600)).await?;
    let r = async {
        let Some((state, restore)) = checkpoint::table_state(conn, &run.task, db, name).await?
        else {
            return Ok(());
        };
        if state == checkpoint::TABLE_FINISHED {
            return Ok(());
        }
        let q = &t.shape.qualified;
        if let Some(sql) = restore.filter(|s| !s.is_empty()) {
            tracing::info!(table = %q, "adding the deferred indexes");
            match conn.query_drop(&sql).await {
                Ok(()) => {}
                // Added by a run that died before recording it.
                Err(mysql_async::Error::Server(e)) if e.code == 1061 => {}
                Err(e) => return Err(from_driver(e, &format!("restoring the indexes of {q}"))),
            }
        }
        if let Some(col) = &t.auto_increment {
            rebase_auto_increment(conn, db, name, q, col).await?;
        }
        checkpoint::set_table_state(conn, &run.task, db, name, checkpoint::TABLE_FINISHED, None)
            .await?;
        tracing::info!(table = %q, "table loaded");
        Ok(())
    }
    .await;
    checkpoint::release_lock(conn, &lock).await?;
    r
}

/// Moves the AUTO_INCREMENT counter of `q` past the largest loaded value. Engines move it
/// past explicit values themselves; an ALTER (a DDL) only where one did not. One round trip
/// reads both the largest value and the counter.
async fn rebase_auto_increment(
    conn: &mut Conn,
    db: &str,
    name: &str,
    q: &str,
    col: &str,
) -> Result<(), LoadError> {
    let row: Option<(Option<String>, Option<u64>)> = conn
        .exec_first(
            format!(
                "SELECT CAST(MAX({}) AS CHAR), (SELECT AUTO_INCREMENT FROM information_schema.TABLES \
                 WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?) FROM {q}",
                ferry_shared::ident::quote_ident(col)
            ),
            (db, name),
        )
        .await
        .map_err(|e| from_driver(e, &format!("reading MAX({col}) and the AUTO_INCREMENT of {q}")))?;
    let Some((Some(max), next)) = row else {
        return Ok(());
    };
    let next = next.map_or(0, i128::from);
    if let Some(v) = max.parse::<i128>().ok().filter(|v| *v >= next) {
        conn.query_drop(format!("ALTER TABLE {q} AUTO_INCREMENT = {}", v + 1))
            .await
            .map_err(|e| from_driver(e, &format!("rebasing AUTO_INCREMENT of {q}")))?;
    }
    Ok(())
}

async fn connect_worker(run: &Run) -> Result<Conn, LoadError> {
    let mut conn = run.cfg.target.connect().await?;
    let mut s = format!(
        "SET SESSION foreign_key_checks = 0, unique_checks = 0, time_zone = {}, sql_mode = {}",
        ferry_shared::ident::quote_str(&run.cfg.time_zone),
        ferry_shared::ident::quote_str(&run.cfg.sql_mode)
    );
    if run.cfg.disable_binlog {
        s.push_str(", sql_log_bin = 0");
    }
    conn.query_drop(s)
        .await
        .map_err(|e| from_driver(e, "setting up the load session"))?;
    Ok(conn)
}

async fn worker_loop(
    run: &Arc<Run>,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    n: usize,
) -> Result<(), LoadError> {
    let mut conn: Option<Conn> = None;
    let mut meta: Option<Conn> = None;
    loop {
        let job = { rx.lock().await.recv().await };
        let Some(job) = job else { break };
        if run.cancel.load(Ordering::SeqCst) {
            continue;
        }
        let file_desc = run.storage.describe(&job.file.name);
        let raw_len = job.chunk.data.len() as u64;
        let what = format!(
            "loading {file_desc} (chunk {}, bytes {}-{})",
            job.chunk.index, job.chunk.start, job.chunk.end
        );
        let progress = || run.counters.chunks_done.load(Ordering::Relaxed);
        let mut backoff = Backoff::new(&run.cfg.retry, what.clone(), progress());
        loop {
            let attempt = match conn.as_mut() {
                Some(c) => commit_chunk(run, c, &job).await,
                None => match connect_worker(run).await {
                    Ok(c) => {
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
            };
            match attempt {
                Ok(Committed::Loaded(rows)) => {
                    run.counters.add(rows, raw_len);
                    run.counters.chunks_done.fetch_add(1, Ordering::Relaxed);
                    if let Some(c) = run.worker_chunks.get(n) {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    job.file.rows.fetch_add(rows, Ordering::SeqCst);
                    run.cfg.progress.add_rows(job.file.table, rows);
                    break;
                }
                Ok(Committed::AlreadyDone(r)) => {
                    tracing::info!(file = %file_desc, chunk = job.chunk.index, "chunk already loaded by another process");
                    run.skipped.fetch_add(1, Ordering::Relaxed);
                    job.file.rows.fetch_add(r, Ordering::SeqCst);
                    break;
                }
                Err(e) => {
                    // A failed chunk leaves its connection in an unknown state: retry on a
                    // fresh one (the chunk's transaction rolled back).
                    conn = None;
                    if let Err(e) = backoff.failed(e, progress()).await {
                        return Err(match e {
                            LoadError::Target(m) => LoadError::Target(format!("{what}: {m}")),
                            LoadError::Failed(f) => LoadError::Failed(f.about(&format!(
                                "{file_desc} (chunk {}, bytes {}-{})",
                                job.chunk.index, job.chunk.start, job.chunk.end
                            ))),
                            other => other,
                        });
                    }
                }
            }
        }
        // The chunk's bytes and budget go now, not after the file's finishing work.
        let file = job.file.clone();
        drop(job);
        file.completed.fetch_add(1, Ordering::SeqCst);
        maybe_finish_file(run, &file, &mut meta).await?;
    }
    for c in [conn, meta].into_iter().flatten() {
        let _ = c.disconnect().await;
    }
    Ok(())
}

/// INSERT batches (under --method insert) close at about this size.
fn insert_batch(run: &Run) -> usize {
    ((run.max_packet / 2) as usize).clamp(64 << 10, 4 << 20)
}

#[allow(clippy::too_many_arguments)]
fn transcode_chunk(
    run: &Run,
    ti: usize,
    kind: DataKind,
    dat: Option<&transcode::LoadDataSpec>,
    data: &[u8],
    prelude: &[String],
    header: Option<&Vec<u8>>,
    sink: &mut StepSink<'_>,
) -> Result<u64, transcode::ChunkError> {
    let t = &run.tables[ti];
    let opts = TranscodeOptions {
        method: run.method,
        charset: run.default_charset.clone(),
        validate_utf8: run.validate_utf8,
        insert_batch: insert_batch(run),
        insert_verb: match run.cfg.on_duplicate {
            OnDuplicate::Error => "INSERT",
            OnDuplicate::Replace => "REPLACE",
            OnDuplicate::Ignore => "INSERT IGNORE",
        },
        sql_backslash: run.sql_backslash,
        max_statement: run.max_packet as usize,
    };
    if let (DataKind::Dat, Some(spec)) = (kind, dat) {
        let columns = spec
            .columns
            .clone()
            .unwrap_or_else(|| t.shape.columns.clone());
        let mut opts = opts;
        if let Some(cs) = &spec.charset {
            opts.charset = cs.clone();
        }
        return transcode::csv_chunk(data, &spec.format, &columns, &t.shape, &opts, sink);
    }
    match (&t.csv, kind) {
        (Some(f), DataKind::Csv) => {
            let columns = match header {
                Some(h) => {
                    let names = transcode::csv_header(h, f)?;
                    for c in &names {
                        if !t.target_columns.contains(&c.to_lowercase()) {
                            return Err(transcode::ChunkError {
                                offset: 0,
                                message: format!(
                                    "the header names column `{c}`, which {} does not have",
                                    t.shape.qualified
                                ),
                            });
                        }
                    }
                    names
                }
                None => t.shape.columns.clone(),
            };
            transcode::csv_chunk(data, f, &columns, &t.shape, &opts, sink)
        }
        _ => transcode::sql_chunk(data, prelude, &t.shape, &opts, sink),
    }
}

enum Committed {
    /// Loaded now: this many rows.
    Loaded(u64),
    /// Loaded by another process before: this many rows.
    AlreadyDone(u64),
}

fn load_statement(
    run: &Run,
    shape: &transcode::TableShape,
    columns: &[String],
    charset: &str,
) -> String {
    let verb = match run.cfg.on_duplicate {
        OnDuplicate::Error => "",
        OnDuplicate::Replace => "REPLACE ",
        OnDuplicate::Ignore => "IGNORE ",
    };
    let mut cols = Vec::with_capacity(columns.len());
    let mut sets = Vec::new();
    for (i, c) in columns.iter().enumerate() {
        let q = ferry_shared::ident::quote_ident(c);
        let typed = shape
            .typed_text_columns
            .iter()
            .any(|t| t.eq_ignore_ascii_case(c));
        if charset == "binary" && typed {
            // INET6/UUID read binary strings as their 16-byte form; the stream has text.
            cols.push(format!("@ferry_{i}"));
            sets.push(format!("{q} = CONVERT(@ferry_{i} USING latin1)"));
        } else {
            cols.push(q);
        }
    }
    let mut s = format!(
        "LOAD DATA LOCAL INFILE 'ferry-chunk' {verb}INTO TABLE {} CHARACTER SET {charset} \
         FIELDS TERMINATED BY ',' ENCLOSED BY '\\'' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({})",
        shape.qualified,
        cols.join(",")
    );
    if !sets.is_empty() {
        s.push_str(" SET ");
        s.push_str(&sets.join(", "));
    }
    s
}

/// `Records: N  Deleted: D  Skipped: S  Warnings: W`
fn parse_info(info: &str) -> HashMap<String, u64> {
    let mut m = HashMap::new();
    let mut it = info.split_whitespace();
    while let Some(k) = it.next() {
        if let Some(v) = it.next() {
            if let Ok(n) = v.parse() {
                m.insert(k.trim_end_matches(':').to_ascii_lowercase(), n);
            }
        }
    }
    m
}

fn is_skippable_setting(sql: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(sql).to_ascii_lowercase();
    lower.contains("sql_log_bin")
        || lower.contains("gtid")
        || lower.contains("character_set_client") && lower.contains("@old")
}

/// Steps handed from the transcoder to the target ahead of the one being sent.
const STEPS_AHEAD: usize = 2;
/// Bytes of transcoded rows per step handed on (at least an INSERT batch, under --method insert).
const TRANSCODE_PIECE: usize = 1 << 20;

/// Loads one chunk in one transaction with its checkpoint row. The chunk is transcoded on a
/// blocking thread while it is sent, a piece at a time, so only a few pieces of its transcoded
/// form exist at once; a retry transcodes it again from its raw bytes.
async fn commit_chunk(run: &Arc<Run>, conn: &mut Conn, job: &Job) -> Result<Committed, LoadError> {
    // One round trip for both (the charset name is reduced to letters, digits and `_`).
    conn.query_drop(format!(
        "SET NAMES {}; START TRANSACTION",
        run.default_charset
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "")
    ))
    .await
    .map_err(|e| from_driver(e, "SET NAMES and START TRANSACTION"))?;
    // The checkpoint row first: a chunk another process loaded is skipped before any work. Its
    // row count is set once the chunk is through (the row is invisible until COMMIT).
    let key = (&run.task, &job.file.file_id, job.chunk.index);
    let guard = conn
        .exec_drop(
            "INSERT INTO `ferry_meta`.`load_chunk_v1` (task_id, file_id, chunk, start_offset, end_offset, `rows`, owner, done_at) VALUES (?, ?, ?, ?, ?, 0, ?, NOW(6))",
            (key.0, key.1, key.2, job.chunk.start, job.chunk.end, &run.owner),
        )
        .await;
    match guard {
        Ok(()) => {}
        Err(mysql_async::Error::Server(e)) if e.code == 1062 => {
            let _ = conn.query_drop("ROLLBACK").await;
            let r: Option<u64> = conn
                .exec_first(
                    "SELECT `rows` FROM `ferry_meta`.`load_chunk_v1` WHERE task_id = ? AND file_id = ? AND chunk = ?",
                    key,
                )
                .await
                .map_err(|e| from_driver(e, "reading ferry_meta.load_chunk_v1"))?;
            return Ok(Committed::AlreadyDone(r.unwrap_or(0)));
        }
        Err(e) => return Err(from_driver(e, "writing the chunk checkpoint")),
    }
    let (feed, transcoder) = start_transcoding(run, job);
    let sent = send_steps(run, conn, job.file.table, &feed).await;
    // Stops the transcoder if sending failed; it ends on its own otherwise.
    feed.lock().await.rx.close();
    let transcoded = transcoder
        .await
        .map_err(|e| LoadError::Internal(format!("transcoder: {e}")))?;
    sent?;
    let rows = transcoded.map_err(|e| LoadError::Input {
        file: run.storage.describe(&job.file.name),
        offset: job.chunk.start + e.offset as u64,
        message: e.message,
    })?;
    conn.exec_drop(
        "UPDATE `ferry_meta`.`load_chunk_v1` SET `rows` = ? WHERE task_id = ? AND file_id = ? AND chunk = ?",
        (rows, key.0, key.1, key.2),
    )
    .await
    .map_err(|e| from_driver(e, "writing the chunk checkpoint"))?;
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| from_driver(e, "COMMIT"))?;
    Ok(Committed::Loaded(rows))
}

/// The steps of one chunk as the transcoder hands them on.
struct StepFeed {
    rx: mpsc::Receiver<Step>,
    /// A step taken off the queue that ends a `LOAD DATA` stream: the next one to run.
    peeked: Option<Step>,
    /// Rows sent in the current `LOAD DATA` stream.
    load_rows: u64,
}

type SharedFeed = Arc<Mutex<StepFeed>>;

/// Transcodes the job's chunk on a blocking thread into a queue of [`STEPS_AHEAD`] steps; the
/// task returns the chunk's rows (or where its bytes are not valid input).
fn start_transcoding(
    run: &Arc<Run>,
    job: &Job,
) -> (
    SharedFeed,
    tokio::task::JoinHandle<Result<u64, transcode::ChunkError>>,
) {
    let (tx, rx) = mpsc::channel(STEPS_AHEAD);
    let run2 = run.clone();
    let (ti, kind) = (job.file.table, job.file.kind);
    let dat = job.file.dat.get().cloned();
    let chunk = job.chunk.clone();
    let transcoder = tokio::task::spawn_blocking(move || {
        let mut send = |step| {
            tx.blocking_send(step).map_err(|_| transcode::ChunkError {
                offset: 0,
                message: "the loader stopped sending this chunk".into(),
            })
        };
        let piece = TRANSCODE_PIECE.max(insert_batch(&run2));
        let mut sink = StepSink {
            piece,
            send: &mut send,
        };
        let header = chunk.header.as_deref();
        transcode_chunk(
            &run2,
            ti,
            kind,
            dat.as_deref(),
            &chunk.data,
            &chunk.prelude,
            header,
            &mut sink,
        )
    });
    let feed = StepFeed {
        rx,
        peeked: None,
        load_rows: 0,
    };
    (Arc::new(Mutex::new(feed)), transcoder)
}

/// The next step: the one a `LOAD DATA` stream stopped at, else the next from the transcoder.
async fn next_step(feed: &mut StepFeed) -> Option<Step> {
    match feed.peeked.take() {
        Some(step) => Some(step),
        None => feed.rx.recv().await,
    }
}

/// Runs the chunk's steps on `conn` in order, until the transcoder is done.
async fn send_steps(
    run: &Run,
    conn: &mut Conn,
    table: usize,
    feed: &SharedFeed,
) -> Result<(), LoadError> {
    let q = &run.tables[table].shape.qualified;
    loop {
        let step = next_step(&mut *feed.lock().await).await;
        match step {
            None => return Ok(()),
            Some(Step::Load {
                columns,
                charset,
                data,
                rows,
            }) => {
                feed.lock().await.load_rows = rows;
                let (first, cols, cs, feed2) = (
                    Bytes::from(data),
                    columns.clone(),
                    charset.clone(),
                    feed.clone(),
                );
                conn.set_infile_handler(async move { Ok(infile_stream(first, cols, cs, feed2)) });
                let shape = &run.tables[table].shape;
                conn.query_drop(load_statement(run, shape, &columns, &charset))
                    .await
                    .map_err(|e| from_driver(e, &format!("LOAD DATA into {q}")))?;
                let rows = feed.lock().await.load_rows;
                check_load_outcome(run, conn, q, rows).await?;
            }
            Some(Step::Exec { sql, .. }) => {
                if is_skippable_setting(&sql) {
                    continue;
                }
                conn.query_drop(&sql[..]).await.map_err(|e| {
                    let text =
                        String::from_utf8_lossy(&sql[..sql.len().min(100)]).replace('\n', " ");
                    from_driver(e, &format!("`{text}`"))
                })?;
                let w = conn.get_warnings() as u64;
                if w > 0 {
                    note_warnings(run, conn, q, w).await;
                }
            }
        }
    }
}

/// The bytes of one `LOAD DATA LOCAL` stream, in pieces of [`INFILE_PIECE`]: `first`, then the
/// data of the next steps while they load the same `columns` in the same `charset`. The first
/// other step is left in the feed for [`send_steps`].
fn infile_stream(
    first: Bytes,
    columns: Vec<String>,
    charset: String,
    feed: SharedFeed,
) -> mysql_async::InfileData {
    // The state: bytes not yet handed on, and the feed (None once the stream has ended).
    let key = Arc::new((columns, charset));
    let pieces = futures::stream::unfold((first, Some(feed)), move |(mut data, feed)| {
        let key = key.clone();
        async move {
            if !data.is_empty() {
                let piece = data.split_to(data.len().min(INFILE_PIECE));
                return Some((Ok(piece), (data, feed)));
            }
            let shared = feed?;
            let mut f = shared.lock().await;
            match next_step(&mut f).await {
                Some(Step::Load {
                    columns,
                    charset,
                    data,
                    rows,
                }) if (&columns, &charset) == (&key.0, &key.1) => {
                    f.load_rows += rows;
                    drop(f);
                    // An empty piece: the driver skips it, and the next poll sends `data`.
                    Some((Ok(Bytes::new()), (Bytes::from(data), Some(shared))))
                }
                other => {
                    f.peeked = other;
                    None
                }
            }
        }
    });
    Box::pin(pieces)
}

/// Refuses a `LOAD DATA` that skipped rows as duplicates (unless asked to), and notes warnings.
async fn check_load_outcome(
    run: &Run,
    conn: &mut Conn,
    q: &str,
    rows: u64,
) -> Result<(), LoadError> {
    let info = parse_info(&conn.info());
    let skipped = info.get("skipped").copied().unwrap_or(0);
    let warnings = info
        .get("warnings")
        .copied()
        .unwrap_or(conn.get_warnings() as u64);
    if skipped > 0 && run.cfg.on_duplicate == OnDuplicate::Error {
        let first = first_warning(conn).await;
        let _ = conn.query_drop("ROLLBACK").await;
        return Err(LoadError::Target(format!(
            "{skipped} of {rows} rows duplicate a key already in {q} ({first}); use --on-duplicate replace|ignore to load anyway"
        )));
    }
    if warnings > 0 {
        note_warnings(run, conn, q, warnings).await;
    }
    Ok(())
}

async fn first_warning(conn: &mut Conn) -> String {
    let w: Result<Option<(String, u32, String)>, _> =
        conn.query_first("SHOW WARNINGS LIMIT 1").await;
    match w {
        Ok(Some((_, code, msg))) => format!("{msg} ({code})"),
        _ => "no detail".into(),
    }
}

async fn note_warnings(run: &Run, conn: &mut Conn, q: &str, n: u64) {
    let before = run.warnings.fetch_add(n, Ordering::Relaxed);
    if before < 20 {
        let first = first_warning(conn).await;
        tracing::warn!(table = %q, warnings = n, first = %first, "the target reported warnings while loading");
    }
}
