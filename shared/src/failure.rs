//! One failure policy for every step: what is worth retrying, and how long.
//!
//! Every error a step meets is either *transient* — the server restarted, the network dropped,
//! a lock wait or deadlock lost, S3 throttled — and retrying the same work later can succeed,
//! or *definite* — wrong password, unknown database, a syntax error, a full disk, a TLS setup
//! that cannot work — and retrying only repeats it, so the step stops and says what to fix.
//!
//! The classification lives here once: [`server_code`] holds the only table of MySQL/MariaDB
//! error codes, and [`Failure::mysql`], [`Failure::wire`], [`Failure::io`] and [`s3_class`] map
//! the driver's errors, ferry's own wire reader's, local file errors and S3 answers onto it.
//! A step's error type implements [`Classify`], and the binary turns the class into the exit
//! code ([`Class::exit_code`]): 1 for definite, 3 for transient errors that outlasted retries.
//!
//! [`retry_with_backoff`] is the one retry loop: it waits 1 s, doubling up to 30 s, between
//! attempts, logs each retry with what failed and when it tries again, and gives up once the
//! work has been failing for `retry_for` without progress (a caller-supplied counter that moves
//! when work gets done, so a long run that keeps advancing between server restarts never gives
//! up). Definite errors are returned at once.

use std::fmt;
use std::time::{Duration, Instant};

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retrying later can succeed (lost connection, restart, lock wait, throttling).
    Transient,
    /// Retrying repeats the failure: the user must change something.
    Definite,
}

impl Class {
    /// The process exit code of a step that stopped on an error of this class.
    pub fn exit_code(self) -> u8 {
        match self {
            Class::Definite => 1,
            Class::Transient => 3,
        }
    }
}

/// Errors that know whether they are worth retrying.
pub trait Classify {
    fn class(&self) -> Class;

    fn is_transient(&self) -> bool {
        self.class() == Class::Transient
    }
}

