//! `ferry catchup` options, and the run with its progress display.

use crate::cli::OutputMode;
use crate::progress::CatchupDisplay;
use clap::Args;
use ferry_catchup::dump_start::DumpStart;
use ferry_catchup::locate::Until;
use ferry_catchup::run::{CatchupConfig, CatchupSummary, Start};
use ferry_shared::location::BinlogPos;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CatchupArgs {
    /// The dump whose Location to start from (local directory or `s3://bucket/prefix`).
    #[arg(long, short = 'd')]
    from: Option<String>,
    /// Start at this binlog position instead (`file:pos`).
    #[arg(long, conflicts_with_all = ["start_gtid", "start_time"])]
    start_position: Option<String>,
    /// Start after the transactions of this GTID set (MariaDB `0-1-100,1-2-5`, MySQL
    /// `uuid:1-100`): what the target already has.
    #[arg(long, conflicts_with = "start_time")]
    start_gtid: Option<String>,
    /// Start at the first transaction at or after this time, `YYYY-MM-DD HH:MM:SS` (UTC
    /// unless an offset such as `+02:00` follows), found by the binlog's event times.
    #[arg(long)]
    start_time: Option<String>,
    /// Source server, `mysql://user@host:port` (password: FERRY_SOURCE_PASSWORD or
    /// --source-password-file).
    #[arg(long)]
    source: String,
    #[arg(long)]
    source_password_file: Option<PathBuf>,
    #[arg(long)]
    source_ssl_ca: Option<PathBuf>,
    /// Target server (password: FERRY_TARGET_PASSWORD or --target-password-file).
    #[arg(long)]
    target: String,
    #[arg(long)]
    target_password_file: Option<PathBuf>,
    #[arg(long)]
    target_ssl_ca: Option<PathBuf>,
    /// Replica server id, unique among the source's replicas (default: derived from the
    /// task id).
    #[arg(long)]
    server_id: Option<u32>,
    /// Checkpoint name in the target's `ferry_meta` (default: from the start position).
    #[arg(long)]
    task_id: Option<String>,
    /// Where to stop: `caught-up` (once everything the source had written when catch-up
    /// started is applied: lag 0), `FILE:POS` (before the first transaction starting there or
    /// later), a GTID (once it is applied), or a time `YYYY-MM-DD HH:MM:SS` (before the
    /// first transaction after it). Without it: until SIGTERM/SIGINT.
    #[arg(long)]
    until: Option<String>,
    /// Replicate only these databases (repeatable; default: the dump's databases with
    /// --from, every database otherwise).
    #[arg(long = "database", short = 'B')]
    databases: Vec<String>,
    /// Target connections applying changes in parallel; changes to one key stay in order on
    /// one connection, tables without a primary key (or with other unique keys) on one
    /// (default: 4, or the number of CPUs if fewer).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: Option<u16>,
    #[command(flatten)]
    retry: crate::cli::RetryArgs,
    /// `auto` (a live line on a terminal, log lines every 5 s otherwise), `bars`, `log`, `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "bars", "log", "off"])]
    progress: String,
    #[command(flatten)]
    s3: crate::cli::S3Args,
    /// Summary format.
    #[arg(long, value_enum, default_value_t = OutputMode::Text)]
    output: OutputMode,
}

/// What the dump says of its tables (see [`DumpStart`]): floors and columns.
#[derive(Default)]
struct DumpTables {
    floors: std::collections::HashMap<(String, String), BinlogPos>,
    columns: std::collections::HashMap<(String, String), Vec<String>>,
}

/// Why the start cannot be read: the message and the exit code of its failure's class.
struct StartError(String, u8);

impl From<String> for StartError {
    fn from(message: String) -> Self {
        StartError(message, 1)
    }
}

impl From<&str> for StartError {
    fn from(message: &str) -> Self {
        StartError(message.to_string(), 1)
    }
}

/// The start, the databases the dump holds (only those are replicated), and its tables.
async fn start_of(a: &CatchupArgs) -> Result<(Start, Option<Vec<String>>, DumpTables), StartError> {
    if let Some(p) = &a.start_position {
        let pos = p
            .parse::<BinlogPos>()
            .map_err(|e| format!("--start-position: {e}"))?;
        return Ok((Start::Position(pos), None, DumpTables::default()));
    }
    if let Some(g) = &a.start_gtid {
        return Ok((
            Start::Gtid(g.trim().to_string()),
            None,
            DumpTables::default(),
        ));
    }
    if let Some(t) = &a.start_time {
        let t = ferry_catchup::locate::parse_time(t).map_err(|e| format!("--start-time: {e}"))?;
        return Ok((Start::Time(t), None, DumpTables::default()));
    }
    let Some(from) = &a.from else {
        return Err(
            "give --from DUMP, --start-position FILE:POS, --start-gtid SET or --start-time TIME"
                .into(),
        );
    };
    let d = DumpStart::read(from, &a.s3.options())
        .await
        .map_err(|e| StartError(e.to_string(), e.class.exit_code()))?;
    let tables = DumpTables {
        floors: d.table_floors,
        columns: d.dump_columns,
    };
    Ok((Start::Position(d.start), Some(d.schemas), tables))
}

