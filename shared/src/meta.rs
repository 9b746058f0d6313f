//! The `ferry_meta` schema on the target: where every step keeps its checkpoints, created and
//! versioned in this one place.
//!
//! Each table's name ends in its layout version (`load_chunk_v1`, `catchup_checkpoint_v2`).
//! A layout that changes gets a new name, never an ALTER: the rows an older ferry wrote stay
//! readable as they were, and an older ferry never misreads a newer layout as its own.
//!
//! Invariants and definite errors:
//! - [`ensure`] creates the schema and the tables a step names (idempotent, `IF NOT EXISTS`),
//!   all with the same engine and collation (`utf8mb4_bin`: task ids and names compare bytewise).
//! - A table of the same family with a newer version than this ferry knows (`load_chunk_v2` when
//!   it knows `_v1`) means a newer ferry has run this task: its checkpoints are in the newer
//!   table, and resuming from the older one would redo or skip work. [`ensure`] refuses that with
//!   an error naming the table and the fix, before anything is written.

use crate::failure::{Class, Classify, Failure};
use mysql_async::prelude::Queryable;

/// The schema name.
pub const META_DB: &str = "ferry_meta";

/// One checkpoint table: family name, layout version and its columns/keys.
#[derive(Debug, Clone, Copy)]
pub struct MetaTable {
    /// The name without its version suffix, e.g. `load_chunk`.
    pub family: &'static str,
    pub version: u32,
    /// The column and key definitions between the parentheses of CREATE TABLE.
    pub definition: &'static str,
}

impl MetaTable {
    /// `family_vN`.
    pub fn name(&self) -> String {
        format!("{}_v{}", self.family, self.version)
    }

    /// `` `ferry_meta`.`family_vN` ``, for statements.
    pub fn qualified(&self) -> String {
        format!("`{META_DB}`.`{}`", self.name())
    }

    fn create_sql(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 \
             COLLATE=utf8mb4_bin",
            self.qualified(),
            self.definition
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error(
        "the target's `{META_DB}` has `{found}`, a newer layout than the `{known}` this ferry \
         uses: a newer ferry ran this task there; run that version, or drop `{META_DB}`.`{found}` \
         to start the task over"
    )]
    Newer { found: String, known: String },
    #[error(
        "creating the checkpoint schema `{META_DB}` on the target: {source} (the user needs \
         CREATE, INSERT, UPDATE, DELETE, SELECT on `{META_DB}`.*)"
    )]
    Server {
        #[source]
        source: mysql_async::Error,
    },
}

impl Classify for MetaError {
    fn class(&self) -> Class {
        match self {
            MetaError::Newer { .. } => Class::Definite,
            MetaError::Server { source } => Failure::mysql("", source).class,
        }
    }
}

/// Creates `ferry_meta` and `tables` if missing; refuses when a newer layout of one of them is
/// there (see the module doc). The failure keeps the class of what went wrong.
pub async fn ensure(conn: &mut mysql_async::Conn, tables: &[MetaTable]) -> Result<(), Failure> {
    create(conn, tables).await.map_err(|e| {
        Failure::new(
            "preparing `ferry_meta` on the target",
            e.to_string(),
            e.class(),
        )
    })
}

async fn create(conn: &mut mysql_async::Conn, tables: &[MetaTable]) -> Result<(), MetaError> {
    let server = |source| MetaError::Server { source };
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{META_DB}`"))
        .await
        .map_err(server)?;
    let existing: Vec<String> = conn
        .exec(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (META_DB,),
        )
        .await
        .map_err(server)?;
    if let Some((found, known)) = newer_layout(&existing, tables) {
        return Err(MetaError::Newer { found, known });
    }
    for t in tables {
        conn.query_drop(t.create_sql()).await.map_err(server)?;
    }
    Ok(())
}

/// The first existing table that is a newer version of one of `tables`: (found, known).
fn newer_layout(existing: &[String], tables: &[MetaTable]) -> Option<(String, String)> {
    existing.iter().find_map(|name| {
        let (family, version) = name.rsplit_once("_v")?;
        let version: u32 = version.parse().ok()?;
        let known = tables
            .iter()
            .find(|t| t.family == family && t.version < version)?;
        Some((name.clone(), known.name()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNK: MetaTable = MetaTable {
        family: "load_chunk",
        version: 1,
        definition: "a INT",
    };
    const CHECKPOINT: MetaTable = MetaTable {
        family: "catchup_checkpoint",
        version: 2,
        definition: "a INT",
    };

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_newer_layout_of_a_known_family_is_refused() {
        let found = newer_layout(&names(&["load_chunk_v1", "load_chunk_v2"]), &[CHUNK]);
        assert_eq!(
            found,
            Some(("load_chunk_v2".to_string(), "load_chunk_v1".to_string()))
        );
    }

    #[test]
    fn older_same_and_unrelated_tables_are_fine() {
        let existing = names(&[
            "catchup_checkpoint_v1",
            "catchup_checkpoint_v2",
            "load_chunk_v1",
            "load_chunk_vx",
            "load_chunkier_v9",
            "notes",
        ]);
        assert_eq!(newer_layout(&existing, &[CHUNK, CHECKPOINT]), None);
    }

    #[test]
    fn statements_name_the_versioned_table() {
        assert_eq!(
            CHECKPOINT.qualified(),
            "`ferry_meta`.`catchup_checkpoint_v2`"
        );
        assert_eq!(
            CHUNK.create_sql(),
            "CREATE TABLE IF NOT EXISTS `ferry_meta`.`load_chunk_v1` (a INT) ENGINE=InnoDB \
             DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        );
    }
}
