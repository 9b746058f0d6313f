//! Completion markers: when a chunk's files are complete, `.ferry-dump/done/<table>.<chunk>.json`
//! records its files, rows, checksum and the Location of the snapshot it was read at. A chunk
//! without a marker is redone from scratch, so nothing is duplicated; the markers are what the
//! manifest is built from.
//!
//! One marker object records a batch of a worker's chunks ([`MarkerBatch`]): many small chunks
//! (many small tables) then cost one marker (create, fsync, rename, and a delete at the end)
//! instead of one each, while a big chunk still gets its marker as soon as it is done. A batch
//! holds only chunks whose tails have finished their files, and its marker is written after a
//! `Storage::sync` that makes those files durable (they are written with deferred durability:
//! one sync per batch instead of an fsync per file), so a marker never names a chunk whose
//! files are not durable; a chunk whose marker is lost to a crash is read again on resume, its
//! leftover files deleted first.
//! Markers written by earlier versions hold one chunk each and are still read.

use crate::chunk::ChunkPlan;
use crate::config::DumpConfig;
use crate::error::DumpError;
use crate::plan::DumpPlan;
use ferry_shared::manifest::{ChunkChecksum, FileEntry};
use ferry_shared::storage::Storage;
use ferry_shared::Location;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const DONE_PREFIX: &str = ".ferry-dump/done/";

/// Marker of a finished chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChunkDone {
    pub(crate) table: usize,
    pub(crate) chunk: u32,
    pub(crate) rows: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) files: Vec<FileEntry>,
    pub(crate) location: Option<Location>,
    pub(crate) taken_at: String,
    pub(crate) strategy: String,
    pub(crate) checksum: Option<ChunkChecksum>,
}

/// A marker object: a batch of chunks, or (written by earlier versions) a single chunk.
#[derive(Deserialize)]
#[serde(untagged)]
enum MarkerObject {
    Batch(Vec<ChunkDone>),
    One(ChunkDone),
}

/// Chunks of one worker whose files are complete and durable but whose marker is not written
/// yet (see the module's opening).
#[derive(Default)]
pub(crate) struct MarkerBatch {
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
    pub(crate) fn push(&mut self, marker: ChunkDone) {
        self.since.get_or_insert_with(Instant::now);
        self.raw_bytes += marker.raw_bytes;
        self.chunks.push(marker);
    }

    pub(crate) fn due(&self) -> bool {
        self.chunks.len() >= MARKER_BATCH_CHUNKS
            || self.raw_bytes >= MARKER_BATCH_BYTES
            || self.since.is_some_and(|t| t.elapsed() >= MARKER_BATCH_AGE)
    }

    /// Writes the batch's marker (named after its first chunk, which no other marker can
    /// hold) and hands its chunks to `finished`.
    pub(crate) async fn write(
        &mut self,
        storage: &dyn Storage,
        finished: &Mutex<Vec<ChunkDone>>,
    ) -> Result<(), DumpError> {
        let Some(first) = self.chunks.first() else {
            return Ok(());
        };
        let name = done_name(first.table, first.chunk);
        // The chunks' files were written with deferred durability: make them durable first.
        storage.sync().await?;
        let data = serde_json::to_vec_pretty(&self.chunks).map_err(|e| {
            DumpError::Definite(format!(
                "{}: encoding the chunk marker: {e}",
                storage.describe(&name)
            ))
        })?;
        storage.put(&name, data.into()).await?;
        let chunks = std::mem::take(&mut self.chunks);
        *self = MarkerBatch::default();
        finished
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(chunks);
        Ok(())
    }
}

pub(crate) fn done_name(table: usize, chunk: u32) -> String {
    format!("{DONE_PREFIX}{table:06}.{chunk:09}.json")
}

/// Reads the chunks' completion markers into `done`.
pub(crate) async fn read_markers(
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
pub(crate) fn unfinished(
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

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_shared::storage::LocalStorage;

    /// A marker as dumps before batching wrote it: one chunk, pinned as literal text, so a dump
    /// interrupted under an earlier version still resumes.
    const ONE_CHUNK_MARKER: &str = r#"{
  "table": 3,
  "chunk": 7,
  "rows": 2,
  "raw_bytes": 40,
  "files": [{"name": "d.t.000000007.sql", "bytes": 40, "rows": 2}],
  "location": null,
  "taken_at": "2026-01-01 00:00:00",
  "strategy": "snapshot",
  "checksum": null
}"#;

    fn done(table: usize, chunk: u32) -> ChunkDone {
        ChunkDone {
            table,
            chunk,
            rows: 1,
            raw_bytes: 10,
            files: Vec::new(),
            location: None,
            taken_at: String::new(),
            strategy: "snapshot".into(),
            checksum: None,
        }
    }

    #[tokio::test]
    async fn batches_and_one_chunk_markers_are_both_read() {
        let dir = tempfile::tempdir().unwrap();
        let storage = LocalStorage::new(dir.path());
        storage
            .put(&done_name(3, 7), ONE_CHUNK_MARKER.into())
            .await
            .unwrap();
        let finished = Mutex::new(Vec::new());
        let mut batch = MarkerBatch::default();
        batch.push(done(0, 0));
        batch.push(done(0, 1));
        assert!(!batch.due(), "two small chunks are not a batch yet");
        batch.write(&storage, &finished).await.unwrap();
        assert_eq!(finished.lock().unwrap().len(), 2);
        // An empty batch writes nothing.
        batch.write(&storage, &finished).await.unwrap();
        assert_eq!(storage.list(DONE_PREFIX).await.unwrap().len(), 2);

        let mut read = BTreeMap::new();
        read_markers(&storage, &mut read).await.unwrap();
        let keys: Vec<(usize, u32)> = read.keys().copied().collect();
        assert_eq!(keys, [(0, 0), (0, 1), (3, 7)]);
        assert_eq!(read[&(3, 7)].files[0].name, "d.t.000000007.sql");
    }

    #[test]
    fn a_batch_is_due_by_count_bytes_or_age() {
        let mut by_count = MarkerBatch::default();
        for i in 0..MARKER_BATCH_CHUNKS as u32 {
            assert!(!by_count.due());
            by_count.push(done(0, i));
        }
        assert!(by_count.due());
        let mut by_bytes = MarkerBatch::default();
        by_bytes.push(ChunkDone {
            raw_bytes: MARKER_BATCH_BYTES,
            ..done(1, 0)
        });
        assert!(by_bytes.due());
        let mut by_age = MarkerBatch::default();
        by_age.push(done(2, 0));
        by_age.since = Some(Instant::now() - MARKER_BATCH_AGE);
        assert!(by_age.due());
    }
}
