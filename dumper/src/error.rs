//! Errors of `ferry dump`: definite (stop and explain) or transient (retry, or re-run resumes).

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Bad input, missing privilege, unreadable data: the message says what to do.
    #[error("{0}")]
    Definite(String),
    /// Network trouble or a server restart that outlasted retries; re-running resumes.
    #[error("{0} (transient: re-run the same command to resume)")]
    Transient(String),
    #[error(transparent)]
    Storage(#[from] ferry_shared::storage::StorageError),
    #[error(transparent)]
    Conn(#[from] ferry_shared::conn::ConnError),
}

impl DumpError {
    /// A failed query, classified by its error.
    pub fn query(what: &str, e: mysql_async::Error) -> Self {
        match &e {
            mysql_async::Error::Server(se) => {
                let transient = is_transient_code(se.code);
                let msg = format!(
                    "{what}: server error {} ({}): {}",
                    se.code, se.state, se.message
                );
                if transient {
                    DumpError::Transient(msg)
                } else {
                    DumpError::Definite(msg)
                }
            }
            mysql_async::Error::Io(_) | mysql_async::Error::Driver(_) => {
                DumpError::Transient(format!("{what}: connection lost: {e}"))
            }
            _ => DumpError::Definite(format!("{what}: {e}")),
        }
    }

    pub fn is_transient(&self) -> bool {
        match self {
            DumpError::Transient(_) => true,
            DumpError::Storage(e) => e.is_transient(),
            DumpError::Conn(e) => e.is_transient(),
            DumpError::Definite(_) => false,
        }
    }

    /// Server error code when the error came from the server.
    pub fn server_code(e: &mysql_async::Error) -> Option<u16> {
        match e {
            mysql_async::Error::Server(se) => Some(se.code),
            _ => None,
        }
    }
}

/// Server error codes worth retrying: lock wait timeout, deadlock, too many connections, server
/// shutdown, gone away, lost connection.
pub fn is_transient_code(code: u16) -> bool {
    matches!(code, 1205 | 1213 | 1040 | 1053 | 2006 | 2013)
}
