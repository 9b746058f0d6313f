//! The progress display: the step libraries only count or measure; this draws.
//!
//! `ferry dump` and `ferry load` fill a [`Progress`]. On a terminal (or `--progress bars`):
//! an overall bar of rows (with bytes, chunks and an ETA) and a bar per table in flight, shown
//! from its first rows until its last unit of work is done. Otherwise (`--progress log`, or
//! `auto` off a terminal): a `progress` log line every `--progress-interval`. Nothing is drawn
//! while the step plans; the display clears when the library ends the work, and at the latest
//! when [`Display::finish`] is called after the run.
//!
//! `ferry catchup` publishes a [`CatchupReport`] every second (a live line on a terminal) or
//! every 5 s (a `catchup progress` log line); see [`CatchupDisplay`].

use ferry_catchup::progress::{CatchupReport, ProgressFeed};
use ferry_shared::progress::{human_bytes, Phase, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the bars are updated.
const BAR_TICK: Duration = Duration::from_millis(250);
/// How often catch-up reports: on a terminal, and in log lines.
const CATCHUP_LINE_EVERY: Duration = Duration::from_secs(1);
const CATCHUP_LOG_EVERY: Duration = Duration::from_secs(5);

/// How progress is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, log lines otherwise.
    Auto,
    Bars,
    Log,
    Off,
}

impl ProgressMode {
    /// Bars (true) or log lines (false); `None` when off.
    fn bars(self) -> Option<bool> {
        match self {
            ProgressMode::Auto => Some(std::io::stderr().is_terminal()),
            ProgressMode::Bars => Some(true),
            ProgressMode::Log => Some(false),
            ProgressMode::Off => None,
        }
    }
}

