//! Consistent snapshots: open N worker transactions that all see the same point in the source's
//! history, and record that point's Location.
//!
//! Strategies, lightest first:
//! - `backup-stage` (MariaDB ≥ 10.4): `BACKUP STAGE START; BACKUP STAGE BLOCK_COMMIT` blocks only
//!   commits while the workers run `START TRANSACTION WITH CONSISTENT SNAPSHOT`; every worker's
//!   `binlog_snapshot_file/position` must then be equal (asserted), `BINLOG_GTID_POS()` of that
//!   position gives the GTID state, and `BACKUP STAGE END` releases commits — milliseconds.
//! - `flush`: a short `FLUSH TABLES WITH READ LOCK` around the snapshot opening; the position is
//!   `SHOW MASTER STATUS` under the lock.
//! - `lock`: `LOCK TABLES ... READ` on the dumped tables (no RELOAD privilege needed).
//! - `snapshot` (MariaDB, lock-free): each worker opens its own snapshot with no lock at all and
//!   records its own exact position (`binlog_snapshot_*`). Chunks carry their worker's Location,
//!   so the dump may hold several; catchup starts at the earliest and applies idempotently until
//!   the latest, which makes the target converge exactly. With `--threads 1` it is one snapshot.
//! - `none`: no coordination; the position is read before the workers start (approximate).
//!
//! `auto` tries `backup-stage` (MariaDB), then `flush`, then `lock`, logging each fallback.

use crate::dataconn::DataConn;
use crate::error::DumpError;
use ferry_shared::conn::{ConnSpec, ServerInfo};
use ferry_shared::failure::{Classify, Failure};
use ferry_shared::ident::qualified;
use ferry_shared::{BinlogPos, Flavor, GtidSet, Location};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    Auto,
    BackupStage,
    Flush,
    Lock,
    Snapshot,
    None,
}

impl Consistency {
    pub fn name(&self) -> &'static str {
        match self {
            Consistency::Auto => "auto",
            Consistency::BackupStage => "backup-stage",
            Consistency::Flush => "flush",
            Consistency::Lock => "lock",
            Consistency::Snapshot => "snapshot",
            Consistency::None => "none",
        }
    }
}

impl std::str::FromStr for Consistency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => Consistency::Auto,
            "backup-stage" => Consistency::BackupStage,
            "flush" => Consistency::Flush,
            "lock" => Consistency::Lock,
            "snapshot" => Consistency::Snapshot,
            "none" => Consistency::None,
            other => {
                return Err(format!(
                "unknown consistency `{other}` (auto, backup-stage, flush, lock, snapshot, none)"
            ))
            }
        })
    }
}

/// A worker connection inside its snapshot transaction, and the Location it reads at.
pub struct SnapshotWorker {
    pub conn: DataConn,
    pub location: Option<Location>,
}

pub struct SnapshotSet {
    pub workers: Vec<SnapshotWorker>,
    pub strategy: Consistency,
    /// How long commits (backup-stage) or tables (flush/lock) were blocked.
    pub blocked: Duration,
    pub taken_at: String,
}

/// Opens `n` snapshot connections with the requested strategy (falling back under `auto`).
pub async fn open_snapshots(
    spec: &ConnSpec,
    server: &ServerInfo,
    requested: Consistency,
    n: usize,
    tables: &[(String, String)],
) -> Result<SnapshotSet, DumpError> {
    let candidates: Vec<Consistency> = match requested {
        Consistency::Auto => match server.flavor {
            Flavor::Mariadb if server.at_least(10, 4) => vec![
                Consistency::BackupStage,
                Consistency::Flush,
                Consistency::Lock,
            ],
            Flavor::Tidb => vec![Consistency::None],
            _ => vec![Consistency::Flush, Consistency::Lock],
        },
        other => vec![other],
    };
    let mut failures = Vec::new();
    for strategy in &candidates {
        match try_strategy(spec, server, *strategy, n, tables).await {
            Ok(set) => {
                if !failures.is_empty() {
                    tracing::warn!(
                        strategy = strategy.name(),
                        "fell back to `{}` after: {}",
                        strategy.name(),
                        failures.join("; ")
                    );
                }
                return Ok(set);
            }
            Err(e) if requested == Consistency::Auto && !e.is_transient() => {
                tracing::warn!(strategy = strategy.name(), error = %e, "consistency strategy unavailable, trying the next");
                failures.push(format!("{}: {e}", strategy.name()));
            }
            Err(e) => return Err(e),
        }
    }
    Err(DumpError::Definite(format!(
        "no consistency strategy worked ({}); grant RELOAD (backup-stage/flush) or LOCK TABLES (lock), or pass --consistency snapshot|none",
        failures.join("; ")
    )))
}

