//! Load errors: definite (bad input, bad config, data mismatch — stop and say what to fix) or
//! transient (connection trouble that outlasted retries — re-running resumes), classified by
//! the shared policy in [`ferry_shared::failure`].

use ferry_shared::conn::ConnError;
use ferry_shared::failure::{Class, Classify, Failure};
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
    /// A failed operation on the target, classified (what, found, fix).
    #[error(transparent)]
    Failed(Failure),
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

impl Classify for LoadError {
    fn class(&self) -> Class {
        match self {
            LoadError::Failed(f) => f.class,
            LoadError::Storage(e) => e.class(),
            LoadError::Conn(e) => e.class(),
            _ => Class::Definite,
        }
    }
}

/// Classifies a driver error met while talking to the target; `what` names the operation.
pub fn from_driver(e: mysql_async::Error, what: &str) -> LoadError {
    LoadError::Failed(Failure::mysql(what, &e))
}