/// The running display of one step.
pub struct Display {
    progress: Arc<Progress>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Display {
    /// `label` names the step (`dump`, `load`); `interval` spaces the log lines.
    pub fn start(
        label: &'static str,
        mode: ProgressMode,
        progress: Arc<Progress>,
        interval: Duration,
    ) -> Self {
        let phase = progress.phase();
        let task = match mode.bars() {
            Some(true) => Some(tokio::spawn(draw_bars(label, progress.clone(), phase))),
            Some(false) => Some(tokio::spawn(log_lines(
                label,
                progress.clone(),
                phase,
                interval,
            ))),
            None => None,
        };
        Display { progress, task }
    }

    /// Ends the display (clearing the bars) whether or not the run ended its work.
    pub async fn finish(mut self) {
        self.progress.end();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Waits for the work to start; false if it ended (or the run went away) first.
async fn started(phase: &mut watch::Receiver<Phase>) -> bool {
    matches!(
        phase.wait_for(|p| *p != Phase::Preparing).await.as_deref(),
        Ok(Phase::Running)
    )
}

/// Sleeps for `d`, or less when the phase changes; true while the work is running.
async fn tick(phase: &mut watch::Receiver<Phase>, d: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => {}
        _ = phase.changed() => {}
    }
    *phase.borrow() == Phase::Running
}

async fn log_lines(
    label: &'static str,
    progress: Arc<Progress>,
    mut phase: watch::Receiver<Phase>,
    interval: Duration,
) {
    if !started(&mut phase).await {
        return;
    }
    let started = Instant::now();
    let c = &progress.counters;
    while tick(&mut phase, interval).await {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let rows = c.rows.load(Ordering::Relaxed);
        let bytes = c.bytes.load(Ordering::Relaxed);
        tracing::info!(
            step = label,
            rows,
            bytes,
            chunks_done = c.chunks_done.load(Ordering::Relaxed),
            chunks_total = c.chunks_total.load(Ordering::Relaxed),
            rows_per_sec = (rows as f64 / secs) as u64,
            mb_per_sec = format!("{:.1}", bytes as f64 / secs / 1e6),
            "progress"
        );
    }
}

/// A table's bar: not yet shown, shown, or gone (its work is done).
enum TableBar {
    Waiting,
    Shown(ProgressBar),
    Gone,
}

async fn draw_bars(
    label: &'static str,
    progress: Arc<Progress>,
    mut phase: watch::Receiver<Phase>,
) {
    if !started(&mut phase).await {
        return;
    }
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let overall = multi.add(ProgressBar::new(progress.total_rows().max(1)));
    overall.set_style(
        ProgressStyle::with_template(
            "{prefix:>6} [{elapsed_precise}] {wide_bar} {pos}/~{len} rows {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    overall.set_prefix(label);
    let mut tables: Vec<TableBar> = Vec::new();
    while tick(&mut phase, BAR_TICK).await {
        let c = &progress.counters;
        let rows = c.rows.load(Ordering::Relaxed);
        if rows > overall.length().unwrap_or(0) {
            overall.set_length(rows);
        }
        overall.set_position(rows);
        overall.set_message(format!(
            "{} chunks {}/{}",
            human_bytes(c.bytes.load(Ordering::Relaxed)),
            c.chunks_done.load(Ordering::Relaxed),
            c.chunks_total.load(Ordering::Relaxed)
        ));
        update_table_bars(&multi, &progress, &mut tables);
    }
    for t in tables {
        if let TableBar::Shown(bar) = t {
            bar.finish_and_clear();
        }
    }
    overall.finish_and_clear();
    let _ = multi.clear();
}

/// Shows a bar for each table with rows and work left, and removes those whose work is done.
fn update_table_bars(multi: &MultiProgress, progress: &Progress, bars: &mut Vec<TableBar>) {
    let tables = progress.tables();
    bars.resize_with(tables.len(), || TableBar::Waiting);
    for (t, slot) in tables.iter().zip(bars.iter_mut()) {
        let rows = t.rows.load(Ordering::Relaxed);
        let done = t.units_left.load(Ordering::Relaxed) == 0;
        match slot {
            TableBar::Waiting if rows > 0 && !done => {
                let bar = multi.add(ProgressBar::new(t.est_rows.max(1)));
                bar.set_style(
                    ProgressStyle::with_template("  {prefix:40!} {bar:30} {pos}/~{len} rows")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(t.name.clone());
                show_rows(&bar, rows);
                *slot = TableBar::Shown(bar);
            }
            TableBar::Shown(bar) if done => {
                bar.finish_and_clear();
                *slot = TableBar::Gone;
            }
            TableBar::Shown(bar) => show_rows(bar, rows),
            _ => {}
        }
    }
}

fn show_rows(bar: &ProgressBar, rows: u64) {
    if rows > bar.length().unwrap_or(0) {
        bar.set_length(rows);
    }
    bar.set_position(rows);
}

/// The display of `ferry catchup`: a spinner line updated with each report, or a log line per
/// report.
pub struct CatchupDisplay {
    bar: Option<ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl CatchupDisplay {
    /// The display and the feed catch-up reports to (`None` with `--progress off`).
    pub fn start(mode: ProgressMode) -> (Self, Option<Arc<ProgressFeed>>) {
        let Some(bars) = mode.bars() else {
            return (
                CatchupDisplay {
                    bar: None,
                    task: None,
                },
                None,
            );
        };
        let (tx, mut rx) = watch::channel(None);
        let every = if bars {
            CATCHUP_LINE_EVERY
        } else {
            CATCHUP_LOG_EVERY
        };
        let feed = Arc::new(ProgressFeed { every, reports: tx });
        let bar = bars.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            b.set_style(
                ProgressStyle::with_template("{spinner} catchup [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(BAR_TICK);
            b
        });
        let line = bar.clone();
        let task = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let Some(r) = rx.borrow_and_update().clone() else {
                    continue;
                };
                match &line {
                    Some(b) => b.set_message(catchup_line(&r)),
                    None => log_catchup(&r),
                }
            }
        });
        (
            CatchupDisplay {
                bar,
                task: Some(task),
            },
            Some(feed),
        )
    }

    /// Clears the line.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for CatchupDisplay {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

fn bytes_behind(r: &CatchupReport) -> String {
    r.bytes_behind.map_or("?".to_string(), human_bytes)
}

fn catchup_line(r: &CatchupReport) -> String {
    format!(
        "at {} · {} trx ({}/s) · {} rows ({}/s) · {} events/s · lag {} s, {} behind",
        r.position,
        r.transactions,
        r.transactions_per_sec,
        r.rows,
        r.rows_per_sec,
        r.events_per_sec,
        r.lag_seconds,
        bytes_behind(r),
    )
}

fn log_catchup(r: &CatchupReport) {
    tracing::info!(
        position = %r.position,
        transactions = r.transactions,
        rows = r.rows,
        rows_per_sec = r.rows_per_sec,
        transactions_per_sec = r.transactions_per_sec,
        events_per_sec = r.events_per_sec,
        lag_seconds = r.lag_seconds,
        bytes_behind = %bytes_behind(r),
        "catchup progress"
    );
}
