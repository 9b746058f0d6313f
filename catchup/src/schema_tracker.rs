//! The schema tracker: what ferry knows of each replicated table.
//!
//! For the target it describes each table once (columns, primary key, other unique keys,
//! generated, fixed-length binary and unsigned columns, read by
//! [`ferry_shared::introspect::describe_one`] as dump and load read tables) and hands out one
//! shared [`Table`] per table, so that a rows event takes it without copying column lists. A
//! DDL in the stream forgets every description.
//!
//! For binlogs without column names (`binlog_row_metadata=NO_LOG/MINIMAL`) it keeps each
//! table's *source* columns: first the dump's (from its manifest), then after each DDL the
//! target's columns less the ones only the target has (added there by the operator, found
//! before the DDL runs). That state is persisted in `ferry_meta.catchup_schema_v1` in the same
//! transaction as the DDL's checkpoint, so a restart after the DDL maps columns as the source
//! has them after it, and a restart before it as before.
//!
//! Definite errors: a changed table that does not exist on the target (load the dump first);
//! a binlog without column names for a table the tracker does not know and the target has
//! fewer columns than the event.

use crate::apply::{self, TargetTable};
use crate::error::{db_err, CatchupError};
use ferry_shared::introspect;
use ferry_shared::meta::MetaTable;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

/// The schema tracker's state: per task and table, the source's columns after the last DDL
/// (one name a line), written with the DDL's checkpoint.
pub(crate) const SCHEMA_TABLE: MetaTable = MetaTable {
    family: "catchup_schema",
    version: 1,
    definition: "task_id VARCHAR(64) NOT NULL,
    db VARCHAR(64) NOT NULL,
    tbl VARCHAR(64) NOT NULL,
    columns LONGTEXT NOT NULL,
    PRIMARY KEY (task_id, db, tbl)",
};

/// How the coordinator writes to one target table.
pub(crate) struct Table {
    pub(crate) target: TargetTable,
    /// `target.qualified` and the key's column list (`apply::key_columns`), shared by every
    /// change staged for the table.
    pub(crate) name: Arc<str>,
    pub(crate) key_cols: Arc<str>,
    /// Route every change of the table to one worker (no primary key, or other unique keys
    /// whose collisions REPLACE would resolve differently out of order).
    pub(crate) serial: bool,
}

pub(crate) struct SchemaTracker {
    /// Shared, so that each rows event takes the table without copying its column lists.
    tables: HashMap<(String, String), Arc<Table>>,
    /// The schema tracker: each table's source columns (from the dump, then kept up to date
    /// through the DDL in the stream, persisted with the checkpoint), for binlogs without
    /// column names (binlog_row_metadata=NO_LOG/MINIMAL).
    source_cols: HashMap<(String, String), Vec<String>>,
    /// Target columns that the source does not have (added on the target by the operator).
    extras: HashMap<(String, String), Vec<String>>,
}

