//! Checkpoints and work sharing in the target's `ferry_meta` schema.
//!
//! The target database is the coordinator. Tables (all versioned by a `_v1` suffix):
//! - `load_task_v1`: one row per task: which dump, chunk size, whether views/post are done.
//! - `load_table_v1`: per table: 1 = created and loading, 2 = finished (indexes restored);
//!   the deferred index definitions wait here.
//! - `load_file_v1`: per data file: 0 pending, 1 claimed by `owner`, 2 done.
//! - `load_chunk_v1`: one row per loaded chunk of a file, inserted **in the same transaction
//!   that commits the chunk's rows**. Its primary key makes a second commit of the same chunk
//!   impossible: whoever inserts second gets a duplicate key and rolls back its rows.
//! - `load_owner_v1`: the processes working on a task, each holding a named lock
//!   (`GET_LOCK`) on its own connection for its whole life.
//!
//! Invariants: a chunk's rows are in the target iff its `load_chunk_v1` row is; a claim on a
//! file is only a hint of who works on it — it may be taken over when its owner's lock is free
//! (the process died: the server released the lock with its connection) or its heartbeat is
//! older than the lease. Taking over is always safe, because commits are guarded per chunk.

use crate::error::{from_driver, LoadError};
use ferry_shared::failure::Failure;
use ferry_shared::meta::MetaTable;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use sha1::Digest;
use std::collections::HashMap;
use std::time::Duration;

pub use ferry_shared::meta::META_DB;

pub const TABLE_LOADING: u8 = 1;
pub const TABLE_FINISHED: u8 = 2;

pub const FILE_PENDING: u8 = 0;
pub const FILE_CLAIMED: u8 = 1;
pub const FILE_DONE: u8 = 2;

/// The loader's checkpoint tables (see the module doc).
pub const TABLES: [MetaTable; 5] = [
    MetaTable {
        family: "load_task",
        version: 1,
        definition: "task_id VARCHAR(64) NOT NULL PRIMARY KEY,
        dump VARCHAR(2048) NOT NULL,
        chunk_size BIGINT NOT NULL,
        created_at DATETIME(6) NOT NULL,
        views_done TINYINT NOT NULL DEFAULT 0,
        finished_at DATETIME(6) NULL",
    },
    MetaTable {
        family: "load_table",
        version: 1,
        definition: "task_id VARCHAR(64) NOT NULL,
        db VARCHAR(64) NOT NULL,
        tbl VARCHAR(64) NOT NULL,
        state TINYINT NOT NULL,
        restore_sql LONGTEXT NULL,
        PRIMARY KEY (task_id, db, tbl)",
    },
    MetaTable {
        family: "load_file",
        version: 1,
        definition: "task_id VARCHAR(64) NOT NULL,
        file_id CHAR(40) NOT NULL,
        file VARCHAR(2048) NOT NULL,
        db VARCHAR(64) NOT NULL,
        tbl VARCHAR(64) NOT NULL,
        size BIGINT NOT NULL,
        state TINYINT NOT NULL DEFAULT 0,
        owner VARCHAR(128) NULL,
        claimed_at DATETIME(6) NULL,
        `rows` BIGINT NULL,
        PRIMARY KEY (task_id, file_id),
        KEY by_table (task_id, db, tbl, state)",
    },
    MetaTable {
        family: "load_chunk",
        version: 1,
        definition: "task_id VARCHAR(64) NOT NULL,
        file_id CHAR(40) NOT NULL,
        chunk INT NOT NULL,
        start_offset BIGINT NOT NULL,
        end_offset BIGINT NOT NULL,
        `rows` BIGINT NOT NULL,
        owner VARCHAR(128) NOT NULL,
        done_at DATETIME(6) NOT NULL,
        PRIMARY KEY (task_id, file_id, chunk)",
    },
    MetaTable {
        family: "load_owner",
        version: 1,
        definition: "task_id VARCHAR(64) NOT NULL,
        owner VARCHAR(128) NOT NULL,
        lock_name VARCHAR(64) NOT NULL,
        heartbeat DATETIME(6) NOT NULL,
        PRIMARY KEY (task_id, owner)",
    },
];

pub fn file_id(name: &str) -> String {
    hex::encode(sha1::Sha1::digest(name.as_bytes()))
}