/// A channel that turns true at the first SIGINT or SIGTERM: catch-up then stops after
/// committing the transaction it is applying.
fn stop_on_signals() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            return;
        }
        tracing::info!("signal received: stopping after the current transaction");
        let _ = tx.send(true);
    });
    rx
}

fn stable_hash(s: &str) -> u64 {
    ferry_catchup::route::stable_hash(&[s.as_bytes()])
}

/// A server id in 1e9..4e9 from the task id, so tasks do not collide by default.
fn default_server_id(task: &str) -> u32 {
    1_000_000_000 + (stable_hash(task) % 3_000_000_000) as u32
}

fn print_summary(s: &CatchupSummary, mode: OutputMode) {
    match mode {
        OutputMode::Json => println!("{}", serde_json::to_string(s).unwrap_or_default()),
        OutputMode::Text => println!(
            "catchup stopped at {} (from {}): {} transactions, {} rows, {} DDL in {:.1}s with {} workers — {:.0} rows/s, {:.0} transactions/s; lag {} s, {} bytes behind{}",
            s.stopped_at,
            s.started_at,
            s.transactions,
            s.rows,
            s.ddl,
            s.elapsed_secs,
            s.workers,
            s.rows_per_sec,
            s.transactions as f64 / s.elapsed_secs.max(0.001),
            s.lag_seconds,
            s.bytes_behind.map_or("?".to_string(), |b| b.to_string()),
            if s.reconnects > 0 {
                format!("; {} reconnects", s.reconnects)
            } else {
                String::new()
            }
        ),
    }
}

pub async fn run(a: CatchupArgs) -> u8 {
    let source = match crate::cli::connection(
        &a.source,
        "FERRY_SOURCE_PASSWORD",
        a.source_password_file.as_deref(),
        a.source_ssl_ca.clone(),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let target = match crate::cli::connection(
        &a.target,
        "FERRY_TARGET_PASSWORD",
        a.target_password_file.as_deref(),
        a.target_ssl_ca.clone(),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let until = match a.until.as_deref().map(str::parse::<Until>).transpose() {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: --until: {e}");
            return 2;
        }
    };
    let (start, schemas, dump_tables) = match start_of(&a).await {
        Ok((start, _, tables)) if !a.databases.is_empty() => {
            (start, Some(a.databases.clone()), tables)
        }
        Ok(s) => s,
        Err(StartError(e, code)) => {
            eprintln!("error: {e}");
            return if a.from.is_none()
                && a.start_position.is_none()
                && a.start_gtid.is_none()
                && a.start_time.is_none()
            {
                2
            } else {
                code
            };
        }
    };
    // The checkpoint's name (at most 64 characters).
    let task_id = a.task_id.clone().unwrap_or_else(|| match &start {
        Start::Position(p) => format!("catchup-{}-{}", p.file, p.pos),
        Start::Gtid(g) => format!("catchup-gtid-{:016x}", stable_hash(g)),
        Start::Time(t) => format!("catchup-time-{t}"),
    });
    if task_id.len() > 64 {
        eprintln!("error: --task-id is longer than 64 characters");
        return 2;
    }
    let task_id_for_cfg = task_id.clone();
    let (display, progress) = CatchupDisplay::start(crate::cli::progress_mode(&a.progress));
    let cfg = CatchupConfig {
        source,
        target,
        start,
        task_id: task_id_for_cfg,
        server_id: a.server_id.unwrap_or_else(|| default_server_id(&task_id)),
        until,
        table_floors: dump_tables.floors,
        dump_columns: dump_tables.columns,
        schemas,
        workers: a.workers.map_or_else(
            || std::thread::available_parallelism().map_or(4, |n| n.get().min(4)),
            usize::from,
        ),
        retry_for: a.retry.policy().retry_for,
        stop: Some(stop_on_signals()),
        progress,
    };
    let output = a.output;
    let result = ferry_catchup::run::run(cfg).await;
    display.finish();
    crate::cli::finish(result, |s| print_summary(s, output))
}