/// The target's column names of a table (empty: no such table).
async fn target_columns(
    tgt: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Vec<String>, CatchupError> {
    Ok(describe_target(tgt, db, table)
        .await?
        .map(|t| t.columns.into_iter().map(|c| c.name).collect())
        .unwrap_or_default())
}

/// The target's description of a table, read as every step reads it
/// ([`introspect::describe_one`]); `None`: no such table.
async fn describe_target(
    tgt: &mut Conn,
    db: &str,
    table: &str,
) -> Result<Option<introspect::Table>, CatchupError> {
    introspect::describe_one(tgt, db, table)
        .await
        .map_err(db_err("reading the target's columns and keys"))
}

fn without(cols: Vec<String>, drop: &[String]) -> Vec<String> {
    cols.into_iter()
        .filter(|c| !drop.iter().any(|d| d.eq_ignore_ascii_case(c)))
        .collect()
}

impl SchemaTracker {
    /// The tracker at the start of a run: the dump's columns, then the state persisted with
    /// the last DDL's checkpoint (which is newer).
    pub(crate) async fn load(
        tgt: &mut Conn,
        task: &str,
        dump_columns: HashMap<(String, String), Vec<String>>,
    ) -> Result<Self, CatchupError> {
        let mut tracker = SchemaTracker {
            tables: HashMap::new(),
            source_cols: dump_columns,
            extras: HashMap::new(),
        };
        let persisted: Vec<(String, String, String)> = tgt
            .exec(
                "SELECT db, tbl, columns FROM `ferry_meta`.`catchup_schema_v1` WHERE task_id = ?",
                (task,),
            )
            .await
            .map_err(db_err("reading the schema tracker's state"))?;
        for (db, tbl, cols) in persisted {
            tracker
                .source_cols
                .insert((db, tbl), cols.split('\n').map(str::to_string).collect());
        }
        Ok(tracker)
    }

    /// A DDL ran: every table is described again when next used.
    pub(crate) fn forget_tables(&mut self) {
        self.tables.clear();
    }

    /// Target columns the tracked source table lacks (computed once per table).
    pub(crate) async fn extras_of(
        &mut self,
        tgt: &mut Conn,
        key: &(String, String),
    ) -> Result<Vec<String>, CatchupError> {
        if let Some(e) = self.extras.get(key) {
            return Ok(e.clone());
        }
        let Some(src) = self.source_cols.get(key) else {
            return Ok(Vec::new());
        };
        let on_target = target_columns(tgt, &key.0, &key.1).await?;
        let extra = without(on_target, src);
        self.extras.insert(key.clone(), extra.clone());
        Ok(extra)
    }

    /// Tracked tables a DDL statement may change (it names them).
    pub(crate) fn touched_by(&self, upper_sql: &str) -> Vec<(String, String)> {
        self.source_cols
            .keys()
            .filter(|(_, t)| upper_sql.contains(&t.to_ascii_uppercase()))
            .cloned()
            .collect()
    }

    /// After a DDL: the touched tables' source columns are the target's less its extras;
    /// a table gone from the target is no longer tracked. Returns the statements that persist
    /// the new state.
    pub(crate) async fn track_ddl(
        &mut self,
        tgt: &mut Conn,
        task: &str,
        touched: &[(String, String)],
        persist: &mut String,
    ) -> Result<(), CatchupError> {
        for key in touched {
            let extra = self.extras.get(key).cloned().unwrap_or_default();
            let now = target_columns(tgt, &key.0, &key.1).await?;
            let q = ferry_shared::ident::quote_str;
            if now.is_empty() {
                self.source_cols.remove(key);
                self.extras.remove(key);
                let _ = write!(
                    persist,
                    "DELETE FROM `ferry_meta`.`catchup_schema_v1` WHERE task_id = {} AND db = {} AND tbl = {};",
                    q(task),
                    q(&key.0),
                    q(&key.1)
                );
            } else {
                let cols = without(now, &extra);
                let _ = write!(
                    persist,
                    "REPLACE INTO `ferry_meta`.`catchup_schema_v1` (task_id, db, tbl, columns) VALUES ({}, {}, {}, {});",
                    q(task),
                    q(&key.0),
                    q(&key.1),
                    q(&cols.join("\n"))
                );
                self.source_cols.insert(key.clone(), cols);
            }
        }
        Ok(())
    }

    pub(crate) async fn table(
        &mut self,
        tgt: &mut Conn,
        tm: &crate::rows::TableMap,
    ) -> Result<Arc<Table>, CatchupError> {
        let k = (tm.db.clone(), tm.table.clone());
        if let Some(t) = self.tables.get(&k) {
            if t.target.columns.len() == tm.columns.len() {
                return Ok(t.clone());
            }
        }
        let Some(described) = describe_target(tgt, &tm.db, &tm.table).await? else {
            return Err(CatchupError::Definite(format!(
                "`{}`.`{}` changed on the source but does not exist on the target: load the dump first",
                tm.db, tm.table
            )));
        };
        let target_cols: Vec<String> = described.columns.iter().map(|c| c.name.clone()).collect();
        let tracked = self
            .source_cols
            .get(&k)
            .filter(|c| c.len() == tm.columns.len())
            .cloned();
        let columns: Vec<String> = match tm.columns.iter().map(|c| c.name.clone()).collect::<Option<Vec<_>>>() {
            Some(names) => names,
            None if tracked.is_some() => tracked.unwrap_or_default(),
            None if target_cols.len() >= tm.columns.len() => target_cols[..tm.columns.len()].to_vec(),
            None => {
                return Err(CatchupError::Definite(format!(
                    "`{}`.`{}`: the binlog has no column names (binlog_row_metadata=FULL) and the target has fewer columns",
                    tm.db, tm.table
                )))
            }
        };
        let pk: Vec<&str> = described
            .primary_key()
            .map(|k| k.columns.iter().map(|c| c.name.as_str()).collect())
            .unwrap_or_default();
        let key: Vec<usize> = pk
            .iter()
            .filter_map(|p| columns.iter().position(|c| c.eq_ignore_ascii_case(p)))
            .collect();
        let key = if !pk.is_empty() && key.len() == pk.len() {
            key
        } else {
            Vec::new()
        };
        let described_of = |c: &String| {
            described
                .columns
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(c))
        };
        let generated = columns
            .iter()
            .map(|c| described_of(c).is_some_and(|d| d.generated))
            .collect();
        let fixed_binary = columns
            .iter()
            .map(|c| match described_of(c) {
                Some(d) => match d.data_type.as_str() {
                    "inet6" | "uuid" => 16,
                    "binary" => d.octet_length.unwrap_or(0) as usize,
                    _ => 0,
                },
                None => 0,
            })
            .collect();
        let unsigned = columns
            .iter()
            .map(|c| described_of(c).is_some_and(|d| d.unsigned))
            .collect();
        let target = TargetTable {
            qualified: ferry_shared::ident::qualified(&tm.db, &tm.table),
            columns,
            key,
            generated,
            fixed_binary,
            unsigned,
        };
        let t = Arc::new(Table {
            serial: target.key.is_empty() || described.other_unique_keys().next().is_some(),
            name: target.qualified.as_str().into(),
            key_cols: if target.key.is_empty() {
                "".into()
            } else {
                apply::key_columns(&target).into()
            },
            target,
        });
        self.tables.insert(k, t.clone());
        Ok(t)
    }
}
