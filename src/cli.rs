//! What the subcommands share: output mode, usage errors, server connections, the exit code of
//! a finished step, and the S3, retry and progress options.

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

/// The exit code of a finished step: 0 (and the summary printed), else the error's class
/// decides ([`ferry_shared::failure::Class::exit_code`]): 3 for a transient error that
/// outlasted retries, 1 for a definite one.
pub fn finish<S, E: std::fmt::Display + ferry_shared::failure::Classify>(
    result: Result<S, E>,
    print: impl FnOnce(&S),
) -> u8 {
    match result {
        Ok(summary) => {
            print(&summary);
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            let class = e.class();
            if class == ferry_shared::failure::Class::Transient {
                eprintln!("(the failure is transient and lasted longer than --retry-for-secs; re-running the same command resumes)");
            }
            class.exit_code()
        }
    }
}

/// How long a step keeps retrying a server that went away, shared by every subcommand.
#[derive(clap::Args, Debug, Clone)]
pub struct RetryArgs {
    /// Keep reconnecting for this many seconds after a server went away or failed transiently
    /// (lock waits, deadlocks, throttling), with no progress in between, before giving up
    /// with exit code 3.
    #[arg(long, default_value_t = ferry_shared::failure::RetryPolicy::DEFAULT_RETRY_FOR_SECS)]
    retry_for_secs: u64,
}

impl RetryArgs {
    pub fn policy(&self) -> ferry_shared::failure::RetryPolicy {
        ferry_shared::failure::RetryPolicy::new(std::time::Duration::from_secs(self.retry_for_secs))
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
            // Each command sets its own (--retry-for-secs).
            retry: Default::default(),
        }
    }
}

/// `--progress auto|bars|log|off`.
pub fn progress_mode(s: &str) -> crate::progress::ProgressMode {
    use crate::progress::ProgressMode;
    match s {
        "bars" => ProgressMode::Bars,
        "log" => ProgressMode::Log,
        "off" => ProgressMode::Off,
        _ => ProgressMode::Auto,
    }
}
