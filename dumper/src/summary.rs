//! What a dump reports when it is done, for the summary line and `--output json`.

use serde::Serialize;

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