async fn begin_snapshot(conn: &mut DataConn) -> Result<(), DumpError> {
    let what = "opening snapshot";
    conn.query_drop(
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        what,
    )
    .await?;
    conn.query_drop(
        "START TRANSACTION /*!40108 WITH CONSISTENT SNAPSHOT */",
        what,
    )
    .await
}

/// MariaDB: the exact binlog position of this session's snapshot.
async fn snapshot_position(conn: &mut DataConn) -> Result<Option<BinlogPos>, DumpError> {
    let rows = conn
        .query_rows(
            "SHOW SESSION STATUS LIKE 'binlog_snapshot_%'",
            "reading binlog_snapshot_*",
        )
        .await?;
    let mut file = None;
    let mut pos = None;
    for row in rows {
        let text = |i: usize| {
            row.get(i)
                .and_then(|v| v.as_deref())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        };
        let (k, v) = (text(0), text(1));
        match k.to_ascii_lowercase().as_str() {
            "binlog_snapshot_file" => file = Some(v),
            "binlog_snapshot_position" => pos = v.parse::<u64>().ok(),
            _ => {}
        }
    }
    Ok(match (file, pos) {
        (Some(f), Some(p)) if !f.is_empty() => Some(BinlogPos::new(f, p)),
        _ => None,
    })
}

async fn mariadb_gtid_at(conn: &mut Conn, pos: &BinlogPos) -> Result<Option<GtidSet>, DumpError> {
    let g: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&pos.file, pos.pos))
        .await
        .map_err(|e| DumpError::query("BINLOG_GTID_POS", e))?;
    match g.flatten() {
        Some(s) => GtidSet::parse_mariadb(&s)
            .map(Some)
            .map_err(|e| DumpError::Definite(e.to_string())),
        None => Ok(None),
    }
}

/// MariaDB: the binlog position and `@@gtid_binlog_pos` at one instant, or None when the
/// position moved between the reads (or SHOW MASTER STATUS is not allowed). Reading the position
/// before and after the GTID state proves that no binlog write came between them.
async fn current_gtid_state(ctl: &mut Conn) -> Option<Location> {
    async fn pos(ctl: &mut Conn) -> Option<BinlogPos> {
        let row: mysql_async::Row = ctl.query_first("SHOW MASTER STATUS").await.ok()??;
        Some(BinlogPos::new(
            row.get::<String, _>(0)?,
            row.get::<u64, _>(1)?,
        ))
    }
    let before = pos(ctl).await?;
    let gtid: String = ctl
        .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
        .await
        .ok()??;
    let after = pos(ctl).await?;
    if before != after {
        return None;
    }
    let gtid = GtidSet::parse_mariadb(&gtid).ok()?;
    Some(Location::new(after, Some(gtid)))
}

/// `SHOW MASTER STATUS` plus the flavour's GTID state; None when binary logging is off.
pub async fn master_status(
    conn: &mut Conn,
    server: &ServerInfo,
) -> Result<Option<Location>, DumpError> {
    let row: Option<mysql_async::Row> =
        conn.query_first("SHOW MASTER STATUS").await.map_err(|e| {
            DumpError::query(
                "SHOW MASTER STATUS (needs BINLOG MONITOR / REPLICATION CLIENT)",
                e,
            )
        })?;
    let Some(row) = row else { return Ok(None) };
    let file: Option<String> = row.get(0);
    let pos: Option<u64> = row.get(1);
    let (Some(file), Some(pos)) = (file, pos) else {
        return Ok(None);
    };
    let bp = BinlogPos::new(file, pos);
    let gtid = match server.flavor {
        Flavor::Mariadb => {
            let g: Option<String> = conn
                .query_first("SELECT @@GLOBAL.gtid_binlog_pos")
                .await
                .map_err(|e| DumpError::query("reading gtid_binlog_pos", e))?;
            match g {
                Some(s) => Some(
                    GtidSet::parse_mariadb(&s).map_err(|e| DumpError::Definite(e.to_string()))?,
                ),
                None => None,
            }
        }
        _ => {
            let g: Option<String> = row.get(4);
            match g.filter(|s| !s.trim().is_empty()) {
                Some(s) => Some(
                    GtidSet::parse_mysql(&s.replace('\n', ""))
                        .map_err(|e| DumpError::Definite(e.to_string()))?,
                ),
                None => None,
            }
        }
    };
    Ok(Some(Location::new(bp, gtid)))
}

