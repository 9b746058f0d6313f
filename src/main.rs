//! The `ferry` command line: subcommands, option validation, progress display, exit codes.
//!
//! Exit codes: 0 success; 1 definite error (the message says what to fix); 2 usage error;
//! 3 transient error that outlasted retries (re-running resumes).

mod catchup;
mod cli;
mod dump;
mod load;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Move MySQL-protocol databases: consistent dump, parallel load, binlog catch-up"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log verbosity (error, warn, info, debug, trace); also RUST_LOG.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
}

#[derive(Subcommand)]
enum Command {
    /// Consistent, parallel snapshot of a source server to a local directory or S3.
    Dump(Box<dump::DumpArgs>),
    /// Parallel, resumable import of a dump (ferry, Dumpling or mydumper) into a target server.
    Load(Box<load::LoadArgs>),
    /// Binlog replication from a dump's position to the target (safe-mode apply, checkpoints).
    Catchup(Box<catchup::CatchupArgs>),
}

/// The hot loops (binlog decoding, SQL text, dump/load buffers) allocate many small, short-lived
/// values; mimalloc serves them with less time in the allocator than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "ferry={0},ferry_dumper={0},ferry_loader={0},ferry_catchup={0},ferry_shared={0},warn",
            cli.log_level
        ))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = rt.block_on(async {
        match cli.command {
            Command::Dump(args) => dump::run(*args).await,
            Command::Load(args) => load::run(*args).await,
            Command::Catchup(args) => catchup::run(*args).await,
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    ExitCode::from(code)
}
