//! What a load reports when it is done: the summary the binary prints, with the verification
//! of every table ([`TableCheck`]).

use crate::error::LoadError;
use serde::Serialize;

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

/// The verification failure naming every table that differs from the dump.
pub(crate) fn mismatch_error(verified: &[TableCheck]) -> LoadError {
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
