//! Completion markers: when a chunk's files are complete, `.ferry-dump/done/<table>.<chunk>.json`
//! records its files, rows, checksum and the Location of the snapshot it was read at. A chunk
//! without a marker is redone from scratch, so nothing is duplicated; the markers are what the
//! manifest is built from.

use crate::chunk::ChunkPlan;
use crate::config::DumpConfig;
use crate::error::DumpError;
use crate::plan::DumpPlan;
use ferry_shared::manifest::{ChunkChecksum, FileEntry};
use ferry_shared::storage::Storage;
use ferry_shared::Location;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

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
        let marker: ChunkDone = serde_json::from_slice(&data).map_err(|e| {
            DumpError::Definite(format!(
                "{}: corrupt chunk marker ({e}); delete it to redo that chunk",
                storage.describe(&obj.name)
            ))
        })?;
        done.insert((marker.table, marker.chunk), marker);
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
