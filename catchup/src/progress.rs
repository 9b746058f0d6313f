//! Catch-up's progress, measured here and drawn by the caller: every [`ProgressFeed::every`]
//! (while events arrive) the position, transactions and rows with their rates, events/s and
//! the lag behind the source (seconds and bytes) are published as a [`CatchupReport`]; the
//! lag is also measured when catch-up stops. Without a feed (`--progress off`) nothing is
//! measured until the end.

use ferry_shared::location::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Where the reports go, and how often they are made.
#[derive(Debug)]
pub struct ProgressFeed {
    pub every: Duration,
    pub reports: watch::Sender<Option<CatchupReport>>,
}

/// One progress report; the rates are over the time since the previous report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchupReport {
    /// The position applied up to.
    pub position: String,
    pub transactions: u64,
    pub transactions_per_sec: u64,
    pub rows: u64,
    pub rows_per_sec: u64,
    pub events_per_sec: u64,
    /// Seconds behind the source's clock.
    pub lag_seconds: u64,
    /// Bytes behind the source's binlog end (when in the same file).
    pub bytes_behind: Option<u64>,
}

/// Counts of the run so far (kept across reconnects).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub transactions: u64,
    pub rows: u64,
}

/// The reporting state of one attempt.
pub(crate) struct Reporter<'a> {
    feed: Option<&'a ProgressFeed>,
    last_report: Instant,
    events: u64,
    /// rows, transactions, events at the last report.
    reported: (u64, u64, u64),
    /// The last event's timestamp (source clock).
    pub last_event_ts: u32,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(feed: Option<&'a ProgressFeed>, c: Counts) -> Self {
        Reporter {
            feed,
            last_report: Instant::now(),
            events: 0,
            reported: (c.rows, c.transactions, 0),
            last_event_ts: 0,
        }
    }

    /// One event read; reports when due, measuring the lag on `src`. Returns the new lag.
    pub(crate) async fn event(
        &mut self,
        timestamp: u32,
        src: &mut Conn,
        pos: &BinlogPos,
        c: Counts,
        idle: bool,
    ) -> Option<(u64, Option<u64>)> {
        if timestamp > 0 {
            self.last_event_ts = timestamp;
        }
        self.events += 1;
        let feed = self.feed?;
        if self.last_report.elapsed() < feed.every {
            return None;
        }
        let lag = measure_lag(src, &pos.file, pos.pos, self.last_event_ts, idle).await;
        let secs = self.last_report.elapsed().as_secs_f64();
        let rate = |now: u64, then: u64| ((now - then) as f64 / secs) as u64;
        let (rows0, trx0, ev0) = self.reported;
        feed.reports.send_replace(Some(CatchupReport {
            position: pos.to_string(),
            transactions: c.transactions,
            transactions_per_sec: rate(c.transactions, trx0),
            rows: c.rows,
            rows_per_sec: rate(c.rows, rows0),
            events_per_sec: rate(self.events, ev0),
            lag_seconds: lag.0,
            bytes_behind: lag.1,
        }));
        self.reported = (c.rows, c.transactions, self.events);
        self.last_report = Instant::now();
        Some(lag)
    }
}

/// Seconds behind (source clock now minus the last applied event's time; 0 when nothing is
/// waiting) and bytes behind the source's binlog end (when in the same file).
pub(crate) async fn measure_lag(
    src: &mut Conn,
    file: &str,
    pos: u64,
    last_event_ts: u32,
    idle: bool,
) -> (u64, Option<u64>) {
    let status: Option<mysql_async::Row> =
        src.query_first("SHOW MASTER STATUS").await.ok().flatten();
    let now: Option<u64> = src
        .query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .ok()
        .flatten();
    let bytes = status.and_then(|r| {
        let f: String = r.get(0)?;
        let p: u64 = r.get(1)?;
        (f == file).then(|| p.saturating_sub(pos))
    });
    let secs = match (idle && bytes.is_none_or(|b| b == 0), now) {
        (true, _) | (_, None) => 0,
        (false, Some(n)) => n.saturating_sub(u64::from(last_event_ts)),
    };
    (secs, bytes)
}
