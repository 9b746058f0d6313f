//! What a dump is asked to do: the source, the destination, the output format and which
//! objects to dump. The binary fills a [`DumpConfig`] from the command line; the options that
//! decide the files ([`DumpConfig::fingerprint`]) must not change between a run and its
//! resumption.

use crate::consistency::Consistency;
use crate::encode::SqlOptions;
use crate::writer::Compression;
use ferry_shared::conn::ConnSpec;
use ferry_shared::csv::CsvDialect;
use ferry_shared::filter::TableFilter;
use ferry_shared::progress::Progress;
use ferry_shared::storage::S3Options;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Sql,
    Csv,
}

/// Everything `ferry dump` needs, validated by the CLI.
#[derive(Debug, Clone)]
pub struct DumpConfig {
    pub source: ConnSpec,
    /// Local directory or `s3://bucket/prefix`.
    pub to: String,
    pub s3: S3Options,
    /// How long reading keeps retrying a source that went away (each retry at a new
    /// consistent point).
    pub retry: ferry_shared::failure::RetryPolicy,
    pub threads: usize,
    /// Target rows per chunk; None: one chunk per table.
    pub rows: Option<u64>,
    pub filetype: FileType,
    pub sql: SqlOptions,
    pub csv: CsvDialect,
    pub compression: Compression,
    /// Split data files at about this many uncompressed bytes.
    pub file_size: Option<u64>,
    pub consistency: Consistency,
    pub filter: TableFilter,
    pub where_clause: Option<String>,
    pub no_data: bool,
    pub no_schemas: bool,
    pub no_views: bool,
    pub triggers: bool,
    pub routines: bool,
    pub checksum: bool,
    /// Counters of the run, filled here and drawn by the caller.
    pub progress: Arc<Progress>,
}

impl DumpConfig {
    /// Options that must not change between a run and its resumption.
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "filetype={:?};compress={};csv={:?};sql={}/{}/{};filesize={:?};rows={:?};filter={};where={:?};no_data={};checksum={}",
            self.filetype,
            self.compression.name(),
            self.csv,
            self.sql.statement_size,
            self.sql.complete_insert,
            self.sql.escape_backslash,
            self.file_size,
            self.rows,
            self.filter,
            self.where_clause,
            self.no_data,
            self.checksum
        )
    }
}
