//! Progress of a run, as counters: the step libraries fill them, the binary draws them (bars on
//! a terminal, log lines otherwise) and the final summary reads them. No library draws.
//!
//! A [`Progress`] goes through three phases: it is created by the binary (`Preparing`, nothing
//! drawn while the step plans), [`Progress::begin`] by the library when reading or loading
//! starts (`Running`: the display starts its clock and its bars), and [`Progress::end`] when
//! that work is over (`Done`: the display clears before the step's last writes and summary).
//! Per-table counters ([`Progress::track_tables`]) count each table's rows and its units of
//! work (chunks or files) left, so a display can show only the tables in flight.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::watch;

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

/// Where a run's progress is (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Preparing,
    Running,
    Done,
}

/// The progress of one run: overall counters, the rows expected (for an ETA) and a counter per
/// table; shared (in an `Arc`) by the library that fills it and the display that reads it.
#[derive(Debug)]
pub struct Progress {
    pub counters: Arc<Counters>,
    total_rows: AtomicU64,
    tables: OnceLock<Vec<TableProgress>>,
    phase: watch::Sender<Phase>,
}

/// One table's progress: rows so far, against an estimate, and units of work left.
#[derive(Debug)]
pub struct TableProgress {
    pub name: String,
    pub est_rows: u64,
    pub rows: AtomicU64,
    pub units_left: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            counters: Arc::default(),
            total_rows: AtomicU64::new(0),
            tables: OnceLock::new(),
            phase: watch::Sender::new(Phase::Preparing),
        }
    }
}

impl Progress {
    /// The work starts; `total_rows` is an estimate for the ETA.
    pub fn begin(&self, total_rows: u64) {
        self.total_rows.store(total_rows, Ordering::Relaxed);
        self.phase.send_replace(Phase::Running);
    }

    /// The work is over (or failed); the display clears. Idempotent.
    pub fn end(&self) {
        self.phase.send_replace(Phase::Done);
    }

    /// Counts per table for `(name, estimated rows, units of work)`; only the first call counts.
    pub fn track_tables(&self, tables: Vec<(String, u64, u64)>) {
        let _ = self.tables.set(
            tables
                .into_iter()
                .map(|(name, est_rows, units)| TableProgress {
                    name,
                    est_rows,
                    rows: AtomicU64::new(0),
                    units_left: AtomicU64::new(units),
                })
                .collect(),
        );
    }

    /// Counts rows of table `index`.
    pub fn add_rows(&self, index: usize, rows: u64) {
        if let Some(t) = self.tables().get(index) {
            t.rows.fetch_add(rows, Ordering::Relaxed);
        }
    }

    /// One unit of work (a chunk, a file) of table `index` is finished.
    pub fn unit_done(&self, index: usize) {
        if let Some(t) = self.tables().get(index) {
            let _ = t
                .units_left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// The rows expected, as [`Progress::begin`] set them.
    pub fn total_rows(&self) -> u64 {
        self.total_rows.load(Ordering::Relaxed)
    }

    /// The tracked tables (none before [`Progress::track_tables`]).
    pub fn tables(&self) -> &[TableProgress] {
        self.tables.get().map_or(&[], Vec::as_slice)
    }

    /// Follows the phase: a display waits for `Running` and stops at `Done`.
    pub fn phase(&self) -> watch::Receiver<Phase> {
        self.phase.subscribe()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_per_table_counts() {
        let p = Progress::default();
        let phase = p.phase();
        assert_eq!(*phase.borrow(), Phase::Preparing);
        // Rows of untracked tables are not counted (and do not panic).
        p.add_rows(0, 5);
        p.unit_done(0);
        p.track_tables(vec![("a".into(), 10, 2), ("b".into(), 0, 1)]);
        p.track_tables(vec![("ignored".into(), 1, 1)]);
        p.begin(10);
        assert_eq!((*phase.borrow(), p.total_rows()), (Phase::Running, 10));
        p.add_rows(0, 3);
        p.add_rows(0, 4);
        p.add_rows(7, 1);
        p.unit_done(1);
        p.unit_done(1);
        let t = p.tables();
        assert_eq!((t.len(), t[0].name.as_str()), (2, "a"));
        assert_eq!(t[0].rows.load(Ordering::Relaxed), 7);
        assert_eq!(t[0].units_left.load(Ordering::Relaxed), 2);
        assert_eq!(t[1].units_left.load(Ordering::Relaxed), 0);
        p.end();
        assert_eq!(*phase.borrow(), Phase::Done);
    }
}
