//! Catch-up's errors: definite (stop and explain) or transient (resume from the checkpoint).

use crate::source;

#[derive(Debug, thiserror::Error)]
pub enum CatchupError {
    #[error("{0}")]
    Definite(String),
    #[error("{0}")]
    Transient(String),
    #[error(transparent)]
    Source(#[from] source::SourceError),
}

/// A locate error as a catch-up error (transient when the connection was lost).
pub(crate) fn located(e: crate::locate::LocateError) -> CatchupError {
    if e.is_transient() {
        CatchupError::Transient(e.to_string())
    } else {
        CatchupError::Definite(e.to_string())
    }
}

impl CatchupError {
    /// Worth retrying from the last checkpoint: lost connections, deadlocks, lock waits.
    pub fn is_transient(&self) -> bool {
        match self {
            CatchupError::Definite(_) => false,
            CatchupError::Transient(_) => true,
            CatchupError::Source(s) => match s {
                source::SourceError::Stream { source, .. } => {
                    !matches!(source, mysql_async::Error::Server(_))
                }
                source::SourceError::Decode(_) => false,
                source::SourceError::Closed | source::SourceError::Other(_) => true,
            },
        }
    }
}

/// Server errors that a retry from the checkpoint can get past: deadlock, lock wait timeout,
/// the server shutting down, read-only while failing over.
const TRANSIENT_CODES: &[u16] = &[1205, 1213, 1053, 1927, 2006, 2013, 1290];

pub(crate) fn db_err(what: &str) -> impl Fn(mysql_async::Error) -> CatchupError + '_ {
    move |e| match &e {
        mysql_async::Error::Server(s) if !TRANSIENT_CODES.contains(&s.code) => {
            CatchupError::Definite(format!("{what}: {} (error {})", s.message, s.code))
        }
        _ => CatchupError::Transient(format!("{what}: {e}")),
    }
}
