//! The `ferry` command line: subcommands, option validation, progress display, exit codes.
//!
//! Exit codes: 0 success; 1 definite error (the message says what to fix); 2 usage error;
//! 3 transient error that outlasted retries (re-running resumes).

mod catchup;
mod dump;
mod load;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputMode {
    /// Human-readable summary.
    Text,
    /// The summary as one JSON object on stdout.
    Json,
}

/// Prints a usage error; returns exit code 2.
pub fn usage(msg: impl std::fmt::Display) -> u8 {
    eprintln!("error: {msg}");
    2
}

/// A server from its URL, the password from `password_env` or `password_file`, TLS with `ssl_ca`.
pub fn connection(
    url: &str,
    password_env: &str,
    password_file: Option<&std::path::Path>,
    ssl_ca: Option<std::path::PathBuf>,
) -> Result<ferry_shared::conn::ConnSpec, u8> {
    let spec = ferry_shared::conn::ConnSpec::parse(url)
        .and_then(|s| s.with_password_from(password_env, password_file))
        .map_err(usage)?;
    Ok(ferry_shared::conn::ConnSpec { ssl_ca, ..spec })
}

/// The exit code of a finished step: 0 (and the summary printed), 3 for a transient error,
/// 1 for a definite one.
pub fn finish<S, E: std::fmt::Display>(
    result: Result<S, E>,
    is_transient: impl Fn(&E) -> bool,
    print: impl FnOnce(&S),
) -> u8 {
    match result {
        Ok(summary) => {
            print(&summary);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            if is_transient(&e) {
                3
            } else {
                1
            }
        }
    }
}

/// Options of S3 dump locations, shared by the subcommands that read or write one.
#[derive(clap::Args, Debug, Clone)]
pub struct S3Args {
    /// S3 endpoint for S3-compatible stores (path-style addressing is used with it).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// S3 region (default: from the AWS environment/profile, else us-east-1).
    #[arg(long)]
    s3_region: Option<String>,
}

impl S3Args {
    pub fn options(&self) -> ferry_shared::storage::S3Options {
        ferry_shared::storage::S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            force_path_style: None,
            part_size: None,
            max_buffered_parts: None,
        }
    }
}

/// `--progress auto|bars|log|off`.
pub fn progress_mode(s: &str) -> ferry_shared::progress::ProgressMode {
    use ferry_shared::progress::ProgressMode;
    match s {
        "bars" => ProgressMode::Bars,
        "log" => ProgressMode::Log,
        "off" => ProgressMode::Off,
        _ => ProgressMode::Auto,
    }
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