fn short_hash(s: &str) -> String {
    file_id(s)[..12].to_string()
}

/// Creates the checkpoint schema (idempotent); refuses a newer layout left by a newer ferry.
pub async fn ensure_schema(conn: &mut Conn) -> Result<(), LoadError> {
    ferry_shared::meta::ensure(conn, &TABLES)
        .await
        .map_err(LoadError::Failed)
}

/// Name of a named lock for `task` and `what` (at most 64 characters).
pub fn lock_name(task: &str, what: &str) -> String {
    format!("ferry:{}:{}", short_hash(task), short_hash(what))
}

/// Takes a named lock, waiting up to `wait`.
pub async fn get_lock(conn: &mut Conn, name: &str, wait: Duration) -> Result<(), LoadError> {
    let got: Option<Option<i64>> = conn
        .exec_first("SELECT GET_LOCK(?, ?)", (name, wait.as_secs()))
        .await
        .map_err(|e| from_driver(e, "GET_LOCK"))?;
    match got.flatten() {
        Some(1) => Ok(()),
        _ => Err(LoadError::Failed(Failure::transient(
            format!("taking the lock {name}"),
            format!(
                "another ferry load held it for more than {}s",
                wait.as_secs()
            ),
        ))),
    }
}

pub async fn release_lock(conn: &mut Conn, name: &str) -> Result<(), LoadError> {
    conn.exec_drop("DO RELEASE_LOCK(?)", (name,))
        .await
        .map_err(|e| from_driver(e, "RELEASE_LOCK"))
}