async fn connect_workers(spec: &ConnSpec, n: usize) -> Result<Vec<DataConn>, DumpError> {
    let futs = (0..n).map(|_| DataConn::open(spec));
    let conns = futures::future::try_join_all(futs).await?;
    Ok(conns)
}

async fn try_strategy(
    spec: &ConnSpec,
    server: &ServerInfo,
    strategy: Consistency,
    n: usize,
    tables: &[(String, String)],
) -> Result<SnapshotSet, DumpError> {
    let mut ctl = spec.connect().await?;
    let conns = connect_workers(spec, n).await?;
    let taken_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (workers, blocked) = match strategy {
        Consistency::BackupStage | Consistency::Snapshot => {
            mariadb_snapshots(&mut ctl, conns, server, strategy).await?
        }
        Consistency::Flush | Consistency::Lock => {
            locked_snapshots(&mut ctl, conns, server, strategy, tables).await?
        }
        Consistency::None => (
            unlocked_snapshots(&mut ctl, conns, server).await?,
            Duration::ZERO,
        ),
        Consistency::Auto => {
            return Err(DumpError::Definite(
                "internal: auto is not a strategy".into(),
            ))
        }
    };
    let _ = ctl.disconnect().await;
    log_opened(&workers, strategy, blocked);
    Ok(SnapshotSet {
        workers,
        strategy,
        blocked,
        taken_at,
    })
}

/// MariaDB snapshots with their exact positions (`binlog_snapshot_file/position`), opened
/// under BACKUP STAGE BLOCK_COMMIT (`backup-stage`) or without any lock (`snapshot`).
async fn mariadb_snapshots(
    ctl: &mut Conn,
    mut conns: Vec<DataConn>,
    server: &ServerInfo,
    strategy: Consistency,
) -> Result<(Vec<SnapshotWorker>, Duration), DumpError> {
    let what = strategy.name();
    let n = conns.len();
    let mut blocked = Duration::ZERO;
    let mut workers = Vec::with_capacity(n);
    if server.flavor != Flavor::Mariadb {
        return Err(DumpError::Definite(format!(
            "--consistency {what} needs MariaDB (binlog_snapshot_file/position); this server is {} {}: use flush or lock",
            server.flavor, server.version
        )));
    }
    let t0 = Instant::now();
    if strategy == Consistency::BackupStage {
        ctl.query_drop("BACKUP STAGE START")
            .await
            .map_err(|e| DumpError::query("BACKUP STAGE START (needs RELOAD)", e))?;
        if let Err(e) = ctl.query_drop("BACKUP STAGE BLOCK_COMMIT").await {
            let _ = ctl.query_drop("BACKUP STAGE END").await;
            return Err(DumpError::query("BACKUP STAGE BLOCK_COMMIT", e));
        }
    }
    let opened = futures::future::join_all(conns.iter_mut().map(|c| async move {
        begin_snapshot(c).await?;
        snapshot_position(c).await
    }))
    .await;
    // While commits are blocked the server's current GTID state is the snapshots'.
    let current = current_gtid_state(ctl).await;
    if strategy == Consistency::BackupStage {
        let end = ctl.query_drop("BACKUP STAGE END").await;
        blocked = t0.elapsed();
        end.map_err(|e| DumpError::query("BACKUP STAGE END", e))?;
    }
    let mut positions = Vec::with_capacity(n);
    for r in opened {
        positions.push(r?);
    }
    if strategy == Consistency::BackupStage && positions.windows(2).any(|w| w[0] != w[1]) {
        return Err(DumpError::Failed(Failure::transient(
            "opening the worker snapshots under BLOCK_COMMIT",
            format!("they are at different binlog positions ({positions:?})"),
        )));
    }
    let mut known: Vec<Location> = current.into_iter().collect();
    for (conn, pos) in conns.into_iter().zip(positions) {
        let location = match pos {
            Some(p) => match known.iter().find(|l| l.pos == p) {
                Some(l) => Some(l.clone()),
                None => {
                    // BINLOG_GTID_POS scans the binlog file up to `p`: once per position.
                    let l = Location::new(p.clone(), mariadb_gtid_at(ctl, &p).await?);
                    known.push(l.clone());
                    Some(l)
                }
            },
            None => None,
        };
        workers.push(SnapshotWorker { conn, location });
    }
    Ok((workers, blocked))
}