/// A failed operation: what was being done, what was found, and what the user can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The operation and the thing it was done to (server, table, chunk, file).
    pub what: String,
    /// What happened instead (the server's or the system's words).
    pub found: String,
    /// What the user can do about it, when ferry knows.
    pub fix: Option<String>,
    pub class: Class,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.what, self.found)?;
        if let Some(fix) = &self.fix {
            write!(f, " ({fix})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Failure {}

impl Classify for Failure {
    fn class(&self) -> Class {
        self.class
    }
}

impl Failure {
    pub fn new(what: impl Into<String>, found: impl Into<String>, class: Class) -> Self {
        Failure {
            what: what.into(),
            found: found.into(),
            fix: None,
            class,
        }
    }

    pub fn definite(what: impl Into<String>, found: impl Into<String>) -> Self {
        Self::new(what, found, Class::Definite)
    }

    pub fn transient(what: impl Into<String>, found: impl Into<String>) -> Self {
        Self::new(what, found, Class::Transient)
    }

    pub fn with_fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }

    fn fix_opt(mut self, fix: Option<&str>) -> Self {
        self.fix = fix.map(str::to_string);
        self
    }

    /// Prefixes `what` with the thing it concerns (a server, a table, a chunk).
    pub fn about(mut self, thing: &str) -> Self {
        self.what = format!("{thing}: {}", self.what);
        self
    }

    /// A server error code with its SQL state and message.
    pub fn server(what: impl Into<String>, code: u16, state: &str, message: &str) -> Self {
        let (class, fix) = server_code(code);
        Self::new(
            what,
            format!("server error {code} ({state}): {message}"),
            class,
        )
        .fix_opt(fix)
    }

    /// An error of the `mysql_async` driver.
    pub fn mysql(what: impl Into<String>, e: &mysql_async::Error) -> Self {
        use mysql_async::{DriverError as D, Error as E, IoError};
        match e {
            E::Server(se) => Self::server(what, se.code, &se.state, &se.message),
            E::Io(IoError::Tls(t)) => {
                Self::definite(what, format!("TLS handshake failed: {t}")).with_fix(TLS_FIX)
            }
            E::Io(IoError::Io(io)) if looks_like_tls(io) => {
                Self::definite(what, format!("TLS handshake failed: {io}")).with_fix(TLS_FIX)
            }
            E::Io(IoError::Io(io)) => Self::net_io(what, io),
            E::Driver(D::NoClientSslFlagFromServer) => {
                Self::definite(what, "TLS was asked for, but the server does not offer it")
                    .with_fix(
                    "enable TLS on the server (ssl_cert/ssl_key), or connect without --*-ssl-ca",
                )
            }
            E::Driver(
                D::ConnectionClosed
                | D::PacketOutOfOrder
                | D::PoolDisconnected
                | D::UnexpectedPacket { .. },
            ) => Self::transient(what, format!("connection lost: {e}")),
            other => Self::definite(what, other.to_string()),
        }
    }

    /// An error of ferry's own wire reader ([`crate::wire`]).
    pub fn wire(what: impl Into<String>, e: &crate::wire::WireError) -> Self {
        use crate::wire::WireError as W;
        match e {
            W::Server {
                code,
                state,
                message,
            } => Self::server(what, *code, state, message),
            W::Io(io) => Self::net_io(what, io),
            W::Protocol(_) | W::Unsupported(_) => Self::definite(what, e.to_string()),
        }
    }

    /// A socket error on a connection to a server: transient (it restarts, the network comes
    /// back) unless the local system refuses the connection outright.
    fn net_io(what: impl Into<String>, io: &std::io::Error) -> Self {
        if io.kind() == std::io::ErrorKind::PermissionDenied {
            return Self::definite(what, format!("{io}")).with_fix(
                "the local system refused the connection: check the socket's permissions",
            );
        }
        Self::transient(
            what,
            format!("cannot reach the server or lost the connection: {io}"),
        )
        .with_fix("is the server running, and are the host and port right?")
    }

    /// An error of a local file or directory (dump destination, loader input).
    pub fn io(what: impl Into<String>, io: &std::io::Error) -> Self {
        let (class, fix) = file_io_class(io);
        Self::new(what, io.to_string(), class).fix_opt(fix)
    }
}

const TLS_FIX: &str = "the server's certificate must be signed by the CA given with --*-ssl-ca and name the host you connect to";

fn looks_like_tls(io: &std::io::Error) -> bool {
    let text = io.to_string().to_ascii_lowercase();
    text.contains("certificate") || text.contains("tls") || text.contains("handshake")
}

/// The one table of server error codes: the class of each, and a fix where ferry knows one.
/// Codes not listed are definite (a retry repeats them).
pub fn server_code(code: u16) -> (Class, Option<&'static str>) {
    use Class::{Definite, Transient};
    match code {
        // Too many connections; lock wait timeout; deadlock.
        1040 => (Transient, Some("lower --threads or raise max_connections")),
        1205 | 1213 => (Transient, None),
        // Server shutting down (1053, 1077), connection aborted, killed or cut (1152,
        // 1158-1161, 1927), gone away / lost (client codes 2006, 2013), idle timeout (4031).
        1053 | 1077 | 1152 | 1158..=1161 | 1927 | 2006 | 2013 | 4031 => (Transient, None),
        // Read-only while a failover promotes another server.
        1290 => (
            Transient,
            Some("the server runs with --read-only; ferry waits for it to accept writes"),
        ),
        1045 => (Definite, Some("wrong user or password: set the password with the *_PASSWORD environment variable or --*-password-file")),
        1044 | 1142 | 1143 | 1227 | 1370 => (Definite, Some("the user lacks a privilege: GRANT it or choose an option that does not need it")),
        1049 => (Definite, Some("unknown database: check the name in the URL or the filter")),
        1064 => (Definite, Some("the server refused the statement's syntax: check that the dump was made for this server's flavour and version")),
        1021 | 1114 => (Definite, Some("the server's disk or table is full: free space on the server, then re-run to resume")),
        _ => (Definite, None),
    }
}

/// Local file errors: a full disk or missing permission is definite; an interrupted or timed
/// out call is transient.
fn file_io_class(io: &std::io::Error) -> (Class, Option<&'static str>) {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => (
            Class::Definite,
            Some("the disk is full: free space there or write somewhere else, then re-run the same command to resume"),
        ),
        K::PermissionDenied | K::ReadOnlyFilesystem => (
            Class::Definite,
            Some("the user running ferry cannot write there: fix the permissions or choose another place"),
        ),
        K::Interrupted | K::TimedOut | K::WouldBlock => (Class::Transient, None),
        _ => (Class::Definite, None),
    }
}

