//! Catch-up's errors: definite (stop and explain) or transient (resume from the checkpoint),
//! classified by the shared failure policy (`ferry_shared::failure`).

use crate::source;
use ferry_shared::failure::{Class, Classify, Failure};

#[derive(Debug, thiserror::Error)]
pub enum CatchupError {
    #[error("{0}")]
    Definite(String),
    #[error("{0}")]
    Transient(String),
    /// A failed operation, classified by the shared policy (what, found, fix).
    #[error(transparent)]
    Failed(Failure),
    #[error(transparent)]
    Conn(#[from] ferry_shared::conn::ConnError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
}

/// A locate error as a catch-up error, of the same class.
pub(crate) fn located(e: crate::locate::LocateError) -> CatchupError {
    let class = e.class();
    CatchupError::Failed(Failure::new(
        "locating the start position",
        e.to_string(),
        class,
    ))
}

impl Classify for CatchupError {
    /// Worth retrying from the last checkpoint: lost connections, deadlocks, lock waits.
    fn class(&self) -> Class {
        match self {
            CatchupError::Definite(_) => Class::Definite,
            CatchupError::Transient(_) => Class::Transient,
            CatchupError::Failed(f) => f.class,
            CatchupError::Conn(e) => e.class(),
            CatchupError::Source(s) => match s {
                source::SourceError::Stream { source, .. } => Failure::mysql("", source).class,
                source::SourceError::Decode(_) => Class::Definite,
                source::SourceError::Closed | source::SourceError::Other(_) => Class::Transient,
            },
        }
    }
}

pub(crate) fn db_err(what: &str) -> impl Fn(mysql_async::Error) -> CatchupError + '_ {
    move |e| CatchupError::Failed(Failure::mysql(what, &e))
}
