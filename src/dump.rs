//! `ferry dump` options and their validation, and the run with its progress display.

use crate::cli::{usage, OutputMode};
use crate::progress::Display;
use clap::Args;
use ferry_dumper::consistency::Consistency;
use ferry_dumper::encode::SqlOptions;
use ferry_dumper::writer::Compression;
use ferry_dumper::{DumpConfig, DumpSummary, FileType};
use ferry_shared::csv::CsvDialect;
use ferry_shared::filter::TableFilter;
use ferry_shared::progress::human_bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct DumpArgs {
    /// Source server, `mysql://user@host:port`. The password comes from FERRY_SOURCE_PASSWORD
    /// or --source-password-file, never from the URL.
    #[arg(long)]
    source: String,
    /// File holding the source password (first line).
    #[arg(long)]
    source_password_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the source's TLS certificate; enables TLS.
    #[arg(long)]
    source_ssl_ca: Option<PathBuf>,
    /// Destination: a local directory or `s3://bucket/prefix`.
    #[arg(long, short = 'o')]
    to: String,
    #[command(flatten)]
    s3: crate::cli::S3Args,
    #[command(flatten)]
    retry: crate::cli::RetryArgs,
    /// Parallel snapshot connections.
    #[arg(long, short = 't', default_value_t = 4)]
    threads: usize,
    /// Split tables into chunks of about this many rows (by primary/unique key).
    #[arg(long, short = 'r')]
    rows: Option<u64>,
    /// How the consistent point is taken.
    #[arg(long, default_value = "auto", value_parser = ["auto", "backup-stage", "flush", "lock", "snapshot", "none"])]
    consistency: String,
    /// Data file format.
    #[arg(long, default_value = "sql", value_parser = ["sql", "csv"])]
    filetype: String,
    /// Compression of data files.
    #[arg(long, default_value = "none", value_parser = ["none", "zstd", "gzip"])]
    compress: String,
    /// Compression level (zstd 1-22, default 1: fastest; gzip 1-9, default 6).
    #[arg(long)]
    compress_level: Option<i32>,
    /// Split data files at about this size (uncompressed), e.g. 256MiB, 1GB, 1000000.
    #[arg(long, short = 'F')]
    filesize: Option<String>,
    /// Close an INSERT statement at about this many bytes.
    #[arg(long, short = 's', default_value_t = 1_000_000)]
    statement_size: u64,
    /// Always list the columns in INSERT statements.
    #[arg(long)]
    complete_insert: bool,
    /// Escape with backslashes in SQL and CSV (false: only double the quote character).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    escape_backslash: bool,
    /// CSV field separator.
    #[arg(long, default_value = ",")]
    csv_separator: String,
    /// CSV string delimiter (quote character); may be empty.
    #[arg(long, default_value = "\"")]
    csv_delimiter: String,
    /// How NULL is written in CSV.
    #[arg(long, default_value = "\\N")]
    csv_null_value: String,
    /// Write a header line with column names in CSV files.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    csv_header: bool,
    /// CSV line terminator: `\n` or `\r\n`.
    #[arg(long, default_value = "\\n")]
    csv_line_terminator: String,
    /// Table filter rule (TiDB table-filter syntax); repeatable; later rules win.
    #[arg(long, short = 'f')]
    filter: Vec<String>,
    /// Only dump these databases (shorthand for -f 'db.*').
    #[arg(long, short = 'B')]
    database: Vec<String>,
    /// Extra WHERE condition applied to every table.
    #[arg(long = "where", value_name = "CONDITION")]
    where_clause: Option<String>,
    /// Schema files only.
    #[arg(long)]
    no_data: bool,
    /// Data files only.
    #[arg(long)]
    no_schemas: bool,
    /// Skip views.
    #[arg(long)]
    no_views: bool,
    /// Dump triggers (`-schema-triggers.sql`).
    #[arg(long)]
    triggers: bool,
    /// Dump stored routines and events (`-schema-post.sql`).
    #[arg(long)]
    routines: bool,
    /// Record per-table checksums computed by the source in the same snapshot.
    #[arg(long)]
    checksum: bool,
    /// Summary format.
    #[arg(long, value_enum, default_value_t = OutputMode::Text)]
    output: OutputMode,
    /// Progress display: auto (bars on a terminal, log lines otherwise), bars, log, off.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bars", "log", "off"])]
    progress: String,
    /// Seconds between progress log lines when not on a terminal.
    #[arg(long, default_value_t = 10)]
    progress_interval: u64,
}

/// Parses sizes such as `1000000`, `256MiB`, `1GB`, `64k`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid size `{s}` (examples: 1000000, 256MiB, 1GB)"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1048576.0,
        "g" | "gb" => 1e9,
        "gib" => 1073741824.0,
        "t" | "tb" => 1e12,
        "tib" => 1099511627776.0,
        other => return Err(format!("invalid size unit `{other}` in `{s}`")),
    };
    let v = (n * mult) as u64;
    if v == 0 {
        return Err(format!("size `{s}` must be positive"));
    }
    Ok(v)
}

