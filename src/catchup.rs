//! `ferry catchup` options.

use crate::OutputMode;
use clap::Args;
use ferry_catchup::run::{CatchupConfig, CatchupSummary};
use ferry_shared::location::BinlogPos;
use ferry_shared::manifest::{Manifest, MANIFEST_NAME};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct CatchupArgs {
    /// The dump whose Location to start from (local directory or `s3://bucket/prefix`).
    #[arg(long, short = 'd')]
    from: Option<String>,
    /// Start at this binlog position instead (`file:pos`).
    #[arg(long)]
    start_position: Option<String>,
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
    /// `caught-up`: stop once everything the source had written is applied (lag 0).
    #[arg(long, value_parser = ["caught-up"])]
    until: Option<String>,
    /// Target connections applying changes in parallel; changes to one key stay in order on
    /// one connection, tables without a primary key (or with other unique keys) on one.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Keep reconnecting for this many seconds after the source or target went away (no
    /// progress in between) before giving up.
    #[arg(long, default_value_t = 600)]
    retry_for_secs: u64,
    #[command(flatten)]
    s3: crate::S3Args,
    /// Summary format.
    #[arg(long, value_enum, default_value_t = OutputMode::Text)]
    output: OutputMode,
}

/// The start position, and the databases the dump holds (only those are replicated).
async fn start_of(a: &CatchupArgs) -> Result<(BinlogPos, Option<Vec<String>>), String> {
    if let Some(p) = &a.start_position {
        let pos = p
            .parse::<BinlogPos>()
            .map_err(|e| format!("--start-position: {e}"))?;
        return Ok((pos, None));
    }
    let Some(from) = &a.from else {
        return Err("give --from DUMP or --start-position FILE:POS".into());
    };
    let s3 = a.s3.options();
    let storage = ferry_shared::storage::open(from, &s3)
        .await
        .map_err(|e| e.to_string())?;
    let data = storage.read(MANIFEST_NAME).await.map_err(|e| {
        format!("{e} (catch-up starts from a ferry dump's manifest, or give --start-position)")
    })?;
    let m =
        Manifest::from_json(&storage.describe(MANIFEST_NAME), &data).map_err(|e| e.to_string())?;
    let (earliest, _) = m.location_bounds().ok_or_else(|| {
        format!(
            "{}: the dump has no binlog Location (the source had no binary log)",
            storage.describe(MANIFEST_NAME)
        )
    })?;
    let schemas = m.databases.iter().map(|d| d.name.clone()).collect();
    Ok((earliest.pos.clone(), Some(schemas)))
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

/// A server id in 1e9..4e9 from the task id, so tasks do not collide by default.
fn default_server_id(task: &str) -> u32 {
    let h = task.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    1_000_000_000 + (h % 3_000_000_000) as u32
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
    let source = match crate::connection(
        &a.source,
        "FERRY_SOURCE_PASSWORD",
        a.source_password_file.as_deref(),
        a.source_ssl_ca.clone(),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let target = match crate::connection(
        &a.target,
        "FERRY_TARGET_PASSWORD",
        a.target_password_file.as_deref(),
        a.target_ssl_ca.clone(),
    ) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (start, schemas) = match start_of(&a).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return if a.from.is_none() && a.start_position.is_none() {
                2
            } else {
                1
            };
        }
    };
    let task_id = a
        .task_id
        .clone()
        .unwrap_or_else(|| format!("catchup-{}-{}", start.file, start.pos));
    let task_id_for_cfg = task_id.clone();
    let cfg = CatchupConfig {
        source,
        target,
        start,
        task_id: task_id_for_cfg,
        server_id: a.server_id.unwrap_or_else(|| default_server_id(&task_id)),
        until_caught_up: a.until.is_some(),
        schemas,
        workers: usize::from(a.workers),
        retry_for: std::time::Duration::from_secs(a.retry_for_secs),
        stop: Some(stop_on_signals()),
    };
    let output = a.output;
    crate::finish(
        ferry_catchup::run::run(cfg).await,
        |e| e.is_transient(),
        |s| print_summary(s, output),
    )
}
