//! Catch-up's progress: a live line on a terminal (every second) or log lines (every 5 s),
//! with position, transactions and rows with their rates, events/s and the lag behind the
//! source (seconds and bytes), and the lag measured when catch-up stops.

use ferry_shared::location::BinlogPos;
use ferry_shared::progress::ProgressMode;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::Instant;

/// The progress line's spinner, when drawn (`Bars`, or `Auto` on a terminal).
pub(crate) fn bar(mode: ProgressMode) -> Option<indicatif::ProgressBar> {
    match mode {
        ProgressMode::Bars => true,
        ProgressMode::Auto => std::io::IsTerminal::is_terminal(&std::io::stderr()),
        ProgressMode::Log | ProgressMode::Off => false,
    }
    .then(|| {
        let b = indicatif::ProgressBar::with_draw_target(
            None,
            indicatif::ProgressDrawTarget::stderr_with_hz(4),
        );
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} catchup [{elapsed_precise}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(std::time::Duration::from_millis(250));
        b
    })
}

/// Counts of the run so far (kept across reconnects).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Counts {
    pub transactions: u64,
    pub rows: u64,
}

/// The reporting state of one attempt.
pub(crate) struct Reporter<'a> {
    bar: Option<&'a indicatif::ProgressBar>,
    mode: ProgressMode,
    last_report: Instant,
    events: u64,
    /// rows, transactions, events at the last report.
    reported: (u64, u64, u64),
    /// The last event's timestamp (source clock).
    pub last_event_ts: u32,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(
        bar: Option<&'a indicatif::ProgressBar>,
        mode: ProgressMode,
        c: Counts,
    ) -> Self {
        Reporter {
            bar,
            mode,
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
        let every = if self.bar.is_some() {
            std::time::Duration::from_secs(1)
        } else {
            REPORT_EVERY
        };
        if self.last_report.elapsed() < every || self.mode == ProgressMode::Off {
            return None;
        }
        let lag = measure_lag(src, &pos.file, pos.pos, self.last_event_ts, idle).await;
        let secs = self.last_report.elapsed().as_secs_f64();
        let rate = |now: u64, then: u64| ((now - then) as f64 / secs) as u64;
        let bytes_behind = lag
            .1
            .map_or("?".to_string(), ferry_shared::progress::human_bytes);
        let (rows0, trx0, ev0) = self.reported;
        match self.bar {
            Some(b) => b.set_message(format!(
                "at {pos} · {} trx ({}/s) · {} rows ({}/s) · {} events/s · lag {} s, {bytes_behind} behind",
                c.transactions,
                rate(c.transactions, trx0),
                c.rows,
                rate(c.rows, rows0),
                rate(self.events, ev0),
                lag.0,
            )),
            None => tracing::info!(
                position = %pos,
                transactions = c.transactions,
                rows = c.rows,
                rows_per_sec = rate(c.rows, rows0),
                transactions_per_sec = rate(c.transactions, trx0),
                events_per_sec = rate(self.events, ev0),
                lag_seconds = lag.0,
                bytes_behind = %bytes_behind,
                "catchup progress"
            ),
        }
        self.reported = (c.rows, c.transactions, self.events);
        self.last_report = Instant::now();
        Some(lag)
    }
}

const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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