/// The task row: creates it, or checks it belongs to the same dump. Returns the chunk size to
/// use (the one the task started with).
pub async fn register_task(
    conn: &mut Conn,
    task: &str,
    dump: &str,
    chunk_size: u64,
) -> Result<u64, LoadError> {
    let row: Option<(String, u64)> = conn
        .exec_first(
            "SELECT dump, chunk_size FROM `ferry_meta`.`load_task_v1` WHERE task_id = ?",
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_task_v1"))?;
    match row {
        Some((d, cs)) => {
            if d != dump {
                return Err(LoadError::Dump(format!(
                    "task `{task}` on the target belongs to the dump {d}, not {dump}: give another --task-id, or drop its rows from `ferry_meta` to start over"
                )));
            }
            if cs != chunk_size {
                tracing::info!(
                    chunk_size = cs,
                    "resuming with the chunk size the task started with"
                );
            }
            Ok(cs)
        }
        None => {
            conn.exec_drop(
                "INSERT IGNORE INTO `ferry_meta`.`load_task_v1` (task_id, dump, chunk_size, created_at) VALUES (?, ?, ?, NOW(6))",
                (task, dump, chunk_size),
            )
            .await
            .map_err(|e| from_driver(e, "writing ferry_meta.load_task_v1"))?;
            Ok(chunk_size)
        }
    }
}

pub async fn table_state(
    conn: &mut Conn,
    task: &str,
    db: &str,
    tbl: &str,
) -> Result<Option<(u8, Option<String>)>, LoadError> {
    conn.exec_first(
        "SELECT state, restore_sql FROM `ferry_meta`.`load_table_v1` WHERE task_id = ? AND db = ? AND tbl = ?",
        (task, db, tbl),
    )
    .await
    .map_err(|e| from_driver(e, "reading ferry_meta.load_table_v1"))
}

pub async fn set_table_state(
    conn: &mut Conn,
    task: &str,
    db: &str,
    tbl: &str,
    state: u8,
    restore_sql: Option<&str>,
) -> Result<(), LoadError> {
    conn.exec_drop(
        "INSERT INTO `ferry_meta`.`load_table_v1` (task_id, db, tbl, state, restore_sql) VALUES (?, ?, ?, ?, ?) \
         ON DUPLICATE KEY UPDATE state = VALUES(state), restore_sql = COALESCE(VALUES(restore_sql), restore_sql)",
        (task, db, tbl, state, restore_sql),
    )
    .await
    .map_err(|e| from_driver(e, "writing ferry_meta.load_table_v1"))
}

/// Every table row of a task, by `(db, table)`: its state and deferred index definitions.
pub async fn table_states(conn: &mut Conn, task: &str) -> Result<TableStates, LoadError> {
    let rows: Vec<(String, String, u8, Option<String>)> = conn
        .exec(
            "SELECT db, tbl, state, restore_sql FROM `ferry_meta`.`load_table_v1` WHERE task_id = ?",
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_table_v1"))?;
    Ok(rows
        .into_iter()
        .map(|(d, t, s, r)| ((d, t), (s, r)))
        .collect())
}

/// `(db, table) -> (state, restore_sql)` of a task.
pub type TableStates = HashMap<(String, String), (u8, Option<String>)>;

/// A data file to register: name, db, table, size.
pub type FileRow = (String, String, String, u64);

/// Rows per multi-row statement of [`register`].
const REGISTER_BATCH: usize = 500;

/// Registers `files` (pending) and moves `tables` to their state, in one transaction, many rows
/// a statement. Deferred index definitions already recorded are kept (as [`set_table_state`]
/// with `None` does).
pub async fn register(
    conn: &mut Conn,
    task: &str,
    files: &[FileRow],
    tables: &[(String, String, u8)],
) -> Result<(), LoadError> {
    let what = "registering files and tables in ferry_meta";
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| from_driver(e, what))?;
    for part in files.chunks(REGISTER_BATCH) {
        let mut params: Vec<mysql_async::Value> = Vec::with_capacity(part.len() * 6);
        for (name, db, tbl, size) in part {
            params.extend([
                task.into(),
                file_id(name).into(),
                name.as_str().into(),
                db.as_str().into(),
                tbl.as_str().into(),
                (*size).into(),
            ]);
        }
        let sql = format!(
            "INSERT IGNORE INTO `ferry_meta`.`load_file_v1` (task_id, file_id, file, db, tbl, size) VALUES {}",
            vec!["(?, ?, ?, ?, ?, ?)"; part.len()].join(", ")
        );
        conn.exec_drop(sql, params)
            .await
            .map_err(|e| from_driver(e, what))?;
    }
    for part in tables.chunks(REGISTER_BATCH) {
        let mut params: Vec<mysql_async::Value> = Vec::with_capacity(part.len() * 4);
        for (db, tbl, state) in part {
            params.extend([
                task.into(),
                db.as_str().into(),
                tbl.as_str().into(),
                (*state).into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO `ferry_meta`.`load_table_v1` (task_id, db, tbl, state) VALUES {} \
             ON DUPLICATE KEY UPDATE state = VALUES(state)",
            vec!["(?, ?, ?, ?)"; part.len()].join(", ")
        );
        conn.exec_drop(sql, params)
            .await
            .map_err(|e| from_driver(e, what))?;
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| from_driver(e, what))
}

/// A process taking part in a task: holds its lock on `conn` and beats its heartbeat.
pub struct Owner {
    pub id: String,
    pub lock: String,
}

impl Owner {
    pub async fn register(conn: &mut Conn, task: &str) -> Result<Owner, LoadError> {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "host".into());
        let id = format!(
            "{}:{}:{:08x}",
            host.chars().take(80).collect::<String>(),
            std::process::id(),
            rand::random::<u32>()
        );
        let lock = lock_name(task, &id);
        get_lock(conn, &lock, Duration::from_secs(5)).await?;
        conn.exec_drop(
            "REPLACE INTO `ferry_meta`.`load_owner_v1` (task_id, owner, lock_name, heartbeat) VALUES (?, ?, ?, NOW(6))",
            (task, &id, &lock),
        )
        .await
        .map_err(|e| from_driver(e, "writing ferry_meta.load_owner_v1"))?;
        Ok(Owner { id, lock })
    }

    pub async fn heartbeat(conn: &mut Conn, task: &str, id: &str) -> Result<(), LoadError> {
        conn.exec_drop(
            "UPDATE `ferry_meta`.`load_owner_v1` SET heartbeat = NOW(6) WHERE task_id = ? AND owner = ?",
            (task, id),
        )
        .await
        .map_err(|e| from_driver(e, "heartbeat"))
    }
}

/// A file claimed by someone: id, name, owner, the owner's lock, heartbeat age in seconds.
type HeldFile = (String, String, String, Option<String>, Option<i64>);

/// A claimed file.
#[derive(Debug, Clone)]
pub struct Claim {
    pub file: String,
    pub file_id: String,
    pub took_over: Option<String>,
}

/// Files claimed at most at once (see [`claim_next`]).
const CLAIM_BATCH: usize = 64;

/// Claims the next files to load: pending ones (largest first) — the first, then more while
/// their sizes add up to at most `budget` bytes, so small files are claimed many in one
/// transaction and big ones one by one — else one whose owner is gone. Empty when nothing is
/// claimable now; `busy` then tells how many files other live processes still hold.
///
/// Every claimer walks the pending files in the same order and locks each row it claims until
/// its commit, so two claimers wait for each other instead of deadlocking, and the second sees
/// a row the first claimed as no longer pending.
pub async fn claim_next(
    conn: &mut Conn,
    task: &str,
    owner: &str,
    lease: Duration,
    budget: u64,
    busy: &mut u64,
) -> Result<Vec<Claim>, LoadError> {
    *busy = 0;
    let pending: Vec<(String, String, u64)> = conn
        .exec(
            format!("SELECT file_id, file, size FROM `ferry_meta`.`load_file_v1` WHERE task_id = ? AND state = 0 ORDER BY size DESC, file_id LIMIT {CLAIM_BATCH}"),
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_file_v1"))?;
    if !pending.is_empty() {
        let claimed = claim_pending(conn, task, owner, pending, budget).await;
        if claimed.is_err() {
            let _ = conn.query_drop("ROLLBACK").await;
        }
        let claimed = claimed?;
        if !claimed.is_empty() {
            return Ok(claimed);
        }
    }
    // Files held by others: take over those whose owner is gone.
    let held: Vec<HeldFile> = conn
        .exec(
            "SELECT f.file_id, f.file, f.owner, o.lock_name, TIMESTAMPDIFF(SECOND, o.heartbeat, NOW(6)) \
             FROM `ferry_meta`.`load_file_v1` f LEFT JOIN `ferry_meta`.`load_owner_v1` o \
               ON o.task_id = f.task_id AND o.owner = f.owner \
             WHERE f.task_id = ? AND f.state = 1 AND f.owner <> ?",
            (task, owner),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_file_v1"))?;
    for (fid, file, old, lock, age) in held {
        let alive = match &lock {
            Some(l) => {
                let used: Option<Option<u64>> = conn
                    .exec_first("SELECT IS_USED_LOCK(?)", (l,))
                    .await
                    .map_err(|e| from_driver(e, "IS_USED_LOCK"))?;
                used.flatten().is_some() && age.unwrap_or(i64::MAX) < lease.as_secs() as i64
            }
            None => false,
        };
        if alive {
            *busy += 1;
            continue;
        }
        conn.exec_drop(
            "UPDATE `ferry_meta`.`load_file_v1` SET owner = ?, claimed_at = NOW(6) WHERE task_id = ? AND file_id = ? AND state = 1 AND owner = ?",
            (owner, task, &fid, &old),
        )
        .await
        .map_err(|e| from_driver(e, "taking over a file"))?;
        if conn.affected_rows() == 1 {
            return Ok(vec![Claim {
                file,
                file_id: fid,
                took_over: Some(old),
            }]);
        }
    }
    Ok(Vec::new())
}

/// Claims files of `pending` in order, in one transaction, until their sizes pass `budget`.
async fn claim_pending(
    conn: &mut Conn,
    task: &str,
    owner: &str,
    pending: Vec<(String, String, u64)>,
    budget: u64,
) -> Result<Vec<Claim>, LoadError> {
    conn.query_drop("START TRANSACTION")
        .await
        .map_err(|e| from_driver(e, "claiming files"))?;
    let mut claimed = Vec::new();
    let mut bytes = 0u64;
    for (fid, file, size) in pending {
        if !claimed.is_empty() && bytes.saturating_add(size) > budget {
            break;
        }
        conn.exec_drop(
            "UPDATE `ferry_meta`.`load_file_v1` SET state = 1, owner = ?, claimed_at = NOW(6) WHERE task_id = ? AND file_id = ? AND state = 0",
            (owner, task, &fid),
        )
        .await
        .map_err(|e| from_driver(e, "claiming a file"))?;
        if conn.affected_rows() == 1 {
            bytes = bytes.saturating_add(size);
            claimed.push(Claim {
                file,
                file_id: fid,
                took_over: None,
            });
        }
    }
    conn.query_drop("COMMIT")
        .await
        .map_err(|e| from_driver(e, "claiming files"))?;
    Ok(claimed)
}

/// Chunks already loaded (by anyone) of the files `fids`, by file id.
pub async fn done_chunks(
    conn: &mut Conn,
    task: &str,
    fids: &[&str],
) -> Result<HashMap<String, Vec<(u32, u64)>>, LoadError> {
    let mut out: HashMap<String, Vec<(u32, u64)>> = HashMap::new();
    if fids.is_empty() {
        return Ok(out);
    }
    let mut params: Vec<mysql_async::Value> = vec![task.into()];
    params.extend(fids.iter().map(|f| (*f).into()));
    let rows: Vec<(String, u32, u64)> = conn
        .exec(
            format!(
                "SELECT file_id, chunk, `rows` FROM `ferry_meta`.`load_chunk_v1` WHERE task_id = ? AND file_id IN ({})",
                vec!["?"; fids.len()].join(", ")
            ),
            params,
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_chunk_v1"))?;
    for (fid, chunk, rows) in rows {
        out.entry(fid).or_default().push((chunk, rows));
    }
    Ok(out)
}

pub async fn finish_file(
    conn: &mut Conn,
    task: &str,
    fid: &str,
    rows: u64,
) -> Result<(), LoadError> {
    conn.exec_drop(
        "UPDATE `ferry_meta`.`load_file_v1` SET state = 2, `rows` = ? WHERE task_id = ? AND file_id = ?",
        (rows, task, fid),
    )
    .await
    .map_err(|e| from_driver(e, "writing ferry_meta.load_file_v1"))
}

/// Files of a table not done yet.
pub async fn table_files_left(
    conn: &mut Conn,
    task: &str,
    db: &str,
    tbl: &str,
) -> Result<u64, LoadError> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM `ferry_meta`.`load_file_v1` WHERE task_id = ? AND db = ? AND tbl = ? AND state < 2",
            (task, db, tbl),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_file_v1"))?;
    Ok(n.unwrap_or(0))
}

/// Files of the task not done yet.
pub async fn files_left(conn: &mut Conn, task: &str) -> Result<u64, LoadError> {
    let n: Option<u64> = conn
        .exec_first(
            "SELECT COUNT(*) FROM `ferry_meta`.`load_file_v1` WHERE task_id = ? AND state < 2",
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_file_v1"))?;
    Ok(n.unwrap_or(0))
}

/// Rows loaded per table of a task, by `(db, table)`, from the chunk checkpoints.
pub async fn loaded_rows(
    conn: &mut Conn,
    task: &str,
) -> Result<HashMap<(String, String), u64>, LoadError> {
    let rows: Vec<(String, String, Option<u64>)> = conn
        .exec(
            "SELECT f.db, f.tbl, CAST(SUM(c.`rows`) AS UNSIGNED) FROM `ferry_meta`.`load_chunk_v1` c JOIN `ferry_meta`.`load_file_v1` f \
               ON f.task_id = c.task_id AND f.file_id = c.file_id WHERE c.task_id = ? GROUP BY f.db, f.tbl",
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_chunk_v1"))?;
    Ok(rows
        .into_iter()
        .map(|(d, t, n)| ((d, t), n.unwrap_or(0)))
        .collect())
}

pub async fn views_done(conn: &mut Conn, task: &str) -> Result<bool, LoadError> {
    let n: Option<u8> = conn
        .exec_first(
            "SELECT views_done FROM `ferry_meta`.`load_task_v1` WHERE task_id = ?",
            (task,),
        )
        .await
        .map_err(|e| from_driver(e, "reading ferry_meta.load_task_v1"))?;
    Ok(n.unwrap_or(0) == 1)
}

pub async fn set_views_done(conn: &mut Conn, task: &str) -> Result<(), LoadError> {
    conn.exec_drop(
        "UPDATE `ferry_meta`.`load_task_v1` SET views_done = 1, finished_at = NOW(6) WHERE task_id = ?",
        (task,),
    )
    .await
    .map_err(|e| from_driver(e, "writing ferry_meta.load_task_v1"))
}
