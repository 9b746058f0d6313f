//! Where catch-up starts when the user names a GTID set or a time instead of a binlog
//! position, and where it stops (`--until`).
//!
//! # Transactions and their positions
//! A transaction starts at its GTID event (MySQL GTID / ANONYMOUS_GTID / GTID_TAGGED, MariaDB
//! GTID); in a binlog without GTID events, at its `BEGIN` or at a statement outside any
//! transaction. Its position is the byte offset of that first event, which is also the end of
//! the event before it: a stream started there begins with the whole transaction. Every
//! position this module returns is such a transaction start, or the end of a file's last
//! event when there is nothing after it yet.
//!
//! # Starting from a GTID set
//! Every binlog file opens with the GTID state before it: MariaDB's GTID_LIST, MySQL's
//! PREVIOUS_GTIDS. States only grow from file to file, so the files whose state the set
//! contains are a prefix of `SHOW BINARY LOGS`; a binary search over the files' first events
//! finds the last of them. That file is scanned, and the start is the first transaction whose
//! GTID the set does not contain. Nothing the replica lacks is skipped. When the set holds
//! transactions after that point as well (MariaDB domains that interleave, MySQL sets with
//! holes), those are replayed: in binlog order, with full row images and safe-mode apply, the
//! target still converges.
//!
//! Definite errors instead of a guess: the oldest file's state is not in the set (the
//! transactions in between were purged); the set holds GTIDs the source never wrote (`future`);
//! on MariaDB, the set's GTID for a domain has the sequence number of a transaction from
//! another server (diverged history) or is skipped over (not in the binlog).
//!
//! # Starting from a time
//! Binlog files are binary-searched by the timestamp of their FORMAT_DESCRIPTION event (the
//! moment the file was opened): every transaction in earlier files committed before that. The
//! scan starts in the last file opened before `t` and returns the first transaction, in binlog
//! order, whose first event's timestamp is `>= t`. Event timestamps are the source's clock in
//! seconds since the epoch, so [`parse_time`] reads a text time as UTC unless it carries an
//! offset.
//!
//! # Stopping
//! [`Until`] is a pure check the apply loop asks before each transaction; see
//! [`Until::reached`].
//!
//! Binlog files are read as a replica in non-blocking mode (the server id the caller gives),
//! one file at a time: a read stops at the file's closing ROTATE or at its current end.

use crate::binlog::{self, BinlogError, Event};
use crate::decode::{Change, Decoder};
use crate::events;
use ferry_shared::failure::{Class, Classify, Failure};
use ferry_shared::location::{BinlogPos, Flavor, GtidSet, MariadbGtid, PositionParseError};
use futures::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("{what}: {source}")]
    Server {
        what: String,
        #[source]
        source: mysql_async::Error,
    },
    #[error("binlog file {file}: {source}")]
    Decode {
        file: String,
        #[source]
        source: BinlogError,
    },
    /// The user's input does not fit the source (wrong GTID flavour, no GTIDs, ...).
    #[error("{0}")]
    Input(String),
    #[error("GTID set {set}: the source's oldest binlog file {oldest_file} starts after GTID state `{oldest_state}`, which the set does not contain: transactions the replica lacks were purged from the source. Take a new dump (or restore the purged binlogs)")]
    Purged {
        set: String,
        oldest_file: String,
        oldest_state: String,
    },
    #[error("GTID set {set} holds transactions this source never wrote (its binlog ends at GTID `{current}`): check that --source is the server the set comes from")]
    Future { set: String, current: String },
    #[error("GTID set {set}: the source's binlog has {found} at {at} where the set expects {expected}: the replica's history diverged from the source's; take a new dump")]
    Diverged {
        set: String,
        expected: String,
        found: String,
        at: BinlogPos,
    },
    #[error("GTID set {set}: {expected} is not in the source's binlog (domain {domain} goes from sequence {before} to {found} at {at}); check the set, or take a new dump")]
    NotInBinlog {
        set: String,
        expected: String,
        domain: u32,
        before: u64,
        found: String,
        at: BinlogPos,
    },
    #[error("start time {} is not after the source's oldest binlog file {oldest_file}, which was opened at {}: transactions of that time may have been purged; pick a later time or take a new dump", format_time(*t), format_time(*opened))]
    TimeTooOld {
        t: u32,
        oldest_file: String,
        opened: u32,
    },
    #[error("start time {} is after the source's clock ({}): no transaction of that time exists yet", format_time(*t), format_time(*now))]
    TimeInFuture { t: u32, now: u32 },
    #[error("the source lists no binary logs: is log_bin on?")]
    NoBinlogs,
}

impl Classify for LocateError {
    /// The shared policy's class of the server error (lost connections and the like are
    /// transient); everything else is definite.
    fn class(&self) -> Class {
        match self {
            LocateError::Server { source, .. } => Failure::mysql("", source).class,
            _ => Class::Definite,
        }
    }
}

fn server(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> LocateError {
    let what = what.into();
    move |source| LocateError::Server { what, source }
}

// ---------------------------------------------------------------------------------------------
// Steps and transaction starts (pure)

/// One decoded change with the byte range of the binlog event that carried it. Changes from
/// inside a compressed transaction carry the range of the TRANSACTION_PAYLOAD event.
///
/// MySQL's PREVIOUS_GTIDS event comes as [`Change::GtidList`] here, like MariaDB's GTID_LIST:
/// both are the GTID state at the start of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub change: Change,
    /// Offset of the carrying event in its file.
    pub start: u64,
    /// Offset just after it (its `log_pos`).
    pub end: u64,
    /// The event's timestamp (seconds since the epoch, source clock).
    pub timestamp: u32,
}

/// Where a transaction starts, its GTID (`None`: anonymous or no GTID events) and the timestamp
/// of its first event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnStart {
    pub pos: u64,
    pub gtid: Option<String>,
    pub timestamp: u32,
}

/// Finds the transaction starts in a file's steps (see the module docs).
#[derive(Debug, Default)]
pub struct TxnStarts {
    open: bool,
}

impl TxnStarts {
    pub fn step(&mut self, s: &Step) -> Option<TxnStart> {
        let start = |gtid| TxnStart {
            pos: s.start,
            gtid,
            timestamp: s.timestamp,
        };
        match &s.change {
            Change::Gtid(g) => {
                self.open = true;
                Some(start(named_gtid(g)))
            }
            Change::Other("GTID_TAGGED") => {
                self.open = true;
                Some(start(None))
            }
            Change::Query { sql, .. } => match first_word(sql).as_str() {
                "BEGIN" if !self.open => {
                    self.open = true;
                    Some(start(None))
                }
                "COMMIT" | "ROLLBACK" => {
                    self.open = false;
                    None
                }
                // A statement inside the open transaction (or the DDL a GTID event opened).
                _ if self.open => None,
                // A statement of its own (DDL in a binlog without GTID events).
                _ => Some(start(None)),
            },
            Change::Rows { .. } if !self.open => {
                self.open = true;
                Some(start(None))
            }
            Change::Commit { .. } => {
                self.open = false;
                None
            }
            _ => None,
        }
    }
}