fn unescape_terminator(s: &str) -> String {
    s.replace("\\r", "\r")
        .replace("\\n", "\n")
        .replace("\\t", "\t")
}

fn build_config(a: DumpArgs) -> Result<DumpConfig, u8> {
    let source = crate::cli::connection(
        &a.source,
        "FERRY_SOURCE_PASSWORD",
        a.source_password_file.as_deref(),
        a.source_ssl_ca.clone(),
    )?;
    if a.threads == 0 || a.threads > 256 {
        return Err(usage("--threads must be between 1 and 256"));
    }
    if a.rows == Some(0) {
        return Err(usage("--rows must be positive"));
    }
    let mut rules = a.filter.clone();
    for db in &a.database {
        rules.push(format!("`{}`.*", db.replace('`', "``")));
    }
    if rules.is_empty() {
        rules.push("*.*".into());
    }
    let filter = TableFilter::parse(&rules).map_err(usage)?;
    let compression = match a.compress.as_str() {
        "zstd" => {
            let l = a.compress_level.unwrap_or(1);
            if !(1..=22).contains(&l) {
                return Err(usage("--compress-level for zstd must be 1-22"));
            }
            Compression::Zstd(l)
        }
        "gzip" => {
            let l = a.compress_level.unwrap_or(6);
            if !(1..=9).contains(&l) {
                return Err(usage("--compress-level for gzip must be 1-9"));
            }
            Compression::Gzip(l as u32)
        }
        _ => Compression::None,
    };
    let file_size = a
        .filesize
        .as_deref()
        .map(parse_size)
        .transpose()
        .map_err(usage)?;
    let csv = CsvDialect {
        separator: a.csv_separator,
        delimiter: a.csv_delimiter,
        null_value: a.csv_null_value,
        header: a.csv_header,
        escape_backslash: a.escape_backslash,
        line_terminator: unescape_terminator(&a.csv_line_terminator),
    };
    if a.filetype == "csv" {
        if let Some(problem) = csv.write_problem() {
            return Err(usage(problem));
        }
    }
    let consistency: Consistency = a.consistency.parse().map_err(usage)?;
    Ok(DumpConfig {
        source,
        to: a.to,
        s3: a.s3.options(),
        retry: a.retry.policy(),
        threads: a.threads,
        rows: a.rows,
        filetype: if a.filetype == "csv" {
            FileType::Csv
        } else {
            FileType::Sql
        },
        sql: SqlOptions {
            statement_size: a.statement_size.max(1),
            complete_insert: a.complete_insert,
            escape_backslash: a.escape_backslash,
        },
        csv,
        compression,
        file_size,
        consistency,
        filter,
        where_clause: a.where_clause,
        no_data: a.no_data,
        no_schemas: a.no_schemas,
        no_views: a.no_views,
        triggers: a.triggers,
        routines: a.routines,
        checksum: a.checksum,
        progress: Arc::default(),
    })
}

fn print_summary(s: &DumpSummary, mode: OutputMode) {
    match mode {
        OutputMode::Json => println!("{}", serde_json::to_string(s).unwrap_or_default()),
        OutputMode::Text => {
            println!(
                "dump complete: {} tables, {} views, {} rows, {} files, {} stored ({} raw) in {:.1}s — {:.0} rows/s, {:.1} MB/s",
                s.tables,
                s.views,
                s.rows,
                s.files,
                human_bytes(s.bytes),
                human_bytes(s.raw_bytes),
                s.elapsed_secs,
                s.rows_per_sec,
                s.raw_mb_per_sec
            );
            println!("  destination: {}", s.destination);
            println!(
                "  consistency: {} (blocked {} ms)",
                s.consistency, s.blocked_ms
            );
            for l in &s.locations {
                println!("  location:    {l}");
            }
            if s.chunks_resumed > 0 {
                println!(
                    "  resumed:     {} of {} chunks were done by an earlier run",
                    s.chunks_resumed, s.chunks
                );
            }
        }
    }
}

pub async fn run(args: DumpArgs) -> u8 {
    let output = args.output;
    let mode = crate::cli::progress_mode(&args.progress);
    let interval = Duration::from_secs(args.progress_interval.max(1));
    let cfg = match build_config(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let display = Display::start("dump", mode, cfg.progress.clone(), interval);
    let result = ferry_dumper::run(cfg).await;
    display.finish().await;
    crate::cli::finish(result, |summary| print_summary(summary, output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000000"), Ok(1_000_000));
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert!(parse_size("12xb").is_err());
        assert!(parse_size("0").is_err());
    }
}
