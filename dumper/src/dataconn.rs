//! The connections that read data: ferry's bulk reader ([`ferry_shared::wire`]) where it
//! applies, the general driver otherwise (TLS, other auth plugins), with one interface.

use crate::error::DumpError;
use ferry_shared::conn::ConnSpec;
use ferry_shared::failure::Failure;
use ferry_shared::wire::{WireConn, WireOptions};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value};

/// Set to `off` to read through the general driver only (for comparisons and diagnosis).
pub const BULK_READER_ENV: &str = "FERRY_BULK_READER";

pub enum DataConn {
    Wire(WireConn),
    Driver(Conn),
}

pub type RawRow = Vec<Option<Vec<u8>>>;

const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl DataConn {
    pub async fn open(spec: &ConnSpec) -> Result<Self, DumpError> {
        let wanted = std::env::var(BULK_READER_ENV).map_or(true, |v| v != "off");
        if wanted && spec.ssl_ca.is_none() && !spec.ssl_insecure {
            let opts = WireOptions {
                host: &spec.host,
                port: spec.port,
                socket: spec.socket.as_deref(),
                user: &spec.user,
                password: spec.password.as_deref(),
                database: spec.database.as_deref(),
            };
            let attempt = tokio::time::timeout(CONNECT_TIMEOUT, WireConn::connect(&opts)).await;
            match attempt {
                Err(_) => {
                    return Err(DumpError::Failed(Failure::transient(
                        format!("connecting to {}", spec.display()),
                        format!("no handshake within {}s", CONNECT_TIMEOUT.as_secs()),
                    )))
                }
                Ok(Ok(c)) => return Ok(DataConn::Wire(c)),
                // The driver connects again and words any real failure the same way as the
                // rest of ferry does.
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "bulk reader not used for this connection")
                }
            }
        }
        Ok(DataConn::Driver(spec.connect().await?))
    }

    pub async fn query_drop(&mut self, sql: &str, what: &str) -> Result<(), DumpError> {
        match self {
            DataConn::Wire(c) => c
                .query_drop(sql)
                .await
                .map_err(|e| DumpError::wire(what, e)),
            DataConn::Driver(c) => c
                .query_drop(sql)
                .await
                .map_err(|e| DumpError::query(what, e)),
        }
    }

    /// All rows of a small result, values as raw bytes (NULL is `None`).
    pub async fn query_rows(&mut self, sql: &str, what: &str) -> Result<Vec<RawRow>, DumpError> {
        match self {
            DataConn::Wire(c) => c
                .query_rows(sql)
                .await
                .map_err(|e| DumpError::wire(what, e)),
            DataConn::Driver(c) => {
                let rows: Vec<mysql_async::Row> =
                    c.query(sql).await.map_err(|e| DumpError::query(what, e))?;
                Ok(rows
                    .into_iter()
                    .map(|r| r.unwrap().into_iter().map(value_bytes).collect())
                    .collect())
            }
        }
    }

    pub async fn close(self) {
        match self {
            DataConn::Wire(c) => c.quit().await,
            DataConn::Driver(c) => {
                let _ = c.disconnect().await;
            }
        }
    }
}

/// A driver value as the bytes the text protocol carries.
pub fn value_bytes(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(b),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

/// First column of the first row as text.
pub fn first_text(rows: &[RawRow], col: usize) -> Option<String> {
    rows.first()?
        .get(col)?
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}
