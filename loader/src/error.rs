//! Load errors: definite (bad input, bad config, data mismatch — stop and say what to fix) or
//! transient (connection trouble that outlasted retries — re-running resumes).

use ferry_shared::conn::ConnError;
use ferry_shared::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A data or schema file cannot be read as what it claims to be.
    #[error("{file}: at byte {offset}: {message}")]
    Input {
        file: String,
        offset: u64,
        message: String,
    },
    /// The dump as a whole is inconsistent (manifest vs files) or unusable.
    #[error("{0}")]
    Dump(String),
    /// The target refused something in a way retrying cannot fix.
    #[error("{0}")]
    Target(String),
    /// The target is unreachable or dropped the connection, after retries.
    #[error("{0}")]
    Transient(String),
    /// Loaded data does not match the dump.
    #[error("verification failed: {0}")]
    Verify(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl LoadError {
    pub fn is_transient(&self) -> bool {
        match self {
            LoadError::Transient(_) => true,
            LoadError::Storage(e) => e.is_transient(),
            LoadError::Conn(e) => e.is_transient(),
            _ => false,
        }
    }
}

/// Server error codes worth retrying on a fresh connection (deadlock, lock wait timeout,
/// connection killed, server shutting down, read-only during failover).
pub fn is_transient_code(code: u16) -> bool {
    matches!(
        code,
        1205 | 1213
            | 1053
            | 1077
            | 1152
            | 1153
            | 1159
            | 1160
            | 1161
            | 2006
            | 2013
            | 1290
            | 1927
            | 4031
    )
}

/// Classifies a driver error met while talking to the target; `what` names the operation.
pub fn from_driver(e: mysql_async::Error, what: &str) -> LoadError {
    match &e {
        mysql_async::Error::Server(s) if !is_transient_code(s.code) => {
            LoadError::Target(format!("{what}: {} (error {})", s.message, s.code))
        }
        mysql_async::Error::Server(s) => {
            LoadError::Transient(format!("{what}: {} (error {})", s.message, s.code))
        }
        mysql_async::Error::Driver(d) => LoadError::Target(format!("{what}: {d}")),
        _ => LoadError::Transient(format!("{what}: {e}")),
    }
}
