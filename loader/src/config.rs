//! What a load is asked to do: the target, the dump, and the policies for existing tables,
//! duplicate keys, the load method, view DEFINERs and the CSV dialect. The binary fills a
//! [`LoadConfig`] from the command line; [`crate::run::run`] takes it.

use ferry_shared::conn::ConnSpec;
use ferry_shared::csv::CsvDialect;
use ferry_shared::filter::TableFilter;
use ferry_shared::progress::Progress;
use ferry_shared::storage::S3Options;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExisting {
    Error,
    Append,
    Truncate,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDuplicate {
    Error,
    Replace,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    Auto,
    LoadData,
    Insert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefinerPolicy {
    /// Keep DEFINERs whose account exists on the target; drop the others.
    Auto,
    Keep,
    Strip,
}

#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub target: ConnSpec,
    /// Local directory or `s3://bucket/prefix`.
    pub from: String,
    pub s3: S3Options,
    pub threads: usize,
    pub task_id: Option<String>,
    pub filter: TableFilter,
    /// Tables exist on the target already; do not run schema files.
    pub no_schema: bool,
    pub on_existing: OnExisting,
    pub on_duplicate: OnDuplicate,
    pub method: MethodChoice,
    pub defer_indexes: bool,
    pub definer: DefinerPolicy,
    pub disable_binlog: bool,
    /// Chunk size in decompressed bytes.
    pub chunk_size: u64,
    /// `auto`, `utf8mb4`, `gb18030`, `latin1`, `binary`.
    pub charset: String,
    /// CSV dialect of files without a manifest (`--csv-*`); a ferry dump's manifest gives its
    /// own, which wins.
    pub csv: CsvDialect,
    pub verify: bool,
    /// How long a chunk or the coordination keeps retrying a target that went away.
    pub retry: ferry_shared::failure::RetryPolicy,
    pub sql_mode: String,
    /// Session time zone while loading (TIMESTAMP text in dumps is UTC unless a file says).
    pub time_zone: String,
    /// Counters of the run, filled here and drawn by the caller; per table, a unit is a file.
    pub progress: Arc<Progress>,
    /// A claimant silent for longer than this is presumed dead.
    pub lease: Duration,
}
