//! The coordinator: what to do with each decoded change, as a state machine without I/O.
//!
//! Inputs are the stream's changes with their positions ([`Coordinator::on_change`]), ticks
//! between them ([`Coordinator::on_tick`]: is anything ready to read, what time is it), a stop
//! request and the end of the stream ([`Coordinator::finish`]). Outputs are [`Action`]s that the
//! wiring in [`crate::run`] executes in order: start a source transaction on the workers,
//! stage a rows event, end the transaction, commit the group with a checkpoint, run a DDL
//! barrier, drop a cut-off transaction, stop.
//!
//! Positions: `pos` is the end of the last whole transaction (or skipped event) read; it moves
//! at COMMIT/XID, at statements that are skipped or applied as DDL, at a ROTATE to another
//! file, and past the events that open a binlog file (GTID_LIST, BINLOG_CHECKPOINT,
//! PREVIOUS_GTIDS) between transactions, so that at the binlog's end catch-up stands exactly
//! there. A transaction starts at its GTID or BEGIN event, or at its first rows event (for
//! events without either); its start position is the `pos` of then.
//!
//! Invariants, each one pinned by a unit test below:
//! - **Group commit.** Whole source transactions are grouped into one commit per worker, at
//!   most [`GROUP_MAX`] of them. A checkpoint is only ever written between transactions.
//! - **Idle commit.** A group is committed as soon as the stream has nothing ready, or once it
//!   waited [`GROUP_TIME`] — also while the events that follow belong to other databases —
//!   so applied changes do not sit in open target transactions while the source is idle.
//! - **DDL barrier.** Before a DDL every worker commits (at the position before it) and syncs;
//!   the DDL then gets its own checkpoint on every worker, at the position after it.
//! - **Resume-skip per worker.** After a restart each worker skips the transactions that start
//!   before its own checkpoint (it committed them already; routing is deterministic).
//! - **Several Locations.** A dump read at several Locations gives per-table floors: row
//!   changes of transactions that start before a table's floor are in the dump already and
//!   are skipped (applying them again would double rows of tables without a key).
//! - **Until.** `--until` bounds stop *between* transactions, before the first transaction the
//!   bound excludes; a stop request lets the current transaction finish.
//! - **Cut-off.** A transaction still open when the stream ends is dropped, not committed; the
//!   checkpoints stay before it.

use crate::checkpoint::Checkpoint;
use crate::ddl::{self, Ddl};
use crate::decode::Change;
use crate::locate::Until;
use crate::rows::{RowsEvent, TableMap};
use crate::source::Positioned;
use ferry_shared::location::BinlogPos;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// At most this many source transactions, or this long, per target commit.
pub(crate) const GROUP_MAX: u32 = 2000;
pub(crate) const GROUP_TIME: Duration = Duration::from_millis(200);

/// What the coordinator filters and where it stops.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rules {
    pub until: Option<Until>,
    /// Only changes to these databases are applied (`None`: all).
    pub schemas: Option<Vec<String>>,
    /// Per table: the earliest Location its dumped rows were read at.
    pub table_floors: HashMap<(String, String), BinlogPos>,
}

/// Why a group is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CommitReason {
    /// [`GROUP_MAX`] transactions, or a stop after a transaction.
    Full,
    /// The stream had nothing ready, or the group waited [`GROUP_TIME`].
    Idle,
    /// The stream ended between transactions.
    Final,
    /// The stream ended inside a transaction (dropped): best effort for the others.
    CutOff,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// A source transaction starts; worker `k` skips it where `skip[k]`.
    Begin { skip: Vec<bool> },
    /// Stage this rows event on its workers.
    Rows {
        table: Arc<TableMap>,
        event: RowsEvent,
    },
    /// The source transaction ended: its staged changes join the group.
    End,
    /// Commit every worker with changes (`all`: every worker) at `at`.
    Commit {
        at: Checkpoint,
        all: bool,
        reason: CommitReason,
    },
    /// Run a DDL barrier.
    Ddl(Box<Ddl>),
    /// Drop the transaction that was cut off.
    Discard,
    /// Stop reading.
    Stop,
}