fn first_word(sql: &[u8]) -> String {
    let text = String::from_utf8_lossy(&sql[..sql.len().min(16)]).into_owned();
    text.trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase()
}

/// A GTID's text, or `None` for MySQL's anonymous GTIDs (gno 0).
fn named_gtid(g: &str) -> Option<String> {
    match g.rsplit_once(':') {
        Some((_, "0")) => None,
        _ => Some(g.to_string()),
    }
}

/// A file's GTID state (GTID_LIST / PREVIOUS_GTIDS text) as a set of `flavor`. MariaDB states
/// list the last GTID of every domain and server; the highest sequence per domain is the
/// domain's position.
pub fn parse_state(text: &str, flavor: Flavor) -> Result<GtidSet, PositionParseError> {
    match flavor {
        Flavor::Mariadb => {
            let mut map: BTreeMap<u32, MariadbGtid> = BTreeMap::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let g: MariadbGtid = part.parse()?;
                let e = map.entry(g.domain).or_insert(g);
                if g.seq > e.seq {
                    *e = g;
                }
            }
            Ok(GtidSet::Mariadb(map))
        }
        _ => GtidSet::parse_mysql(text),
    }
}

/// What a file says about where a replica that executed a GTID set starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidInFile {
    /// The file's starting state holds transactions the set lacks: the start is in an earlier
    /// file (or purged).
    Earlier { state: String },
    /// The first transaction the set lacks starts at this offset.
    At(u64),
    /// The set holds every transaction of the file: start at `end` (the end of the file's last
    /// event) or later.
    Later { end: u64 },
}

/// Scans one file's steps for the start of a replica that executed `set` (see the module docs),
/// step by step so a reader can stop as soon as the answer is known.
#[derive(Debug)]
pub struct GtidScan<'a> {
    set: &'a GtidSet,
    file: String,
    starts: TxnStarts,
    /// MariaDB: the highest sequence seen per domain (state, then transactions).
    seen: HashMap<u32, u64>,
    end: u64,
}

impl<'a> GtidScan<'a> {
    pub fn new(set: &'a GtidSet, file: &str) -> Self {
        GtidScan {
            set,
            file: file.to_string(),
            starts: TxnStarts::default(),
            seen: HashMap::new(),
            end: 4,
        }
    }

    /// Feeds one step; `Some` once the answer is known.
    pub fn step(&mut self, s: &Step) -> Result<Option<GtidInFile>, LocateError> {
        if !matches!(s.change, Change::Rotate { .. } | Change::Other("STOP")) {
            self.end = self.end.max(s.end);
        }
        if let Change::GtidList(text) = &s.change {
            return self.state(text, s);
        }
        let Some(txn) = self.starts.step(s) else {
            return Ok(None);
        };
        let at = BinlogPos::new(&self.file, txn.pos);
        let Some(gtid) = txn.gtid else {
            // Anonymous: the set cannot hold it.
            return Ok(Some(GtidInFile::At(txn.pos)));
        };
        if self.contains(&gtid, &at)? {
            return Ok(None);
        }
        Ok(Some(GtidInFile::At(txn.pos)))
    }

    /// The answer once the file's steps are all fed.
    pub fn finish(self) -> GtidInFile {
        GtidInFile::Later { end: self.end }
    }

    fn state(&mut self, text: &str, s: &Step) -> Result<Option<GtidInFile>, LocateError> {
        let state = parse_state(text, self.set.flavor()).map_err(|e| {
            LocateError::Input(format!(
                "binlog file {}: its GTID state `{text}` does not fit the set {}: {e}",
                self.file, self.set
            ))
        })?;
        if let (GtidSet::Mariadb(st), GtidSet::Mariadb(want)) = (&state, self.set) {
            for g in st.values() {
                self.seen.insert(g.domain, g.seq);
                if let Some(w) = want.get(&g.domain) {
                    if w.seq == g.seq && w.server != g.server {
                        return Err(self.diverged(w, g, s.start));
                    }
                }
            }
        }
        if self.set.contains(&state) != Some(true) {
            return Ok(Some(GtidInFile::Earlier {
                state: text.to_string(),
            }));
        }
        Ok(None)
    }

    fn diverged(&self, want: &MariadbGtid, found: &MariadbGtid, at: u64) -> LocateError {
        LocateError::Diverged {
            set: self.set.to_string(),
            expected: want.to_string(),
            found: found.to_string(),
            at: BinlogPos::new(&self.file, at),
        }
    }

    /// Whether the set holds the transaction `gtid` (which starts at `at`).
    fn contains(&mut self, gtid: &str, at: &BinlogPos) -> Result<bool, LocateError> {
        match self.set {
            GtidSet::Mariadb(want) => {
                let Ok(g) = gtid.parse::<MariadbGtid>() else {
                    return Ok(false);
                };
                let before = self.seen.insert(g.domain, g.seq).unwrap_or(0);
                let Some(w) = want.get(&g.domain) else {
                    return Ok(false);
                };
                if g.seq == w.seq && g.server != w.server {
                    return Err(self.diverged(w, &g, at.pos));
                }
                if g.seq > w.seq && before < w.seq {
                    return Err(LocateError::NotInBinlog {
                        set: self.set.to_string(),
                        expected: w.to_string(),
                        domain: g.domain,
                        before,
                        found: g.to_string(),
                        at: at.clone(),
                    });
                }
                Ok(g.seq <= w.seq)
            }
            GtidSet::Mysql(_) => Ok(GtidSet::parse_mysql(gtid)
                .ok()
                .and_then(|one| self.set.contains(&one))
                .unwrap_or(false)),
        }
    }
}

/// Where a replica that executed `set` starts in one file, given the file's steps in order:
/// the offset of the first transaction the set lacks (see [`GtidInFile`]).
pub fn position_after_gtid_set(
    file: &str,
    steps: impl IntoIterator<Item = Step>,
    set: &GtidSet,
) -> Result<GtidInFile, LocateError> {
    let mut scan = GtidScan::new(set, file);
    for s in steps {
        if let Some(found) = scan.step(&s)? {
            return Ok(found);
        }
    }
    Ok(scan.finish())
}

/// What a file says about the first transaction at or after a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeInFile {
    /// The first transaction whose first event's timestamp is `>= t` starts here.
    At(u64),
    /// No such transaction in the file, which ends at `end`.
    Later { end: u64 },
}

/// Scans one file's steps for the first transaction at or after `t` (seconds since the epoch).
#[derive(Debug)]
pub struct TimeScan {
    t: u32,
    starts: TxnStarts,
    end: u64,
}

