//! `ferry load` options and their validation, and the run with its progress display.

use crate::cli::{usage, OutputMode};
use crate::dump::parse_size;
use crate::progress::Display;
use clap::Args;
use ferry_loader::{DefinerPolicy, LoadConfig, LoadSummary, MethodChoice, OnDuplicate, OnExisting};
use ferry_shared::csv::CsvDialect;
use ferry_shared::filter::TableFilter;
use ferry_shared::progress::human_bytes;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// The dump: a local directory or `s3://bucket/prefix` (ferry, Dumpling or mydumper layout).
    #[arg(long, short = 'd')]
    from: String,
    /// Target server, `mysql://user@host:port`. The password comes from FERRY_TARGET_PASSWORD
    /// or --target-password-file, never from the URL.
    #[arg(long)]
    target: String,
    /// File holding the target password (first line).
    #[arg(long)]
    target_password_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the target's TLS certificate; enables TLS.
    #[arg(long)]
    target_ssl_ca: Option<PathBuf>,
    #[command(flatten)]
    s3: crate::cli::S3Args,
    #[command(flatten)]
    retry: crate::cli::RetryArgs,
    /// Parallel load connections.
    #[arg(long, short = 't', default_value_t = 4)]
    threads: usize,
    /// Checkpoint task name in `ferry_meta`; processes with the same id share the work
    /// (default: derived from the dump location).
    #[arg(long)]
    task_id: Option<String>,
    /// Table filter rule (TiDB table-filter syntax); repeatable; later rules win.
    #[arg(long, short = 'f')]
    filter: Vec<String>,
    /// Tables exist on the target already: do not run the dump's schema files.
    #[arg(long)]
    no_schema: bool,
    /// What to do with target tables that already hold rows.
    #[arg(long, default_value = "error", value_parser = ["error", "append", "truncate", "skip"])]
    on_existing: String,
    /// What to do with rows whose key is already in the table.
    #[arg(long, default_value = "error", value_parser = ["error", "replace", "ignore"])]
    on_duplicate: String,
    /// `load-data`: LOAD DATA LOCAL streams (fastest); `insert`: batched multi-row INSERTs;
    /// `auto`: LOAD DATA when the target allows it.
    #[arg(long, default_value = "auto", value_parser = ["auto", "load-data", "insert"])]
    method: String,
    /// On tables this load creates, add secondary (non-unique) indexes after the data, one
    /// ALTER per table (a sorted build, faster than maintaining them row by row); `false`
    /// creates them with the table. Tables whose files hold less than 256 KiB always keep them.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    defer_indexes: bool,
    /// DEFINER clauses of views: `auto` drops those whose account does not exist on the target.
    #[arg(long, default_value = "auto", value_parser = ["auto", "keep", "strip"])]
    definer_rewrite: String,
    /// Do not write the loaded rows to the target's binary log (SET sql_log_bin=0; needs SUPER
    /// or BINLOG ADMIN).
    #[arg(long)]
    disable_binlog: bool,
    /// Split data files into chunks of about this size (decompressed), loaded in parallel.
    #[arg(long, default_value = "8MiB")]
    chunk_size: String,
    /// Character set of the input files.
    #[arg(long, default_value = "auto", value_parser = ["auto", "utf8mb4", "gb18030", "latin1", "binary"])]
    character_set: String,
    /// CSV field separator (dumps without a ferry manifest).
    #[arg(long, default_value = ",")]
    csv_separator: String,
    /// CSV quote character; may be empty (dumps without a ferry manifest).
    #[arg(long, default_value = "\"")]
    csv_delimiter: String,
    /// Unquoted CSV field text read as NULL; empty: an unquoted empty field is NULL (dumps
    /// without a ferry manifest: a ferry dump's manifest gives the dialect it was written in).
    #[arg(long, default_value = "\\N")]
    csv_null_value: String,
    /// CSV files start with a header line of column names.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    csv_header: bool,
    /// Backslash escapes in CSV fields.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    csv_backslash_escape: bool,
    /// Session sql_mode while loading.
    #[arg(long, default_value = "NO_AUTO_VALUE_ON_ZERO")]
    sql_mode: String,
    /// Session time zone while loading: how TIMESTAMP text without a zone is read, and what
    /// CURRENT_TIMESTAMP defaults give. Dump files that set their own zone keep it.
    #[arg(long, default_value = "+00:00")]
    time_zone: String,
    /// Skip the final row-count/checksum verification.
    #[arg(long)]
    no_verify: bool,
    /// Seconds after which a silent claimant's files are taken over.
    #[arg(long, default_value_t = 60)]
    claim_lease: u64,
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