pub(crate) struct Coordinator {
    rules: Rules,
    pos: BinlogPos,
    /// The last GTID read (or the start set).
    gtid: Option<String>,
    in_txn: bool,
    /// Where the current transaction started.
    txn_at: BinlogPos,
    /// Transactions in the uncommitted group, and when the group started.
    grouped: u32,
    group_started: Instant,
    stopping: bool,
    /// Worker k committed every transaction starting before `done[k]`.
    done: Vec<BinlogPos>,
}

impl Coordinator {
    /// A coordinator resuming with per-worker checkpoints `done`, starting at the lowest.
    pub(crate) fn new(
        rules: Rules,
        done: Vec<BinlogPos>,
        gtid: Option<String>,
        now: Instant,
    ) -> Self {
        let start = crate::checkpoint::lowest(&done);
        Coordinator {
            rules,
            txn_at: start.clone(),
            pos: start,
            gtid,
            in_txn: false,
            grouped: 0,
            group_started: now,
            stopping: false,
            done,
        }
    }

    /// The end of the last whole transaction read.
    pub(crate) fn pos(&self) -> &BinlogPos {
        &self.pos
    }

    pub(crate) fn stopping(&self) -> bool {
        self.stopping
    }

    fn checkpoint(&self) -> Checkpoint {
        crate::checkpoint::at(&self.pos, self.gtid.as_deref())
    }

    /// A stop was requested: stop now between transactions, or after the current one.
    pub(crate) fn request_stop(&mut self, out: &mut Vec<Action>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        tracing::info!("stop requested: finishing the current transaction");
        if !self.in_txn {
            out.push(Action::Stop);
        }
    }

    /// Between changes: commits the group when nothing is ready or it waited long enough.
    pub(crate) fn on_tick(&mut self, nothing_ready: bool, now: Instant, out: &mut Vec<Action>) {
        if self.grouped > 0
            && !self.in_txn
            && (nothing_ready || now.duration_since(self.group_started) >= GROUP_TIME)
        {
            self.commit(CommitReason::Idle, false, now, out);
        }
    }