impl TimeScan {
    pub fn new(t: u32) -> Self {
        TimeScan {
            t,
            starts: TxnStarts::default(),
            end: 4,
        }
    }

    pub fn step(&mut self, s: &Step) -> Option<TimeInFile> {
        if !matches!(s.change, Change::Rotate { .. } | Change::Other("STOP")) {
            self.end = self.end.max(s.end);
        }
        let txn = self.starts.step(s)?;
        (txn.timestamp >= self.t).then_some(TimeInFile::At(txn.pos))
    }

    pub fn finish(self) -> TimeInFile {
        TimeInFile::Later { end: self.end }
    }
}

/// The first transaction in one file whose first event's timestamp is `>= t`.
pub fn first_transaction_at_or_after(steps: impl IntoIterator<Item = Step>, t: u32) -> TimeInFile {
    let mut scan = TimeScan::new(t);
    for s in steps {
        if let Some(found) = scan.step(&s) {
            return found;
        }
    }
    scan.finish()
}

// ---------------------------------------------------------------------------------------------
// Framing events into steps

/// Decodes one framed event into steps.
fn steps_of(decoder: &mut Decoder, ev: &Event<'_>) -> Result<Vec<Step>, BinlogError> {
    let h = ev.header;
    let step = |change| Step {
        change,
        start: ev.offset,
        end: ev.offset + u64::from(h.event_size),
        timestamp: h.timestamp,
    };
    let bad = |what: String| BinlogError::Malformed {
        offset: ev.offset,
        event: binlog::type_name(h.type_code),
        what,
    };
    match h.type_code {
        35 => Ok(vec![step(Change::GtidList(
            events::previous_gtids(ev.body).map_err(bad)?,
        ))]),
        _ => Ok(decoder.event(ev)?.into_iter().map(step).collect()),
    }
}

/// All steps of a binlog file's bytes (the file reader's counterpart of a replica stream).
pub fn file_steps(data: &[u8]) -> Result<Vec<Step>, BinlogError> {
    let reader = binlog::FileReader::new(data)?;
    let mut decoder = Decoder::new();
    let mut out = Vec::new();
    for ev in reader {
        let ev = ev?;
        out.extend(steps_of(&mut decoder, &ev)?);
    }
    Ok(out)
}

/// Reads binlog files from the source as a replica, one file at a time.
struct FileStreams {
    opts: Opts,
    server_id: u32,
}

/// MariaDB: the source still holds an earlier connection of ours under this server id; it
/// lets it go at once or at its next heartbeat.
const ER_SLAVE_SAME_ID: u16 = 4052;

impl FileStreams {
    /// Streams `file` from its start, handing each step to `each` until it returns `false` or
    /// the file ends (its closing ROTATE, or its current end).
    async fn read(
        &self,
        file: &str,
        mut each: impl FnMut(&Step) -> Result<bool, LocateError>,
    ) -> Result<(), LocateError> {
        let mut tries = 0;
        loop {
            let mut delivered = false;
            match self.read_once(file, &mut each, &mut delivered).await {
                Err(LocateError::Server {
                    source: mysql_async::Error::Server(e),
                    ..
                }) if e.code == ER_SLAVE_SAME_ID && !delivered && tries < 30 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                }
                r => return r,
            }
        }
    }

    async fn read_once(
        &self,
        file: &str,
        each: &mut impl FnMut(&Step) -> Result<bool, LocateError>,
        delivered: &mut bool,
    ) -> Result<(), LocateError> {
        let what = || format!("reading binlog file {file} as replica {}", self.server_id);
        let conn = Conn::new(self.opts.clone()).await.map_err(server(what()))?;
        let mut stream = crate::source::open(conn, self.server_id, file, 4, true, false)
            .await
            .map_err(server(what()))?;
        let mut decoder = Decoder::new();
        let mut in_file = false;
        while let Some(ev) = stream.next().await {
            let ev = ev.map_err(server(what()))?;
            let header = crate::source::header_of(&ev);
            // log_pos 0: the server's fake ROTATE / FORMAT_DESCRIPTION / GTID_LIST, and the
            // events inside a compressed transaction (decoded with their payload already).
            if header.log_pos == 0 {
                if in_file && header.type_code == 4 {
                    break; // on to the next file (after a STOP event)
                }
                continue;
            }
            if header.type_code == 4 {
                break; // the file's closing ROTATE
            }
            in_file = true;
            let start = u64::from(header.log_pos)
                .checked_sub(u64::from(header.event_size))
                .ok_or_else(|| LocateError::Decode {
                    file: file.to_string(),
                    source: BinlogError::BadLength {
                        offset: u64::from(header.log_pos),
                        len: header.event_size,
                    },
                })?;
            let framed = Event {
                offset: start,
                header,
                body: ev.data(),
            };
            let steps = steps_of(&mut decoder, &framed).map_err(|e| LocateError::Decode {
                file: file.to_string(),
                source: e,
            })?;
            for s in &steps {
                *delivered = true;
                if !each(s)? {
                    let _ = stream.close().await;
                    return Ok(());
                }
            }
        }
        let _ = stream.close().await;
        Ok(())
    }

    /// The first events of `file`: when it was opened and its GTID state.
    async fn header(&self, file: &str) -> Result<FileHeader, LocateError> {
        let mut h = FileHeader {
            opened: None,
            state: None,
        };
        let mut starts = TxnStarts::default();
        self.read(file, |s| {
            h.opened.get_or_insert(s.timestamp);
            if let Change::GtidList(text) = &s.change {
                h.state = Some(text.clone());
                return Ok(false);
            }
            Ok(starts.step(s).is_none())
        })
        .await?;
        Ok(h)
    }
}

#[derive(Debug, Clone)]
struct FileHeader {
    /// The FORMAT_DESCRIPTION event's timestamp: when the file was opened.
    opened: Option<u32>,
    /// The GTID state before the file (GTID_LIST / PREVIOUS_GTIDS).
    state: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Server side

/// The source's flavour, from its version string.
pub(crate) async fn flavor(src: &mut Conn) -> Result<Flavor, LocateError> {
    let version: Option<String> = src
        .query_first("SELECT @@version")
        .await
        .map_err(server("reading the source's version"))?;
    Ok(
        if version
            .unwrap_or_default()
            .to_ascii_lowercase()
            .contains("mariadb")
        {
            Flavor::Mariadb
        } else {
            Flavor::Mysql
        },
    )
}

/// The source's binlog files, oldest first.
async fn binary_logs(src: &mut Conn) -> Result<Vec<String>, LocateError> {
    let rows: Vec<mysql_async::Row> = src.query("SHOW BINARY LOGS").await.map_err(server(
        "SHOW BINARY LOGS (needs BINLOG MONITOR / REPLICATION CLIENT)",
    ))?;
    let files: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get_opt::<String, _>(0).and_then(Result::ok))
        .collect();
    if files.is_empty() {
        return Err(LocateError::NoBinlogs);
    }
    Ok(files)
}