fn build_config(a: LoadArgs) -> Result<LoadConfig, u8> {
    let target = crate::cli::connection(
        &a.target,
        "FERRY_TARGET_PASSWORD",
        a.target_password_file.as_deref(),
        a.target_ssl_ca.clone(),
    )?;
    if a.threads == 0 || a.threads > 256 {
        return Err(usage("--threads must be between 1 and 256"));
    }
    let mut rules = a.filter.clone();
    if rules.is_empty() {
        rules.push("*.*".into());
    }
    let filter = TableFilter::parse(&rules).map_err(usage)?;
    let chunk_size = parse_size(&a.chunk_size).map_err(usage)?;
    let csv = CsvDialect {
        separator: a.csv_separator,
        delimiter: a.csv_delimiter,
        null_value: a.csv_null_value,
        header: a.csv_header,
        escape_backslash: a.csv_backslash_escape,
        // The reader ends records at `\n` and `\r\n` alike.
        line_terminator: "\n".into(),
    };
    if let Some(problem) = csv.read_problem() {
        return Err(usage(format!(
            "{problem}: set --csv-separator to a non-empty text and --csv-delimiter to one character or ''"
        )));
    }
    Ok(LoadConfig {
        target,
        from: a.from,
        s3: a.s3.options(),
        threads: a.threads,
        task_id: a.task_id,
        filter,
        no_schema: a.no_schema,
        on_existing: match a.on_existing.as_str() {
            "append" => OnExisting::Append,
            "truncate" => OnExisting::Truncate,
            "skip" => OnExisting::Skip,
            _ => OnExisting::Error,
        },
        on_duplicate: match a.on_duplicate.as_str() {
            "replace" => OnDuplicate::Replace,
            "ignore" => OnDuplicate::Ignore,
            _ => OnDuplicate::Error,
        },
        method: match a.method.as_str() {
            "load-data" => MethodChoice::LoadData,
            "insert" => MethodChoice::Insert,
            _ => MethodChoice::Auto,
        },
        defer_indexes: a.defer_indexes,
        definer: match a.definer_rewrite.as_str() {
            "keep" => DefinerPolicy::Keep,
            "strip" => DefinerPolicy::Strip,
            _ => DefinerPolicy::Auto,
        },
        disable_binlog: a.disable_binlog,
        chunk_size,
        charset: a.character_set,
        csv,
        verify: !a.no_verify,
        retry: a.retry.policy(),
        sql_mode: a.sql_mode,
        time_zone: a.time_zone,
        progress: Arc::default(),
        lease: Duration::from_secs(a.claim_lease.max(1)),
    })
}

fn print_summary(s: &LoadSummary, mode: OutputMode) {
    match mode {
        OutputMode::Json => println!("{}", serde_json::to_string(s).unwrap_or_default()),
        OutputMode::Text => {
            println!(
                "load complete: {} tables, {} views, {} rows, {} files, {} chunks ({} read) in {:.1}s — {:.0} rows/s, {:.1} MB/s",
                s.tables,
                s.views,
                s.rows,
                s.files,
                s.chunks,
                human_bytes(s.bytes),
                s.elapsed_secs,
                s.rows_per_sec,
                s.mb_per_sec
            );
            println!("  dump:     {} ({})", s.source, s.format);
            println!("  task:     {} (method {})", s.task_id, s.method);
            if s.chunks_skipped > 0 || s.files_taken_over > 0 {
                println!(
                    "  resumed:  {} chunks were already loaded; {} files taken over from stopped processes",
                    s.chunks_skipped, s.files_taken_over
                );
            }
            if s.warnings > 0 {
                println!("  warnings: {} (see the log)", s.warnings);
            }
            if !s.verified.is_empty() {
                let checked = s.verified.iter().filter(|c| c.checksum == "ok").count();
                println!(
                    "  verified: {} tables, row counts equal; {} checksums equal",
                    s.verified.len(),
                    checked
                );
            }
        }
    }
}

pub async fn run(args: LoadArgs) -> u8 {
    let output = args.output;
    let mode = crate::cli::progress_mode(&args.progress);
    let interval = Duration::from_secs(args.progress_interval.max(1));
    let cfg = match build_config(args) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let display = Display::start("load", mode, cfg.progress.clone(), interval);
    let result = ferry_loader::run(cfg).await;
    display.finish().await;
    crate::cli::finish(result, |summary| print_summary(summary, output))
}
