//! Progress reporting shared by all steps: indicatif bars on a terminal, periodic log lines
//! otherwise, and counters that the final summary reads.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Counters for one run; cheap to update from many tasks.
#[derive(Debug, Default)]
pub struct Counters {
    pub rows: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    pub chunks_done: AtomicU64,
    pub chunks_total: AtomicU64,
}

impl Counters {
    pub fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Bars when stderr is a terminal, log lines otherwise.
    Auto,
    Bars,
    Log,
    Off,
}

/// Draws the overall bar (and per-table bars) or logs every `interval`.
pub struct ProgressReporter {
    counters: Arc<Counters>,
    multi: Option<MultiProgress>,
    overall: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
    started: Instant,
}

impl ProgressReporter {
    /// `label` names the step (`dump`, `load`); `total_rows` is an estimate for the ETA.
    pub fn start(
        label: &'static str,
        mode: ProgressMode,
        counters: Arc<Counters>,
        total_rows: u64,
        interval: Duration,
    ) -> Self {
        let bars = match mode {
            ProgressMode::Auto => std::io::stderr().is_terminal(),
            ProgressMode::Bars => true,
            ProgressMode::Log | ProgressMode::Off => false,
        };
        let started = Instant::now();
        if bars {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let bar = multi.add(ProgressBar::new(total_rows.max(1)));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix:>6} [{elapsed_precise}] {wide_bar} {pos}/~{len} rows {msg} ETA {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(label);
            let c = counters.clone();
            let b = bar.clone();
            let ticker = tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    let rows = c.rows.load(Ordering::Relaxed);
                    if rows > b.length().unwrap_or(0) {
                        b.set_length(rows);
                    }
                    b.set_position(rows);
                    b.set_message(format!(
                        "{} chunks {}/{}",
                        human_bytes(c.bytes.load(Ordering::Relaxed)),
                        c.chunks_done.load(Ordering::Relaxed),
                        c.chunks_total.load(Ordering::Relaxed)
                    ));
                }
            });
            return Self {
                counters,
                multi: Some(multi),
                overall: Some(bar),
                ticker: Some(ticker),
                started,
            };
        }
        let ticker = (mode != ProgressMode::Off).then(|| {
            let c = counters.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(interval).await;
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
            })
        });
        Self {
            counters,
            multi: None,
            overall: None,
            ticker,
            started,
        }
    }

    /// Per-table bars for `(name, estimated rows, units of work)`; drawn on a terminal only.
    pub fn table_bars(&self, tables: Vec<(String, u64, u64)>) -> TableBars {
        TableBars {
            multi: self.multi.clone(),
            tables: tables
                .into_iter()
                .map(|(name, est_rows, units)| TableBarState {
                    name,
                    est_rows,
                    units_left: AtomicU64::new(units),
                    bar: std::sync::Mutex::new(None),
                })
                .collect(),
        }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn finish(mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(b) = self.overall.take() {
            b.finish_and_clear();
        }
        if let Some(m) = self.multi.take() {
            let _ = m.clear();
        }
    }
}

impl Drop for ProgressReporter {
    fn drop(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
    }
}

/// A bar per table, shown from its first rows until its last unit of work is done, so the
/// screen holds only the tables in flight.
pub struct TableBars {
    multi: Option<MultiProgress>,
    tables: Vec<TableBarState>,
}

struct TableBarState {
    name: String,
    est_rows: u64,
    units_left: AtomicU64,
    bar: std::sync::Mutex<Option<ProgressBar>>,
}

impl TableBars {
    /// Counts rows of table `index` (creating its bar on first use).
    pub fn add_rows(&self, index: usize, rows: u64) {
        let (Some(multi), Some(t)) = (&self.multi, self.tables.get(index)) else {
            return;
        };
        let Ok(mut slot) = t.bar.lock() else { return };
        let bar = slot.get_or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(t.est_rows.max(1)));
            bar.set_style(
                ProgressStyle::with_template("  {prefix:40!} {bar:30} {pos}/~{len} rows")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(t.name.clone());
            bar
        });
        bar.inc(rows);
        if bar.position() > bar.length().unwrap_or(0) {
            bar.set_length(bar.position());
        }
    }

    /// One unit of work (a chunk) of table `index` is finished; the last one removes its bar.
    pub fn unit_done(&self, index: usize) {
        let Some(t) = self.tables.get(index) else {
            return;
        };
        if t.units_left.fetch_sub(1, Ordering::Relaxed) == 1 {
            if let Some(bar) = t.bar.lock().ok().and_then(|mut b| b.take()) {
                bar.finish_and_clear();
            }
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}