/// The binlog position where a replica that has executed the GTID set `set` must start: the
/// first transaction (its GTID event) that `set` does not contain, or the current end of the
/// binlog when `set` holds everything.
///
/// `set` is in the source's flavour: MariaDB `domain-server-seq` per domain (`0-1-100,1-2-7`,
/// as `@@gtid_slave_pos` / `@@gtid_binlog_pos` print it), MySQL `uuid:1-100,...`
/// (`@@gtid_executed`). On MariaDB that is the position just after the set's transaction in
/// each domain. `src` answers the queries; binlog files are read on new connections with its
/// options, as replica `server_id` (unique among the source's replicas), one file at a time,
/// non-blocking; a binary search reads only the first events of most files.
///
/// Definite errors: a set of the other flavour; transactions before the oldest binlog file
/// that the set lacks ([`LocateError::Purged`], naming the oldest file and its GTID state);
/// GTIDs the source never wrote ([`LocateError::Future`], naming the source's current GTID
/// position); on MariaDB, a diverged history or a GTID missing from the binlog.
pub async fn start_for_gtid(
    src: &mut Conn,
    set: &str,
    server_id: u32,
) -> Result<BinlogPos, LocateError> {
    let flavor = flavor(src).await?;
    let wanted = match flavor {
        Flavor::Mariadb => GtidSet::parse_mariadb(set).map_err(|e| {
            LocateError::Input(format!(
                "{e} (the source is MariaDB: give its GTID position, one DOMAIN-SERVER-SEQUENCE per domain, e.g. 0-1-100 or 0-1-100,1-2-7)"
            ))
        })?,
        _ => GtidSet::parse_mysql(set).map_err(|e| {
            LocateError::Input(format!(
                "{e} (the source is MySQL: give a GTID set like 3e11fa47-71ca-11e1-9e33-c80aa9429562:1-100)"
            ))
        })?,
    };
    let current_sql = match flavor {
        Flavor::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
        _ => "SELECT @@GLOBAL.gtid_executed",
    };
    let current: String = src
        .query_first::<Option<String>, _>(current_sql)
        .await
        .map_err(server("reading the source's GTID position"))?
        .flatten()
        .unwrap_or_default();
    let current_set = parse_state(&current, flavor)
        .map_err(|e| LocateError::Input(format!("the source's GTID position `{current}`: {e}")))?;
    if current_set.contains(&wanted) != Some(true) {
        return Err(LocateError::Future {
            set: wanted.to_string(),
            current: current.trim().replace('\n', ""),
        });
    }
    let files = binary_logs(src).await?;
    let reader = FileStreams {
        opts: src.opts().clone(),
        server_id,
    };
    let contained = |state: &Option<String>, file: &str| -> Result<bool, LocateError> {
        let text = state.as_deref().ok_or_else(|| {
            LocateError::Input(format!(
                "binlog file {file} has no GTID state event (GTID_LIST / PREVIOUS_GTIDS): the source does not write GTIDs; start from a binlog position instead"
            ))
        })?;
        let st = parse_state(text, flavor).map_err(|e| {
            LocateError::Input(format!("binlog file {file}: GTID state `{text}`: {e}"))
        })?;
        Ok(wanted.contains(&st) == Some(true))
    };
    let oldest = reader.header(&files[0]).await?;
    if !contained(&oldest.state, &files[0])? {
        return Err(LocateError::Purged {
            set: wanted.to_string(),
            oldest_file: files[0].clone(),
            oldest_state: oldest.state.unwrap_or_default(),
        });
    }
    // The last file whose state the set contains: `lo` is such a file; `hi` is not (or the end).
    let (mut lo, mut hi) = (0, files.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if contained(&reader.header(&files[mid]).await?.state, &files[mid])? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let file = &files[lo];
    let mut scan = GtidScan::new(&wanted, file);
    let mut found = None;
    reader
        .read(file, |s| {
            found = scan.step(s)?;
            Ok(found.is_none())
        })
        .await?;
    match found.unwrap_or_else(|| scan.finish()) {
        GtidInFile::At(pos) | GtidInFile::Later { end: pos } => Ok(BinlogPos::new(file, pos)),
        GtidInFile::Earlier { state } => Err(LocateError::Input(format!(
            "binlog file {file} changed while it was read (its GTID state now reads `{state}`); try again"
        ))),
    }
}

/// The binlog position of the first transaction whose first event's timestamp is `>= t`
/// (seconds since the epoch, the source's clock; see [`parse_time`]), in binlog order; the
/// current end of the binlog when no such transaction exists yet and `t` is not in the future.
///
/// `src` answers the queries; binlog files are read on new connections with its options, as
/// replica `server_id` (unique among the source's replicas), one file at a time, non-blocking.
/// Definite errors: `t` not after the moment the oldest binlog file was
/// opened ([`LocateError::TimeTooOld`], naming that file and time: transactions of that time
/// may be purged) and `t` after the source's clock ([`LocateError::TimeInFuture`]).
pub async fn start_for_time(
    src: &mut Conn,
    t: u32,
    server_id: u32,
) -> Result<BinlogPos, LocateError> {
    let files = binary_logs(src).await?;
    let reader = FileStreams {
        opts: src.opts().clone(),
        server_id,
    };
    let opened = |h: FileHeader, file: &str| {
        h.opened
            .ok_or_else(|| LocateError::Input(format!("binlog file {file} has no events to read")))
    };
    let first = opened(reader.header(&files[0]).await?, &files[0])?;
    if first >= t {
        return Err(LocateError::TimeTooOld {
            t,
            oldest_file: files[0].clone(),
            opened: first,
        });
    }
    // The last file opened before `t`: every transaction in earlier files committed before it.
    let (mut lo, mut hi) = (0, files.len());
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if opened(reader.header(&files[mid]).await?, &files[mid])? < t {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let mut end = BinlogPos::new(&files[lo], 4);
    for file in &files[lo..] {
        let mut scan = TimeScan::new(t);
        let mut found = None;
        reader
            .read(file, |s| {
                found = scan.step(s);
                Ok(found.is_none())
            })
            .await?;
        match found.unwrap_or_else(|| scan.finish()) {
            TimeInFile::At(pos) => return Ok(BinlogPos::new(file, pos)),
            TimeInFile::Later { end: e } => end = BinlogPos::new(file, e),
        }
    }
    let now: Option<u32> = src
        .query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .map_err(server("reading the source's clock"))?;
    match now {
        Some(now) if t > now => Err(LocateError::TimeInFuture { t, now }),
        _ => Ok(end),
    }
}

// ---------------------------------------------------------------------------------------------
// Times

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// Seconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(t: u32) -> String {
    let t = i64::from(t);
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Parses `YYYY-MM-DD HH:MM:SS` (or with `T` between date and time) into seconds since the
/// epoch. The time is **UTC** unless it ends with an offset: `Z`, `UTC`, `+HH:MM`, `-HH:MM`,
/// `+HHMM` or `+HH` (a space before it is allowed). The source's own time zone is not
/// consulted: give the offset when the time is the source's local time.
pub fn parse_time(s: &str) -> Result<u32, PositionParseError> {
    let bad = |reason: &str| PositionParseError {
        what: "time",
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let expected =
        "expected YYYY-MM-DD HH:MM:SS, in UTC unless followed by an offset (Z, +02:00, -0500)";
    let t = s.trim();
    let b = t.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad(expected));
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, PositionParseError> {
        let part = &t[r];
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad(expected));
        }
        part.parse().map_err(|_| bad(expected))
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(i64::from(y), mo) {
        return Err(bad("no such date"));
    }
    if h > 23 || mi > 59 || sec > 59 {
        return Err(bad("no such time of day"));
    }
    let offset = parse_offset(t[19..].trim()).ok_or_else(|| bad(expected))?;
    let local = days_from_civil(i64::from(y), mo, d) * 86_400 + i64::from(h * 3600 + mi * 60 + sec);
    u32::try_from(local - offset)
        .map_err(|_| bad("outside 1970-01-01 .. 2106-02-07 (binlog timestamps are 32-bit)"))
}

/// Seconds east of UTC.
fn parse_offset(s: &str) -> Option<i64> {
    if s.is_empty() || s == "Z" || s.eq_ignore_ascii_case("UTC") {
        return Some(0);
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|c| c.is_ascii_digit()) || s[1..].matches(':').count() > 1 {
        return None;
    }
    let (h, m) = match digits.len() {
        2 => (digits.parse::<i64>().ok()?, 0),
        4 => (digits[..2].parse::<i64>().ok()?, digits[2..].parse().ok()?),
        _ => return None,
    };
    (h <= 14 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

// ---------------------------------------------------------------------------------------------
// Until

/// Where catch-up stops (`--until`).
///
/// Every bound stops catch-up *between* transactions: before applying the first transaction
/// the bound excludes; see [`Until::reached`] for each variant's rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Until {
    /// `caught-up`: stop at the end of the source's binlog as it was when catch-up started
    /// (lag 0). This is the stream's non-blocking mode ([`Until::stops_at_binlog_end`]);
    /// [`Until::reached`] never stops it.
    CaughtUp,
    /// `FILE:POS` (a numbered binlog file): stop before the first transaction that starts at or
    /// after this position.
    Position(BinlogPos),
    /// A GTID for one MariaDB domain (`0-1-100`) or one MySQL source UUID (`uuid:100`,
    /// `uuid:1-100`, `uuid:tag:1-5`): stop once that transaction (the highest sequence / gno
    /// named) has been applied.
    Gtid(GtidSet),
    /// `YYYY-MM-DD HH:MM:SS` (UTC unless an offset follows, see [`parse_time`]), kept as seconds
    /// since the epoch: stop before the first transaction whose timestamp is after it.
    Time(u32),
}

impl Until {
    /// Whether catch-up must stop before applying the next transaction. Call it before each
    /// transaction, with:
    /// - `file`, `pos`: where that transaction starts (its GTID / BEGIN event: the end of the
    ///   event before it, e.g. the previous transaction's COMMIT/XID);
    /// - `last_gtid`: the GTID of the last transaction applied (on resume, the checkpoint's;
    ///   when starting from a GTID set, that set). A whole executed set works too;
    /// - `event_ts`: the timestamp of that transaction's first event (0: unknown).
    ///
    /// Rules: `Position(b)`: `file:pos >= b` in binlog order (file number, then offset); a
    /// bound inside a transaction lets that transaction finish. Positions of another binlog
    /// base name never reach it (check with [`Until::check_start`]). `Gtid(g)`: `last_gtid` is
    /// at or past `g` in `g`'s domain / UUID (sequence numbers grow within a domain / UUID).
    /// `Time(t)`: `event_ts > t`, so every transaction up to `t` inclusive is applied (in
    /// binlog order, up to the first one after `t`). `CaughtUp`: never.
    pub fn reached(&self, file: &str, pos: u64, last_gtid: Option<&str>, event_ts: u32) -> bool {
        match self {
            Until::CaughtUp => false,
            Until::Position(b) => BinlogPos::new(file, pos)
                .partial_cmp(b)
                .is_some_and(|o| o != std::cmp::Ordering::Less),
            Until::Gtid(bound) => last_gtid.is_some_and(|g| gtid_at_or_past(bound, g)),
            Until::Time(t) => event_ts > *t,
        }
    }

    /// True for `caught-up`, which stops at the binlog's end instead of waiting for more.
    pub fn stops_at_binlog_end(&self) -> bool {
        matches!(self, Until::CaughtUp)
    }

    /// Checks the bound can be reached from `start` on a source of `flavor`: a position must be
    /// in the same binlog sequence (same base name), a GTID in the source's flavour.
    pub fn check_start(&self, start: &BinlogPos, flavor: Flavor) -> Result<(), LocateError> {
        match self {
            Until::Position(b) if start.partial_cmp(b).is_none() => Err(LocateError::Input(
                format!("--until {b}: not comparable with the start position {start} (another binlog base name)"),
            )),
            Until::Gtid(g) if g.flavor() != flavor => Err(LocateError::Input(format!(
                "--until {g}: a {} GTID, but the source is {flavor}",
                g.flavor()
            ))),
            _ => Ok(()),
        }
    }
}

/// Whether the applied GTID (or executed set) `last` is at or past `bound`, whose sets have one
/// domain / UUID.
fn gtid_at_or_past(bound: &GtidSet, last: &str) -> bool {
    match (bound, parse_state(last, bound.flavor())) {
        (GtidSet::Mariadb(b), Ok(GtidSet::Mariadb(l))) => b
            .values()
            .all(|g| l.get(&g.domain).is_some_and(|x| x.seq >= g.seq)),
        (GtidSet::Mysql(b), Ok(GtidSet::Mysql(l))) => b.iter().all(|(sid, ivs)| {
            let top = |v: &Vec<(u64, u64)>| v.last().map(|iv| iv.1);
            l.get(sid)
                .and_then(top)
                .zip(top(ivs))
                .is_some_and(|(have, want)| have >= want)
        }),
        _ => false,
    }
}

fn until_err(input: &str, reason: impl Into<String>) -> PositionParseError {
    PositionParseError {
        what: "--until",
        input: input.to_string(),
        reason: reason.into(),
    }
}

const UNTIL_FORMS: &str = "expected caught-up, FILE:POS (mysql-bin.000042:1234), a GTID (0-1-100 or UUID:1-100) or a time YYYY-MM-DD HH:MM:SS";

impl FromStr for Until {
    type Err = PositionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("caught-up") {
            return Ok(Until::CaughtUp);
        }
        let b = t.as_bytes();
        let looks_like_time = b.len() >= 11
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[7] == b'-'
            && (b[10] == b' ' || b[10] == b'T');
        if looks_like_time {
            return parse_time(t)
                .map(Until::Time)
                .map_err(|e| until_err(s, e.reason));
        }
        let first = t.split(':').next().unwrap_or("");
        if first.len() == 36 && first.matches('-').count() == 4 {
            let set = GtidSet::parse_mysql(t).map_err(|e| until_err(s, e.reason))?;
            return match &set {
                GtidSet::Mysql(m) if m.len() == 1 => Ok(Until::Gtid(set)),
                _ => Err(until_err(
                    s,
                    "give one UUID (and tag): a stop point is one transaction, e.g. UUID:100",
                )),
            };
        }
        if t.contains(':') {
            let pos: BinlogPos = t
                .parse()
                .map_err(|e: PositionParseError| until_err(s, e.reason))?;
            let numbered = pos.file.rsplit_once('.').is_some_and(|(base, n)| {
                !base.is_empty() && !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())
            });
            if !numbered {
                return Err(until_err(
                    s,
                    "the file must be a numbered binlog file, e.g. mysql-bin.000042:1234",
                ));
            }
            return Ok(Until::Position(pos));
        }
        if t.split('-').count() >= 3
            && t.bytes()
                .all(|c| c.is_ascii_digit() || c == b'-' || c == b',')
        {
            let set = GtidSet::parse_mariadb(t).map_err(|e| until_err(s, e.reason))?;
            return match &set {
                GtidSet::Mariadb(m) if m.len() == 1 => Ok(Until::Gtid(set)),
                _ => Err(until_err(
                    s,
                    "give one domain's GTID: a stop point is one transaction, e.g. 0-1-100",
                )),
            };
        }
        Err(until_err(s, UNTIL_FORMS))
    }
}

