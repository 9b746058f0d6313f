//! Reading the source's binlog as a replica: mysql_async frames the events (and unpacks
//! compressed transactions); ferry's [`Decoder`] turns them into changes.
//!
//! MariaDB needs `@mariadb_slave_capability=4` to send its GTID events instead of fake ones;
//! mysql_async sets `@master_binlog_checksum` itself ([`open`] sets up every replica connection). The first, fake ROTATE's file name can
//! carry trailing bytes (mysql_async issue 189), so positions are tracked from real events.

use crate::binlog::{Event, EventHeader};
use crate::decode::{Change, Decoder};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn};

/// Where to start reading, and how.
#[derive(Debug, Clone)]
pub struct StreamStart {
    pub file: String,
    pub pos: u64,
    /// Unique among the source's replicas.
    pub server_id: u32,
    /// End at the current end of the binlog instead of waiting for new events.
    pub non_blocking: bool,
}

/// A decoded change and the source position just after the event that carried it.
#[derive(Debug, Clone, PartialEq)]
pub struct Positioned {
    pub change: Change,
    /// `log_pos` of the carrying event (0 inside compressed transactions).
    pub end_pos: u64,
    /// The carrying event's timestamp (seconds since the epoch, source clock).
    pub timestamp: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("binlog stream from {file}:{pos}: {source}")]
    Stream {
        file: String,
        pos: u64,
        #[source]
        source: mysql_async::Error,
    },
    #[error(transparent)]
    Decode(#[from] crate::binlog::BinlogError),
    #[error("the change consumer stopped")]
    Closed,
    #[error("{0}")]
    Other(String),
}

/// Streams changes from `start` on `conn` (which becomes the replica connection), calling
/// `each` until it returns `false` or, with `non_blocking`, the binlog's current end.
pub async fn stream(
    conn: Conn,
    start: &StreamStart,
    mut each: impl FnMut(Positioned) -> bool,
) -> Result<(), SourceError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let reader = stream_to(conn, start, tx);
    // Moved in: when the consumer stops, the receiver drops and the reader ends.
    let consumer = async move {
        while let Some(batch) = rx.recv().await {
            for p in batch {
                if !each(p) {
                    return;
                }
            }
        }
    };
    let (r, ()) = tokio::join!(reader, consumer);
    match r {
        // The consumer stopped early: the send failed; that is not an error.
        Err(SourceError::Closed) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens a binlog stream on `conn` as replica `server_id` from `file:pos`: the one place that
/// sets up a replica connection, for streaming and for [`crate::locate`]. MariaDB is asked for
/// its GTID events (`@mariadb_slave_capability`, ignored by MySQL); mysql_async sets
/// `@master_binlog_checksum` itself. `non_blocking`: end at the binlog's current end instead
/// of waiting. `heartbeat`: heartbeats every second while idle, so the server notices a
/// vanished replica (kill -9) soon and a restart with the same server id is not refused long.
pub(crate) async fn open(
    mut conn: Conn,
    server_id: u32,
    file: &str,
    pos: u64,
    non_blocking: bool,
    heartbeat: bool,
) -> Result<mysql_async::BinlogStream, mysql_async::Error> {
    conn.query_drop("SET @mariadb_slave_capability = 4").await?;
    if heartbeat {
        conn.query_drop("SET @master_heartbeat_period = 1000000000")
            .await?;
    }
    let mut req = BinlogStreamRequest::new(server_id)
        .with_filename(file.as_bytes())
        .with_pos(pos);
    if non_blocking {
        req = req.with_non_blocking();
    }
    conn.get_binlog_stream(req).await
}

/// ferry's header of an event framed by mysql_async.
pub(crate) fn header_of(ev: &mysql_async::binlog::events::Event) -> EventHeader {
    let h = ev.header();
    EventHeader {
        timestamp: h.timestamp(),
        type_code: h.event_type_raw(),
        server_id: h.server_id(),
        event_size: h.event_size(),
        log_pos: h.log_pos(),
        flags: h.flags_raw(),
    }
}

/// Changes are sent in batches of up to this many (fewer when the stream has nothing more
/// ready), so that the consumer is not woken for every event.
const BATCH: usize = 256;

/// Streams changes from `start` into `tx` until the receiver is dropped or, with
/// `non_blocking`, the binlog's current end.
pub async fn stream_to(
    conn: Conn,
    start: &StreamStart,
    tx: tokio::sync::mpsc::Sender<Vec<Positioned>>,
) -> Result<(), SourceError> {
    let err = |source| SourceError::Stream {
        file: start.file.clone(),
        pos: start.pos,
        source,
    };
    let mut events = open(
        conn,
        start.server_id,
        &start.file,
        start.pos,
        start.non_blocking,
        true,
    )
    .await
    .map_err(err)?;
    let mut decoder = Decoder::new();
    let mut batch: Vec<Positioned> = Vec::with_capacity(BATCH);
    let mut next = events.next().await;
    // mysql_async hands out a TRANSACTION_PAYLOAD event and then, again, the events inside
    // it (with log_pos 0); ferry's decoder unpacks the payload itself, so those are skipped.
    let mut after_payload = false;
    while let Some(ev) = next.take() {
        let ev = ev.map_err(err)?;
        let header = header_of(&ev);
        let inner = after_payload && header.log_pos == 0;
        after_payload = header.type_code == 40 || inner;
        if inner {
            // Already decoded from its TRANSACTION_PAYLOAD.
        } else if header.type_code == 15 {
            // FORMAT_DESCRIPTION: binlog version (2 bytes), then the server version (50).
            let v = ev.data().get(2..52).unwrap_or_default();
            let v = &v[..v.iter().position(|&b| b == 0).unwrap_or(v.len())];
            decoder.set_server_version(&String::from_utf8_lossy(v));
        } else {
            let framed = Event {
                offset: u64::from(header.log_pos),
                header,
                body: ev.data(),
            };
            for change in decoder.event(&framed)? {
                batch.push(Positioned {
                    change,
                    end_pos: u64::from(header.log_pos),
                    timestamp: header.timestamp,
                });
            }
        }
        // The next event if it is already here; otherwise hand over what we have and wait.
        match futures::FutureExt::now_or_never(events.next()) {
            Some(n) if batch.len() < BATCH => next = n,
            ready => {
                if !batch.is_empty() {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                    if tx.send(full).await.is_err() {
                        let _ = events.close().await;
                        return Err(SourceError::Closed);
                    }
                }
                next = match ready {
                    Some(n) => n,
                    None => events.next().await,
                };
            }
        }
    }
    if !batch.is_empty() && tx.send(batch).await.is_err() {
        return Err(SourceError::Closed);
    }
    Ok(())
}