/// Snapshots opened while FLUSH TABLES WITH READ LOCK (`flush`) or LOCK TABLES (`lock`)
/// holds writes; every worker shares the position read under the lock.
async fn locked_snapshots(
    ctl: &mut Conn,
    mut conns: Vec<DataConn>,
    server: &ServerInfo,
    strategy: Consistency,
    tables: &[(String, String)],
) -> Result<(Vec<SnapshotWorker>, Duration), DumpError> {
    let what = strategy.name();
    let mut workers = Vec::with_capacity(conns.len());
    let t0 = Instant::now();
    if strategy == Consistency::Flush {
        ctl.query_drop("FLUSH TABLES WITH READ LOCK")
            .await
            .map_err(|e| DumpError::query("FLUSH TABLES WITH READ LOCK (needs RELOAD)", e))?;
    } else {
        if tables.is_empty() {
            return Err(DumpError::Definite(
                "--consistency lock: no tables to lock".into(),
            ));
        }
        let list: Vec<String> = tables
            .iter()
            .map(|(d, t)| format!("{} READ", qualified(d, t)))
            .collect();
        ctl.query_drop(format!("LOCK TABLES {}", list.join(",")))
            .await
            .map_err(|e| DumpError::query("LOCK TABLES (needs LOCK TABLES and SELECT)", e))?;
    }
    let opened = futures::future::join_all(conns.iter_mut().map(begin_snapshot)).await;
    let status = master_status(ctl, server).await;
    let mut positions = Vec::new();
    if server.flavor == Flavor::Mariadb {
        for c in conns.iter_mut() {
            positions.push(snapshot_position(c).await.ok().flatten());
        }
    }
    let unlock = ctl.query_drop("UNLOCK TABLES").await;
    let blocked = t0.elapsed();
    for r in opened {
        r?;
    }
    unlock.map_err(|e| DumpError::query("UNLOCK TABLES", e))?;
    if positions.windows(2).any(|w| w[0] != w[1]) {
        return Err(DumpError::Failed(Failure::transient(
            format!("opening the worker snapshots under {what}"),
            format!("they are at different binlog positions ({positions:?})"),
        )));
    }
    let location = status?;
    for conn in conns {
        workers.push(SnapshotWorker {
            conn,
            location: location.clone(),
        });
    }
    Ok((workers, blocked))
}

/// Snapshots without any consistency between them (`none`).
async fn unlocked_snapshots(
    ctl: &mut Conn,
    mut conns: Vec<DataConn>,
    server: &ServerInfo,
) -> Result<Vec<SnapshotWorker>, DumpError> {
    let mut workers = Vec::with_capacity(conns.len());
    let location = master_status(ctl, server).await.unwrap_or(None);
    for c in conns.iter_mut() {
        begin_snapshot(c).await?;
    }
    for conn in conns {
        workers.push(SnapshotWorker {
            conn,
            location: location.clone(),
        });
    }
    Ok(workers)
}

fn log_opened(workers: &[SnapshotWorker], strategy: Consistency, blocked: Duration) {
    let bulk = workers
        .iter()
        .filter(|w| matches!(w.conn, DataConn::Wire(_)))
        .count();
    tracing::info!(
        strategy = strategy.name(),
        blocked_ms = blocked.as_millis() as u64,
        reader = if bulk == workers.len() {
            "bulk"
        } else {
            "driver"
        },
        location = workers
            .first()
            .and_then(|w| w.location.as_ref())
            .map(ToString::to_string)
            .unwrap_or_else(|| "none (binary log off)".into()),
        "consistent snapshot opened on {} connections; {} blocked for {} ms",
        workers.len(),
        match strategy {
            Consistency::BackupStage => "commits were",
            Consistency::Flush | Consistency::Lock => "tables were",
            _ => "nothing was",
        },
        blocked.as_millis()
    );
}