/// An S3 answer: throttling, timeouts and server errors are transient; refused credentials or
/// permissions are definite. `status` is the HTTP status when an answer came; `code` the S3
/// error code. No answer at all (`status` None, e.g. a dropped connection) is transient.
pub fn s3_class(status: Option<u16>, code: Option<&str>) -> (Class, Option<&'static str>) {
    match (code, status) {
        (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken"), _)
        | (_, Some(401 | 403)) => (
            Class::Definite,
            Some("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS profile, and the bucket policy"),
        ),
        (Some("NoSuchBucket"), _) => (
            Class::Definite,
            Some("create the bucket first, or check --s3-endpoint/--s3-region"),
        ),
        (Some("SlowDown" | "Throttling" | "ThrottlingException" | "RequestTimeout" | "InternalError" | "ServiceUnavailable"), _)
        | (_, None | Some(408 | 429 | 500..=599)) => (Class::Transient, None),
        _ => (Class::Definite, None),
    }
}

/// How long and how often [`retry_with_backoff`] tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Give up once the work has been failing this long without progress.
    pub retry_for: Duration,
    /// The first wait; each next one doubles, up to `max_delay`.
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl RetryPolicy {
    /// `--retry-for-secs`'s default: ten minutes, enough for a server restart or failover.
    pub const DEFAULT_RETRY_FOR_SECS: u64 = 600;

    pub fn new(retry_for: Duration) -> Self {
        RetryPolicy {
            retry_for,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::new(Duration::from_secs(Self::DEFAULT_RETRY_FOR_SECS))
    }
}

/// The retry state of one piece of work: how long it has been failing and the next wait. Loops
/// that keep state between attempts (a connection to reopen) call [`Backoff::failed`] after each
/// failure; others use [`retry_with_backoff`].
#[derive(Debug)]
pub struct Backoff {
    policy: RetryPolicy,
    what: String,
    delay: Duration,
    failing_since: Option<Instant>,
    seen: u64,
    attempt: u32,
}

impl Backoff {
    /// `what` names the work in the retry log lines; `progress` is the work's progress counter
    /// now (0 for work without one).
    pub fn new(policy: &RetryPolicy, what: impl Into<String>, progress: u64) -> Self {
        Backoff {
            policy: *policy,
            what: what.into(),
            delay: policy.first_delay,
            failing_since: None,
            seen: progress,
            attempt: 0,
        }
    }

    /// After a failed attempt: returns the error at once when it is definite, or when the work
    /// has failed for the whole retry period with `progress` standing still; otherwise logs
    /// the retry and waits before the next attempt.
    pub async fn failed<E: Classify + fmt::Display>(
        &mut self,
        e: E,
        progress: u64,
    ) -> Result<(), E> {
        self.attempt += 1;
        if e.class() == Class::Definite {
            return Err(e);
        }
        if progress != self.seen {
            self.seen = progress;
            self.failing_since = None;
            self.delay = self.policy.first_delay;
        }
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        let left = self.policy.retry_for.saturating_sub(since.elapsed());
        let (what, attempt) = (self.what.as_str(), self.attempt);
        if left.is_zero() {
            tracing::error!(what, attempt, failing_for_secs = since.elapsed().as_secs(), error = %e, "giving up: still failing after the retry period (--retry-for-secs)");
            return Err(e);
        }
        let wait = self.delay.min(left);
        tracing::warn!(what, attempt, retry_in_ms = wait.as_millis() as u64, failing_for_secs = since.elapsed().as_secs(), error = %e, "failed; retrying");
        tokio::time::sleep(wait).await;
        self.delay = (self.delay * 2).min(self.policy.max_delay);
        Ok(())
    }
}

/// Runs `op` until it succeeds, fails definitely, or has been failing transiently for
/// `policy.retry_for` while `progress()` stood still. `op` gets the attempt number (1, 2, ...);
/// `what` names the work in the retry log lines.
pub async fn retry_with_backoff<T, E, Fut>(
    policy: &RetryPolicy,
    what: &str,
    progress: impl Fn() -> u64,
    mut op: impl FnMut(u32) -> Fut,
) -> Result<T, E>
where
    E: Classify + fmt::Display,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut backoff = Backoff::new(policy, what, progress());
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(e) => backoff.failed(e, progress()).await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn quick(retry_for_ms: u64) -> RetryPolicy {
        RetryPolicy {
            retry_for: Duration::from_millis(retry_for_ms),
            first_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        }
    }

    #[test]
    fn one_table_of_codes() {
        let class = |c| server_code(c).0;
        for c in [1040, 1205, 1213, 1053, 1927, 2006, 2013, 4031] {
            assert_eq!(class(c), Class::Transient, "{c}");
        }
        for c in [1045, 1049, 1064, 1146, 1114, 1021, 1142] {
            assert_eq!(class(c), Class::Definite, "{c}");
        }
        assert!(server_code(1045).1.is_some_and(|f| f.contains("PASSWORD")));
    }

    #[test]
    fn exit_codes_follow_the_class() {
        assert_eq!(Class::Definite.exit_code(), 1);
        assert_eq!(Class::Transient.exit_code(), 3);
    }

    #[test]
    fn s3_answers() {
        assert_eq!(s3_class(Some(503), Some("SlowDown")).0, Class::Transient);
        assert_eq!(s3_class(Some(429), None).0, Class::Transient);
        assert_eq!(s3_class(None, None).0, Class::Transient);
        assert_eq!(s3_class(Some(403), Some("AccessDenied")).0, Class::Definite);
        assert_eq!(
            s3_class(Some(400), Some("InvalidAccessKeyId")).0,
            Class::Definite
        );
        assert_eq!(s3_class(Some(404), Some("NoSuchBucket")).0, Class::Definite);
    }

    #[test]
    fn files_and_sockets() {
        let full = std::io::Error::from_raw_os_error(28); // ENOSPC
        let f = Failure::io("writing /d/x.sql", &full);
        assert_eq!(f.class, Class::Definite);
        assert!(f.to_string().contains("free space"), "{f}");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = mysql_async::Error::Io(mysql_async::IoError::Io(refused));
        assert_eq!(Failure::mysql("connecting", &e).class, Class::Transient);
        let closed = mysql_async::Error::Driver(mysql_async::DriverError::ConnectionClosed);
        assert_eq!(Failure::mysql("query", &closed).class, Class::Transient);
        let no_tls =
            mysql_async::Error::Driver(mysql_async::DriverError::NoClientSslFlagFromServer);
        assert_eq!(Failure::mysql("connecting", &no_tls).class, Class::Definite);
        let gone = crate::wire::WireError::Io(std::io::ErrorKind::UnexpectedEof.into());
        assert_eq!(Failure::wire("reading", &gone).class, Class::Transient);
    }

    #[test]
    fn display_composes_the_fields() {
        let f = Failure::definite(
            "connecting to u@h:1",
            "server error 1049 (42000): Unknown database 'x'",
        )
        .with_fix("check the name");
        assert_eq!(
            f.to_string(),
            "connecting to u@h:1: server error 1049 (42000): Unknown database 'x' (check the name)"
        );
    }

    #[tokio::test]
    async fn retries_transient_until_success() {
        let r: Result<u32, Failure> = retry_with_backoff(
            &quick(10_000),
            "test",
            || 0,
            |n| async move {
                if n < 3 {
                    Err(Failure::transient("x", "lost"))
                } else {
                    Ok(n)
                }
            },
        )
        .await;
        assert_eq!(r, Ok(3));
    }

    #[tokio::test]
    async fn definite_stops_at_once() {
        let calls = AtomicU64::new(0);
        let r: Result<(), Failure> = retry_with_backoff(
            &quick(10_000),
            "test",
            || 0,
            |_| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Failure::definite("x", "bad"))
            },
        )
        .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn gives_up_without_progress_but_not_with_it() {
        let started = Instant::now();
        let r: Result<(), Failure> = retry_with_backoff(
            &quick(60),
            "test",
            || 0,
            |_| async { Err(Failure::transient("x", "lost")) },
        )
        .await;
        assert!(r.is_err());
        assert!(started.elapsed() >= Duration::from_millis(60));
        // Progress between failures restarts the clock: 30 failures of 5-20 ms each outlast
        // the 60 ms period, yet the work is not given up.
        let done = AtomicU64::new(0);
        let r: Result<u32, Failure> = retry_with_backoff(
            &quick(60),
            "test",
            || done.load(Ordering::SeqCst),
            |n| {
                let done = &done;
                async move {
                    if n < 30 {
                        done.fetch_add(1, Ordering::SeqCst);
                        Err(Failure::transient("x", "lost"))
                    } else {
                        Ok(n)
                    }
                }
            },
        )
        .await;
        assert_eq!(r, Ok(30));
    }
}
