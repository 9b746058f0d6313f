//! The catch-up loop: stream the source's binlog from a start position and apply each
//! transaction to the target together with its checkpoint.
//!
//! Invariants: the checkpoint (`ferry_meta.catchup_checkpoint_v1`) is written in the same
//! target transaction as the rows it covers, so after a crash the target holds exactly the
//! changes up to the checkpoint; changes replayed from there are applied in safe mode
//! (REPLACE / DELETE by key), so they converge instead of doubling. DDL runs as a barrier,
//! followed by its own checkpoint.

use crate::apply::{self, TargetTable};
use crate::decode::Change;
use crate::source::{self, StreamStart};
use ferry_shared::conn::ConnSpec;
use ferry_shared::location::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::Serialize;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct CatchupConfig {
    pub source: ConnSpec,
    pub target: ConnSpec,
    /// Where to start when the target has no checkpoint for the task.
    pub start: BinlogPos,
    pub task_id: String,
    pub server_id: u32,
    /// Stop at the source's binlog end as it was when catch-up started (lag 0).
    pub until_caught_up: bool,
    /// Only changes to these databases are applied (`None`: all).
    pub schemas: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CatchupSummary {
    pub task_id: String,
    pub started_at: String,
    pub stopped_at: String,
    pub transactions: u64,
    pub rows: u64,
    pub ddl: u64,
    pub elapsed_secs: f64,
    pub rows_per_sec: f64,
    /// Lag when catch-up stopped: seconds behind the source's clock and bytes behind its
    /// binlog end (0 and 0 at `--until caught-up`).
    pub lag_seconds: u64,
    pub bytes_behind: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum CatchupError {
    #[error("{0}")]
    Definite(String),
    #[error("{0}")]
    Transient(String),
    #[error(transparent)]
    Source(#[from] source::SourceError),
}

impl CatchupError {
    pub fn is_transient(&self) -> bool {
        matches!(self, CatchupError::Transient(_) | CatchupError::Source(_))
    }
}

fn db_err(what: &str) -> impl Fn(mysql_async::Error) -> CatchupError + '_ {
    move |e| match &e {
        mysql_async::Error::Server(s) => {
            CatchupError::Definite(format!("{what}: {} (error {})", s.message, s.code))
        }
        _ => CatchupError::Transient(format!("{what}: {e}")),
    }
}

async fn connect(spec: &ConnSpec) -> Result<Conn, CatchupError> {
    spec.connect().await.map_err(|e| {
        if e.is_transient() {
            CatchupError::Transient(e.to_string())
        } else {
            CatchupError::Definite(e.to_string())
        }
    })
}

/// Checks the source can be replicated from `start`: binlog on, ROW format, FULL images, and
/// the start file still present.
pub async fn precheck(src: &mut Conn, start: &BinlogPos) -> Result<(), CatchupError> {
    let (log_bin, format, image): (Option<String>, Option<String>, Option<String>) = src
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
        .await
        .map_err(db_err("reading the source's binlog settings"))?
        .unwrap_or((None, None, None));
    let expect = [
        ("log_bin", log_bin, "1"),
        ("binlog_format", format, "ROW"),
        ("binlog_row_image", image, "FULL"),
    ];
    for (name, got, want) in expect {
        let got = got.unwrap_or_default();
        if !got.eq_ignore_ascii_case(want) {
            return Err(CatchupError::Definite(format!(
                "precheck: the source has {name}={got}; catch-up needs {name}={want}"
            )));
        }
    }
    let logs: Vec<mysql_async::Row> = src.query("SHOW BINARY LOGS").await.map_err(db_err(
        "SHOW BINARY LOGS (needs BINLOG MONITOR / REPLICATION CLIENT)",
    ))?;
    let names: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
    if !names.contains(&start.file) {
        return Err(CatchupError::Definite(format!(
            "precheck: the start position {}:{} is gone from the source: its binlog file was purged (oldest available: {}); take a new dump",
            start.file,
            start.pos,
            names.first().map(String::as_str).unwrap_or("none")
        )));
    }
    Ok(())
}

/// Errors that mean a replayed DDL statement is already in effect: database/table exists or
/// not, duplicate column/key, column/key to drop missing.
const ALREADY_APPLIED: &[u16] = &[1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146];

/// At most this many source transactions, or this long, per target commit.
const GROUP_MAX: u32 = 500;
const GROUP_TIME: std::time::Duration = std::time::Duration::from_millis(200);

const CHECKPOINT_DDL: &str = "CREATE TABLE IF NOT EXISTS `ferry_meta`.`catchup_checkpoint_v1` (
    task_id VARCHAR(64) NOT NULL PRIMARY KEY,
    file VARCHAR(512) NOT NULL,
    pos BIGINT NOT NULL,
    gtid VARCHAR(2048) NULL,
    updated_at DATETIME(6) NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";

/// Does a statement run without a default schema name `schema` in a qualified identifier?
fn names_schema(sql: &str, schema: &str) -> bool {
    let quoted = format!("{}.", ferry_shared::ident::quote_ident(schema));
    sql.contains(&quoted)
        || sql.match_indices(&format!("{schema}.")).any(|(i, _)| {
            i == 0
                || !sql.as_bytes()[i - 1].is_ascii_alphanumeric() && sql.as_bytes()[i - 1] != b'_'
        })
}

/// A binlog file name from a ROTATE event, without trailing bytes some servers append.
fn clean_file_name(raw: &str) -> String {
    raw.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .collect()
}

struct Applier {
    tables: HashMap<(String, String), TargetTable>,
}

impl Applier {
    async fn table(
        &mut self,
        tgt: &mut Conn,
        tm: &crate::rows::TableMap,
    ) -> Result<TargetTable, CatchupError> {
        let k = (tm.db.clone(), tm.table.clone());
        if let Some(t) = self.tables.get(&k) {
            if t.columns.len() == tm.columns.len() {
                return Ok(t.clone());
            }
        }
        let target_cols: Vec<String> = tgt
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                (&tm.db, &tm.table),
            )
            .await
            .map_err(db_err("reading the target's columns"))?;
        if target_cols.is_empty() {
            return Err(CatchupError::Definite(format!(
                "`{}`.`{}` changed on the source but does not exist on the target: load the dump first",
                tm.db, tm.table
            )));
        }
        let columns: Vec<String> = match tm.columns.iter().map(|c| c.name.clone()).collect::<Option<Vec<_>>>() {
            Some(names) => names,
            None if target_cols.len() >= tm.columns.len() => target_cols[..tm.columns.len()].to_vec(),
            None => {
                return Err(CatchupError::Definite(format!(
                    "`{}`.`{}`: the binlog has no column names (binlog_row_metadata=FULL) and the target has fewer columns",
                    tm.db, tm.table
                )))
            }
        };
        let pk: Vec<String> = tgt
            .exec(
                "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX",
                (&tm.db, &tm.table),
            )
            .await
            .map_err(db_err("reading the target's primary key"))?;
        let key: Vec<usize> = pk
            .iter()
            .filter_map(|p| columns.iter().position(|c| c.eq_ignore_ascii_case(p)))
            .collect();
        let t = TargetTable {
            qualified: ferry_shared::ident::qualified(&tm.db, &tm.table),
            columns,
            key: if key.len() == pk.len() {
                key
            } else {
                Vec::new()
            },
        };
        self.tables.insert(k, t.clone());
        Ok(t)
    }
}

pub async fn run(cfg: CatchupConfig) -> Result<CatchupSummary, CatchupError> {
    let started = Instant::now();
    let mut tgt = connect(&cfg.target).await?;
    tgt.query_drop("CREATE DATABASE IF NOT EXISTS `ferry_meta`")
        .await
        .map_err(db_err("creating `ferry_meta` on the target"))?;
    tgt.query_drop(CHECKPOINT_DDL)
        .await
        .map_err(db_err("creating the catch-up checkpoint table"))?;
    tgt.query_drop("SET SESSION time_zone = '+00:00', foreign_key_checks = 0")
        .await
        .map_err(db_err("target session setup"))?;
    let saved: Option<(String, u64)> = tgt
        .exec_first(
            "SELECT file, pos FROM `ferry_meta`.`catchup_checkpoint_v1` WHERE task_id = ?",
            (&cfg.task_id,),
        )
        .await
        .map_err(db_err("reading the checkpoint"))?;
    let start = match saved {
        Some((file, pos)) => {
            tracing::info!(%file, pos, "resuming from the checkpoint");
            BinlogPos::new(file, pos)
        }
        None => cfg.start.clone(),
    };
    let mut src = connect(&cfg.source).await?;
    precheck(&mut src, &start).await?;
    tracing::info!(start = %start, "precheck passed; streaming");
    let stream_conn = connect(&cfg.source).await?;

    // Changes arrive in a synchronous callback; apply them from an async loop fed by a channel.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<source::Positioned>(1024);
    let stream_start = StreamStart {
        file: start.file.clone(),
        pos: start.pos,
        server_id: cfg.server_id,
        non_blocking: cfg.until_caught_up,
    };
    let source_spec = cfg.source.clone();
    let reader = tokio::spawn(async move {
        let mut conn = Some(stream_conn);
        let mut tries = 0;
        loop {
            let c = match conn.take() {
                Some(c) => c,
                None => connect(&source_spec).await.map_err(|e| match e {
                    CatchupError::Source(s) => s,
                    other => source::SourceError::Other(other.to_string()),
                })?,
            };
            match source::stream_to(c, &stream_start, tx.clone()).await {
                // The source still has our previous connection (a killed run) registered
                // under this server id; it drops it at its next heartbeat.
                Err(source::SourceError::Stream {
                    source: mysql_async::Error::Server(e),
                    ..
                }) if e.code == 4052 && tries < 60 => {
                    tries += 1;
                    tracing::info!(
                        "the source still holds a replica connection with this server id; retrying"
                    );
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
                r => return r,
            }
        }
    });
    let mut applier = Applier {
        tables: HashMap::new(),
    };
    let mut st = Txn {
        task: cfg.task_id.clone(),
        file: start.file.clone(),
        pos: start.pos,
        gtid: None,
        in_tx: false,
        grouped: 0,
        group_started: Instant::now(),
    };
    let (mut transactions, mut rows, mut ddl) = (0u64, 0u64, 0u64);
    let mut last_report = Instant::now();
    let mut reported_rows = 0u64;
    let mut last_event_ts = 0u32;
    let mut lag = (0u64, None::<u64>);
    while let Some(p) = rx.recv().await {
        if p.timestamp > 0 {
            last_event_ts = p.timestamp;
        }
        if last_report.elapsed() >= REPORT_EVERY {
            lag = measure_lag(&mut src, &st.file, st.pos, last_event_ts, rx.is_empty()).await;
            let secs = last_report.elapsed().as_secs_f64();
            tracing::info!(
                position = %format!("{}:{}", st.file, st.pos),
                transactions,
                rows,
                rows_per_sec = ((rows - reported_rows) as f64 / secs) as u64,
                lag_seconds = lag.0,
                bytes_behind = lag.1.map_or("?".to_string(), |b| b.to_string()),
                "catchup progress"
            );
            reported_rows = rows;
            last_report = Instant::now();
        }
        match p.change {
            // The fake ROTATE at the start names the file we asked for, possibly with stray
            // bytes: only real ROTATE events move the position to another file.
            Change::Rotate {
                file: f,
                pos: at,
                artificial: false,
            } => {
                let f = clean_file_name(&f);
                if !f.is_empty() {
                    st.file = f;
                    st.pos = at;
                }
            }
            Change::Gtid(g) => st.gtid = Some(g),
            Change::Query { db, sql } => {
                let text = String::from_utf8_lossy(&sql).trim().to_string();
                let wanted = cfg.schemas.as_ref().is_none_or(|s| {
                    s.contains(&db) || (db.is_empty() && s.iter().any(|x| names_schema(&text, x)))
                });
                let upper = text.to_ascii_uppercase();
                if upper == "BEGIN" {
                    st.begin(&mut tgt).await?;
                } else if upper == "COMMIT" {
                    if p.end_pos > 0 {
                        st.pos = p.end_pos;
                    }
                    st.commit(&mut tgt).await?;
                    transactions += 1;
                } else if !wanted {
                    tracing::debug!(schema = %db, "statement outside the replicated schemas skipped");
                } else {
                    // DDL: a barrier, applied in the statement's schema, then checkpointed.
                    if st.in_tx {
                        st.commit(&mut tgt).await?;
                    }
                    if !db.is_empty() {
                        tgt.query_drop(format!("USE {}", ferry_shared::ident::quote_ident(&db)))
                            .await
                            .map_err(db_err("USE"))?;
                    }
                    match tgt.query_drop(&sql[..]).await {
                        Ok(()) => {}
                        // Replayed after a crash between the DDL and its checkpoint: the
                        // target already has the change.
                        Err(mysql_async::Error::Server(e)) if ALREADY_APPLIED.contains(&e.code) => {
                            tracing::warn!(code = e.code, error = %e.message, "DDL already applied on the target (a replay after a restart); skipped");
                        }
                        Err(e) => {
                            return Err(db_err(&format!(
                                "applying DDL `{}`",
                                text.chars().take(100).collect::<String>()
                            ))(e))
                        }
                    }
                    applier.tables.clear();
                    if p.end_pos > 0 {
                        st.pos = p.end_pos;
                    }
                    // The DDL's own checkpoint (commit() opens the transaction).
                    st.commit(&mut tgt).await?;
                    ddl += 1;
                }
            }
            Change::Rows { table, event } => {
                if cfg.schemas.as_ref().is_some_and(|s| !s.contains(&table.db)) {
                    continue;
                }
                st.begin(&mut tgt).await?;
                let t = applier.table(&mut tgt, &table).await?;
                for s in apply::statements(&event, &table, &t).map_err(CatchupError::Definite)? {
                    tgt.query_drop(&s)
                        .await
                        .map_err(db_err(&format!("applying a change to {}", t.qualified)))?;
                }
                rows += event.rows.len() as u64;
            }
            Change::Commit { .. } => {
                if p.end_pos > 0 {
                    st.pos = p.end_pos;
                }
                transactions += 1;
                st.grouped += 1;
                // Group source transactions into one target commit while more are already
                // waiting; the checkpoint still moves only with the data it covers.
                let more_waiting = !rx.is_empty();
                if !more_waiting
                    || st.grouped >= GROUP_MAX
                    || st.group_started.elapsed() >= GROUP_TIME
                {
                    st.commit(&mut tgt).await?;
                }
            }
            _ => {}
        }
    }
    match reader.await {
        Ok(r) => r?,
        Err(e) => return Err(CatchupError::Transient(format!("binlog reader: {e}"))),
    }
    if st.in_tx {
        if st.grouped > 0 {
            // Whole source transactions still waiting for their group commit.
            st.commit(&mut tgt).await?;
        } else {
            let _ = tgt.query_drop("ROLLBACK").await;
        }
    }
    if cfg.until_caught_up {
        lag = measure_lag(&mut src, &st.file, st.pos, last_event_ts, true).await;
    }
    let secs = started.elapsed().as_secs_f64().max(0.001);
    Ok(CatchupSummary {
        task_id: cfg.task_id,
        started_at: start.to_string(),
        stopped_at: format!("{}:{}", st.file, st.pos),
        transactions,
        rows,
        ddl,
        elapsed_secs: secs,
        rows_per_sec: rows as f64 / secs,
        lag_seconds: lag.0,
        bytes_behind: lag.1,
    })
}

const REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Seconds behind (source clock now minus the last applied event's time; 0 when nothing is
/// waiting) and bytes behind the source's binlog end (when in the same file).
async fn measure_lag(
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

/// The applied position and the target transaction it is committed in.
struct Txn {
    task: String,
    file: String,
    pos: u64,
    gtid: Option<String>,
    in_tx: bool,
    /// Source transactions applied since the last target commit, and since when.
    grouped: u32,
    group_started: Instant,
}

impl Txn {
    /// Opens a target transaction unless one is open.
    async fn begin(&mut self, tgt: &mut Conn) -> Result<(), CatchupError> {
        if !self.in_tx {
            tgt.query_drop("START TRANSACTION")
                .await
                .map_err(db_err("START TRANSACTION"))?;
            self.in_tx = true;
        }
        Ok(())
    }

    /// Commits what is applied together with the checkpoint of the current position.
    async fn commit(&mut self, tgt: &mut Conn) -> Result<(), CatchupError> {
        self.begin(tgt).await?;
        tgt.exec_drop(
            "REPLACE INTO `ferry_meta`.`catchup_checkpoint_v1` (task_id, file, pos, gtid, updated_at) VALUES (?, ?, ?, ?, NOW(6))",
            (&self.task, &self.file, self.pos, &self.gtid),
        )
        .await
        .map_err(db_err("writing the checkpoint"))?;
        tgt.query_drop("COMMIT").await.map_err(db_err("COMMIT"))?;
        self.in_tx = false;
        self.grouped = 0;
        self.group_started = Instant::now();
        Ok(())
    }
}