impl fmt::Display for Until {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Until::CaughtUp => f.write_str("caught-up"),
            Until::Position(p) => write!(f, "{p}"),
            Until::Gtid(g) => write!(f, "{g}"),
            Until::Time(t) => f.write_str(&format_time(*t)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn fixture(name: &str) -> Vec<Step> {
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common")
            .join(name);
        file_steps(&std::fs::read(p).unwrap()).unwrap()
    }

    fn starts(steps: &[Step]) -> Vec<TxnStart> {
        let mut t = TxnStarts::default();
        steps.iter().filter_map(|s| t.step(s)).collect()
    }

    fn mysql(s: &str) -> GtidSet {
        GtidSet::parse_mysql(s).unwrap()
    }

    fn mariadb(s: &str) -> GtidSet {
        GtidSet::parse_mariadb(s).unwrap()
    }

    const ENUM_UUID: &str = "93e95066-a2f4-11ec-9b69-9657f0ae95e2";

    /// MySQL 8.0.28, five GTIDs (two DDL, three row transactions), empty PREVIOUS_GTIDS.
    #[test]
    fn mysql_recorded_transaction_starts() {
        ferry_shared::conformance_or_skip!();
        let steps = fixture("mysql-enum-string-set.000001");
        let got: Vec<(u64, Option<String>)> = starts(&steps)
            .into_iter()
            .map(|t| (t.pos, t.gtid))
            .collect();
        let want: Vec<(u64, Option<String>)> = [157, 493, 791, 1560, 2659]
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, Some(format!("{ENUM_UUID}:{}", i + 1))))
            .collect();
        assert_eq!(got, want);
        assert!(steps
            .iter()
            .any(|s| s.change == Change::GtidList(String::new())));
    }

    #[test]
    fn mysql_gtid_set_positions_in_recorded_bytes() {
        ferry_shared::conformance_or_skip!();
        let steps = fixture("mysql-enum-string-set.000001");
        let at = |set: &str| {
            position_after_gtid_set("binlog.000001", steps.clone(), &mysql(set)).unwrap()
        };
        let u = ENUM_UUID;
        assert_eq!(at(""), GtidInFile::At(157));
        assert_eq!(at(&format!("{u}:1")), GtidInFile::At(493));
        assert_eq!(at(&format!("{u}:1-3")), GtidInFile::At(1560));
        assert_eq!(at(&format!("{u}:1-4")), GtidInFile::At(2659));
        assert_eq!(at(&format!("{u}:1-5")), GtidInFile::Later { end: 3331 });
        assert_eq!(at(&format!("{u}:1-9")), GtidInFile::Later { end: 3331 });
        // A hole: the first transaction the set lacks decides; later ones are replayed.
        assert_eq!(at(&format!("{u}:1:3-5")), GtidInFile::At(493));
        // Another source's GTIDs do not cover this one's.
        assert_eq!(
            at("aaaaaaaa-a2f4-11ec-9b69-9657f0ae95e2:1-100"),
            GtidInFile::At(157)
        );
    }

    #[test]
    fn mysql_previous_gtids_decide_the_file() {
        ferry_shared::conformance_or_skip!();
        // PREVIOUS_GTIDS b9b88c66-…:1-2, then only a ROTATE at 197.
        let steps = fixture("binlog_transaction_previous_GTID_no_tag.000001");
        let u = "b9b88c66-0755-11f1-9899-4a9da94c4d71";
        let at = |set: &str| position_after_gtid_set("b.000007", steps.clone(), &mysql(set));
        assert_eq!(
            at(&format!("{u}:1")).unwrap(),
            GtidInFile::Earlier {
                state: format!("{u}:1-2")
            }
        );
        assert_eq!(
            at(&format!("{u}:1-2")).unwrap(),
            GtidInFile::Later { end: 197 }
        );
        assert_eq!(
            at(&format!("{u}:1-7")).unwrap(),
            GtidInFile::Later { end: 197 }
        );
    }

    #[test]
    fn mysql_tagged_gtids() {
        ferry_shared::conformance_or_skip!();
        // MySQL 9.6: PREVIOUS_GTIDS uuid:1-13:mytag:1-2, then the transaction uuid:mytag:3.
        let steps = fixture("binlog_transaction_with_GTID_TAG.000001");
        let u = "55778904-0299-11f1-b1b8-4ef0c4956feb";
        let s = starts(&steps);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].pos, 245);
        assert_eq!(s[0].gtid.as_deref(), Some(&*format!("{u}:mytag:3")));
        let at = |set: &str| position_after_gtid_set("b.000001", steps.clone(), &mysql(set));
        assert_eq!(
            at(&format!("{u}:1-13:mytag:1-2")).unwrap(),
            GtidInFile::At(245)
        );
        assert_eq!(
            at(&format!("{u}:1-13:mytag:1-3")).unwrap(),
            GtidInFile::Later { end: 541 }
        );
        assert!(matches!(
            at(&format!("{u}:1-13")).unwrap(),
            GtidInFile::Earlier { .. }
        ));
    }

    #[test]
    fn mysql_anonymous_and_compressed_transactions() {
        ferry_shared::conformance_or_skip!();
        // ANONYMOUS_GTID then a zstd TRANSACTION_PAYLOAD (ending in its XID), then ROTATE.
        let steps = fixture("transaction_compression.000001");
        let s = starts(&steps);
        assert_eq!(
            s,
            vec![TxnStart {
                pos: 197,
                gtid: None,
                timestamp: s[0].timestamp
            }]
        );
        let set = mysql("357df524-4139-11ee-9979-b033ee13919e:1");
        assert_eq!(
            position_after_gtid_set("b.000001", steps.clone(), &set).unwrap(),
            GtidInFile::At(197)
        );
        assert_eq!(
            first_transaction_at_or_after(steps.clone(), s[0].timestamp + 1),
            TimeInFile::Later { end: 431 }
        );
    }

    #[test]
    fn time_positions_in_recorded_bytes() {
        ferry_shared::conformance_or_skip!();
        let steps = fixture("mariadb-bin.000001");
        let s = starts(&steps);
        assert_eq!(
            s.iter().map(|t| t.pos).collect::<Vec<_>>(),
            vec![330, 702],
            "{s:?}"
        );
        let (t1, t2) = (s[0].timestamp, s[1].timestamp);
        // 22:18:04 and 22:19:55 in the recorded file.
        assert_eq!(t2 - t1, 111);
        let at = |t| first_transaction_at_or_after(steps.clone(), t);
        assert_eq!(at(0), TimeInFile::At(330));
        assert_eq!(at(t1), TimeInFile::At(330));
        assert_eq!(at(t1 + 1), TimeInFile::At(702));
        assert_eq!(at(t2), TimeInFile::At(702));
        assert_eq!(at(t2 + 1), TimeInFile::Later { end: 1074 });
        let steps = fixture("mysql-enum-string-set.000001");
        let s = starts(&steps);
        let last = s.last().unwrap();
        assert_eq!(
            first_transaction_at_or_after(steps.clone(), last.timestamp),
            TimeInFile::At(
                s.iter()
                    .find(|t| t.timestamp >= last.timestamp)
                    .unwrap()
                    .pos
            )
        );
    }

    #[test]
    fn mariadb_gtid_positions_in_recorded_bytes() {
        ferry_shared::conformance_or_skip!();
        // GTID_LIST [] then 0-1-1 at 330 and 0-1-2 at 702; the file ends at 1074.
        let steps = fixture("mariadb-bin.000001");
        let at =
            |set: &str| position_after_gtid_set("mariadb-bin.000001", steps.clone(), &mariadb(set));
        assert_eq!(at("").unwrap(), GtidInFile::At(330));
        assert_eq!(at("0-1-1").unwrap(), GtidInFile::At(702));
        assert_eq!(at("0-1-2").unwrap(), GtidInFile::Later { end: 1074 });
        // A domain the set does not mention: everything in it is still to apply.
        assert_eq!(at("1-1-9").unwrap(), GtidInFile::At(330));
        let err = at("0-2-1").unwrap_err();
        assert!(matches!(err, LocateError::Diverged { .. }), "{err}");
        assert!(
            err.to_string().contains("0-1-1") && err.to_string().contains("mariadb-bin.000001:330"),
            "{err}"
        );
    }

    fn step(change: Change, start: u64, end: u64) -> Step {
        Step {
            change,
            start,
            end,
            timestamp: 1,
        }
    }

    #[test]
    fn mariadb_gaps_and_diverged_states_are_errors() {
        let steps = vec![
            step(Change::GtidList("0-1-10,0-2-7,1-1-3".into()), 256, 300),
            step(Change::Gtid("0-1-12".into()), 300, 340),
            step(Change::Commit { xid: 1 }, 400, 431),
        ];
        let at = |set: &str| position_after_gtid_set("m.000002", steps.clone(), &mariadb(set));
        assert_eq!(at("0-1-10,1-1-3").unwrap(), GtidInFile::At(300));
        assert_eq!(at("0-1-12,1-1-3").unwrap(), GtidInFile::Later { end: 431 });
        // Domain 1 is in the state but not the set: its history is before this file.
        assert!(matches!(at("0-1-12").unwrap(), GtidInFile::Earlier { .. }));
        let err = at("0-1-11,1-1-3").unwrap_err();
        assert!(matches!(err, LocateError::NotInBinlog { .. }), "{err}");
        assert!(err.to_string().contains("0-1-11"), "{err}");
        let err = at("0-3-10,1-1-3").unwrap_err();
        assert!(matches!(err, LocateError::Diverged { .. }), "{err}");
    }

    #[test]
    fn transaction_starts_without_gtids() {
        ferry_shared::conformance_or_skip!();
        // MySQL 5.1 (NDB): BEGIN … COMMIT groups and DDL, no GTID events.
        let steps = fixture("write-full-row.binlog");
        let s = starts(&steps);
        assert!(!s.is_empty());
        assert!(s.iter().all(|t| t.gtid.is_none()));
        // Synthetic: DDL, BEGIN … XID, DDL.
        let q = |sql: &str| Change::Query {
            db: "d".into(),
            sql: sql.as_bytes().to_vec(),
            sql_mode: None,
            charset_client: None,
        };
        let steps = [
            step(q("CREATE TABLE t (a INT)"), 4, 100),
            step(q("BEGIN"), 100, 150),
            step(q("SAVEPOINT x"), 150, 180),
            step(Change::Commit { xid: 3 }, 180, 211),
            step(q("  drop table t"), 211, 260),
        ];
        let pos: Vec<u64> = starts(&steps).iter().map(|t| t.pos).collect();
        assert_eq!(pos, vec![4, 100, 211]);
    }

    #[test]
    fn times_parse_as_utc_unless_offset() {
        assert_eq!(parse_time("2026-11-20 10:00:00"), Ok(1_795_168_800));
        assert_eq!(parse_time(" 2026-11-20T10:00:00Z "), Ok(1_795_168_800));
        assert_eq!(parse_time("2026-11-20 10:00:00 UTC"), Ok(1_795_168_800));
        assert_eq!(parse_time("2000-02-29 12:00:00+02:00"), Ok(951_818_400));
        assert_eq!(parse_time("2000-02-29 12:00:00 +0200"), Ok(951_818_400));
        assert_eq!(parse_time("2000-02-29 12:00:00+02"), Ok(951_818_400));
        assert_eq!(parse_time("2024-01-02 03:04:05-05:00"), Ok(1_704_182_645));
        assert_eq!(parse_time("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(parse_time("2106-02-07 06:28:15"), Ok(u32::MAX));
        for bad in [
            "2026-11-20",
            "2026-11-20 10:00",
            "2001-02-29 00:00:00",
            "2026-13-01 00:00:00",
            "2026-04-31 00:00:00",
            "2026-11-20 24:00:00",
            "2026-11-20 10:60:00",
            "2026-11-20 10:00:00 CET",
            "2026-11-20 10:00:00+25:00",
            "1969-12-31 23:59:59",
            "2106-02-07 06:28:16",
            "20261120 100000",
            "2026-1x-20 10:00:00",
        ] {
            let e = parse_time(bad).unwrap_err();
            assert!(e.to_string().contains(bad.trim()), "{bad}: {e}");
        }
        for t in [0, 951_818_400, 1_795_168_800, u32::MAX] {
            assert_eq!(parse_time(&format_time(t)), Ok(t));
        }
        assert_eq!(format_time(1_795_168_800), "2026-11-20 10:00:00 UTC");
    }

    #[test]
    fn until_parses_every_form() {
        let p = |s: &str| s.parse::<Until>();
        assert_eq!(p("caught-up"), Ok(Until::CaughtUp));
        assert_eq!(
            p("mysql-bin.000042:1234"),
            Ok(Until::Position(BinlogPos::new("mysql-bin.000042", 1234)))
        );
        assert_eq!(p("0-1-100"), Ok(Until::Gtid(mariadb("0-1-100"))));
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        assert_eq!(
            p(&format!("{u}:1-100")),
            Ok(Until::Gtid(mysql(&format!("{u}:1-100"))))
        );
        assert_eq!(
            p(&format!("{u}:tg:7")),
            Ok(Until::Gtid(mysql(&format!("{u}:tg:7"))))
        );
        assert_eq!(p("2026-11-20 10:00:00"), Ok(Until::Time(1_795_168_800)));
        assert_eq!(
            p("2026-11-20T11:00:00+01:00"),
            Ok(Until::Time(1_795_168_800))
        );
        for (bad, says) in [
            ("0-1-100,1-1-5", "one domain"),
            (
                &*format!("{u}:1-5,aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1"),
                "one UUID",
            ),
            (&*format!("{u}:1-5:tg:1"), "one UUID"),
            (&*format!("{u}:0"), "bad interval"),
            ("mysql-bin:55", "numbered binlog file"),
            ("mysql-bin.000001:x", "POS"),
            ("2026-02-30 00:00:00", "no such date"),
            ("2026-02-03 00:00", "YYYY-MM-DD HH:MM:SS"),
            ("0-1", "caught-up"),
            ("tomorrow", "caught-up"),
            ("", "caught-up"),
        ] {
            let e = p(bad).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.contains("--until") && msg.contains(says),
                "{bad}: {msg}"
            );
        }
        for s in [
            "caught-up",
            "mysql-bin.000042:1234",
            "0-1-100",
            &format!("{u}:1-100"),
        ] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
        assert_eq!(p(&Until::Time(5).to_string()), Ok(Until::Time(5)));
    }

    #[test]
    fn until_reached_rules() {
        let pos: Until = "mysql-bin.000005:400".parse().unwrap();
        assert!(!pos.reached("mysql-bin.000005", 399, None, 0));
        assert!(pos.reached("mysql-bin.000005", 400, None, 0));
        assert!(pos.reached("mysql-bin.000006", 4, None, 0));
        assert!(!pos.reached("mysql-bin.000004", 9_999_999, None, 0));
        assert!(!pos.reached("other.000009", 4, None, 0));

        let g: Until = "0-1-100".parse().unwrap();
        assert!(!g.reached("f.000001", 4, None, 0));
        assert!(!g.reached("f.000001", 4, Some("0-1-99"), 0));
        assert!(g.reached("f.000001", 4, Some("0-1-100"), 0));
        assert!(g.reached("f.000001", 4, Some("0-2-101"), 0));
        assert!(!g.reached("f.000001", 4, Some("1-1-500"), 0));
        assert!(g.reached("f.000001", 4, Some("1-1-500,0-1-100"), 0));
        assert!(!g.reached("f.000001", 4, Some("garbage"), 0));

        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let g: Until = format!("{u}:1-100").parse().unwrap();
        assert!(!g.reached("f.000001", 4, Some(&format!("{u}:99")), 0));
        assert!(g.reached("f.000001", 4, Some(&format!("{u}:100")), 0));
        assert!(g.reached("f.000001", 4, Some(&format!("{u}:1-120")), 0));
        assert!(!g.reached("f.000001", 4, Some(&format!("{u}:tg:200")), 0));
        assert!(!g.reached("f.000001", 4, Some("0-1-500"), 0));
        let tagged: Until = format!("{u}:tg:5").parse().unwrap();
        assert!(tagged.reached("f.000001", 4, Some(&format!("{u}:tg:5")), 0));
        assert!(!tagged.reached("f.000001", 4, Some(&format!("{u}:5")), 0));

        let t = Until::Time(1000);
        assert!(!t.reached("f.000001", 4, None, 999));
        assert!(!t.reached("f.000001", 4, None, 1000));
        assert!(t.reached("f.000001", 4, None, 1001));
        assert!(!t.reached("f.000001", 4, None, 0));

        assert!(!Until::CaughtUp.reached("f.000009", 1 << 40, Some("0-1-1"), u32::MAX));
        assert!(Until::CaughtUp.stops_at_binlog_end());
        assert!(!t.stops_at_binlog_end());
    }

    #[test]
    fn until_check_start() {
        let start = BinlogPos::new("mysql-bin.000003", 4);
        let pos: Until = "mysql-bin.000009:4".parse().unwrap();
        assert!(pos.check_start(&start, Flavor::Mariadb).is_ok());
        let other: Until = "relay.000009:4".parse().unwrap();
        let e = other.check_start(&start, Flavor::Mariadb).unwrap_err();
        assert!(e.to_string().contains("relay.000009:4"), "{e}");
        let g: Until = "0-1-5".parse().unwrap();
        assert!(g.check_start(&start, Flavor::Mariadb).is_ok());
        assert!(g.check_start(&start, Flavor::Mysql).is_err());
    }

    #[test]
    fn transient_errors_are_only_lost_connections() {
        assert!(!LocateError::NoBinlogs.is_transient());
        let io = mysql_async::Error::Io(mysql_async::IoError::Io(std::io::Error::other("reset")));
        assert!(LocateError::Server {
            what: "x".into(),
            source: io
        }
        .is_transient());
    }
}
