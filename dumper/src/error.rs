//! Errors of `ferry dump`: definite (stop and explain) or transient (retry, or re-run resumes),
//! classified by the shared policy in [`ferry_shared::failure`].

use ferry_shared::failure::{Class, Classify, Failure};

#[derive(Debug, thiserror::Error)]
pub enum DumpError {
    /// Bad input, missing privilege, unreadable data: the message says what to do.
    #[error("{0}")]
    Definite(String),
    /// A failed operation, classified (what, found, fix).
    #[error(transparent)]
    Failed(Failure),
    #[error(transparent)]
    Storage(#[from] ferry_shared::storage::StorageError),
    #[error(transparent)]
    Conn(#[from] ferry_shared::conn::ConnError),
}

impl DumpError {
    /// A failed query, classified by its error.
    pub fn query(what: &str, e: mysql_async::Error) -> Self {
        DumpError::Failed(Failure::mysql(what, &e))
    }

    /// A failed bulk-reader command, classified like [`DumpError::query`].
    pub fn wire(what: &str, e: ferry_shared::wire::WireError) -> Self {
        DumpError::Failed(Failure::wire(what, &e))
    }
}

impl Classify for DumpError {
    fn class(&self) -> Class {
        match self {
            DumpError::Definite(_) => Class::Definite,
            DumpError::Failed(f) => f.class,
            DumpError::Storage(e) => e.class(),
            DumpError::Conn(e) => e.class(),
        }
    }
}
