//! What the steps of one run share: the tables to load ([`TableCtx`]), the files this process
//! is loading ([`FileState`]), and the run's state ([`Run`]): its config, counters, the first
//! failure (which cancels the others) and the chunks each worker committed.

use crate::config::LoadConfig;
use crate::discover::{DataKind, TablePlan};
use crate::error::LoadError;
use crate::transcode::{self, Method, TableShape};
use ferry_shared::csv::CsvDialect;
use ferry_shared::progress::Counters;
use ferry_shared::storage::Storage;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// What a worker needs to know about a table.
#[derive(Debug)]
pub(crate) struct TableCtx {
    pub plan: TablePlan,
    pub shape: TableShape,
    pub csv: Option<CsvDialect>,
    /// Target column names (lower case) for checking CSV headers.
    pub target_columns: Vec<String>,
    /// The target table's AUTO_INCREMENT column, if it has one.
    pub auto_increment: Option<String>,
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
pub(crate) fn dump_identity(storage: &Arc<dyn Storage>) -> String {
    match storage.local_path("") {
        Some(p) => std::fs::canonicalize(&p)
            .map(|c| c.display().to_string())
            .unwrap_or_else(|_| storage.describe("")),
        None => storage.describe(""),
    }
}