    fn commit(&mut self, reason: CommitReason, all: bool, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Commit {
            at: self.checkpoint(),
            all,
            reason,
        });
        self.grouped = 0;
        self.group_started = now;
    }

    /// A transaction starts at `pos` (at its GTID or BEGIN event) unless `--until` excludes it;
    /// returns false when catch-up stops here.
    fn start_txn(&mut self, timestamp: u32, out: &mut Vec<Action>) -> bool {
        if self.in_txn {
            return true;
        }
        if let Some(u) = &self.rules.until {
            if u.reached(
                &self.pos.file,
                self.pos.pos,
                self.gtid.as_deref(),
                timestamp,
            ) {
                tracing::info!(position = %self.pos, "--until reached");
                self.stopping = true;
                out.push(Action::Stop);
                return false;
            }
        }
        self.begin(out);
        true
    }

    fn begin(&mut self, out: &mut Vec<Action>) {
        self.in_txn = true;
        self.txn_at = self.pos.clone();
        let at = &self.txn_at;
        let skip = self
            .done
            .iter()
            .map(|d| at.partial_cmp(d) == Some(std::cmp::Ordering::Less))
            .collect();
        out.push(Action::Begin { skip });
    }

    fn move_to(&mut self, end_pos: u64) {
        if end_pos > 0 {
            self.pos.pos = end_pos;
        }
    }

    /// One decoded change.
    pub(crate) fn on_change(&mut self, p: Positioned, now: Instant, out: &mut Vec<Action>) {
        let mut txn_ended = false;
        match p.change {
            // ROTATE: a real one ends a file; the server also sends an artificial one at the
            // start (naming the file we asked for, sometimes with stray bytes) and whenever it
            // opens the next file (after a STOP event at a restart, for one). Only a move to
            // another file changes the position: the artificial one at the start may carry
            // offset 4 instead of our start offset.
            Change::Rotate { file, pos, .. } => {
                let f = clean_file_name(&file, &self.pos.file);
                if !f.is_empty() && f != self.pos.file {
                    self.pos = BinlogPos::new(f, pos);
                }
            }
            Change::Gtid(g) => {
                if !self.start_txn(p.timestamp, out) {
                    return;
                }
                self.gtid = Some(g);
            }
            Change::Query {
                db,
                sql,
                sql_mode,
                charset_client,
            } => {
                let text = String::from_utf8_lossy(&sql).trim().to_string();
                let upper = text.to_ascii_uppercase();
                if upper == "BEGIN" {
                    if !self.start_txn(p.timestamp, out) {
                        return;
                    }
                } else if upper == "COMMIT" {
                    self.move_to(p.end_pos);
                    txn_ended = true;
                } else if upper.starts_with("SAVEPOINT")
                    || upper.starts_with("ROLLBACK TO")
                    || upper.starts_with("RELEASE SAVEPOINT")
                {
                    // Savepoints inside a transaction: its row events already say what stayed.
                } else if !ddl::is_replicated(&db, &text, &upper, self.rules.schemas.as_deref()) {
                    tracing::debug!(schema = %db, "statement outside the replicated schemas, or about accounts, skipped");
                    self.move_to(p.end_pos);
                    self.in_txn = false;
                } else {
                    let before = self.checkpoint();
                    self.move_to(p.end_pos);
                    let after = self.checkpoint();
                    for d in &mut self.done {
                        *d = self.pos.clone();
                    }
                    out.push(Action::Ddl(Box::new(Ddl {
                        db,
                        sql,
                        text,
                        upper,
                        sql_mode,
                        charset_client,
                        before,
                        after,
                    })));
                    self.in_txn = false;
                    self.grouped = 0;
                    self.group_started = now;
                    if self.stopping {
                        out.push(Action::Stop);
                    }
                    return;
                }
            }
            Change::Rows { table, event } => {
                let wanted = |s: &Vec<String>| s.contains(&table.db);
                if !self.rules.schemas.as_ref().is_none_or(wanted) {
                    return;
                }
                if !self.in_txn {
                    self.begin(out);
                }
                let key = (table.db.clone(), table.table.clone());
                if let Some(floor) = self.rules.table_floors.get(&key) {
                    if self.txn_at.partial_cmp(floor) == Some(std::cmp::Ordering::Less) {
                        // Read by the dump already (a table dumped at a later Location).
                        return;
                    }
                }
                out.push(Action::Rows { table, event });
            }
            Change::Commit { .. } => {
                self.move_to(p.end_pos);
                txn_ended = true;
            }
            // The events that open a binlog file (after its FORMAT_DESCRIPTION): between
            // transactions, so the position moves past them; at the binlog's end catch-up then
            // stands exactly there (0 bytes behind), not at the file's offset 4.
            Change::GtidList(_) | Change::Other("MARIA_BINLOG_CHECKPOINT" | "PREVIOUS_GTIDS")
                if !self.in_txn && p.end_pos > 0 =>
            {
                self.pos.pos = p.end_pos;
            }
            _ => {}
        }
        if txn_ended {
            out.push(Action::End);
            self.in_txn = false;
            self.grouped += 1;
            if self.stopping || self.grouped >= GROUP_MAX {
                self.commit(CommitReason::Full, self.stopping, now, out);
            }
            if self.stopping {
                out.push(Action::Stop);
            }
        }
    }

    /// The stream ended or catch-up stops: a transaction still open is dropped; the rest is
    /// committed.
    pub(crate) fn finish(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.in_txn {
            // A source transaction cut off at the end of the stream: not applied.
            out.push(Action::Discard);
            self.commit(CommitReason::CutOff, false, now, out);
        } else {
            self.commit(CommitReason::Final, true, now, out);
        }
    }
}

/// A binlog file name from a ROTATE event, without the bytes some servers append to the
/// artificial ones (their checksum, mysql_async issue 189): the name is cut to the current
/// file's shape, `base.` and as many digits as its sequence number has (a sequence that
/// outgrows its width would need a restart from `--start-position`).
fn clean_file_name(raw: &str, current: &str) -> String {
    let plain: String = raw
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect();
    if let Some((base, seq)) = current.rsplit_once('.') {
        let prefix = format!("{base}.");
        if let Some(rest) = plain.strip_prefix(&prefix) {
            let digits: String = rest
                .chars()
                .take_while(char::is_ascii_digit)
                .take(seq.len().max(1))
                .collect();
            if !digits.is_empty() {
                return format!("{prefix}{digits}");
            }
        }
    }
    plain
}

#[cfg(test)]
mod tests;
