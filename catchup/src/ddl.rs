//! The DDL barrier: how a statement of the stream (other than BEGIN/COMMIT) is applied.
//!
//! Algorithm: (1) every worker commits what it applied before the statement, with the
//! position before it, and the coordinator waits until all have (`sync`); (2) the statement
//! runs on the coordinator's own target connection, with the source's `sql_mode` and client
//! character set, in its default schema; (3) the schema tracker records the tables it
//! changed, and every worker's checkpoint moves past the statement, in one target transaction.
//!
//! Invariants: no row change after the DDL is applied before it (all workers are idle while
//! it runs), and none before it after it. A crash between (2) and (3) replays the statement:
//! errors saying it is already in effect ([`ALREADY_APPLIED`]) are then skipped with a warning.
//! Account statements (GRANT, CREATE USER, ...) and statements of other databases are not
//! DDL for the target: they are skipped ([`is_replicated`]).
//!
//! Definite errors: any other server error of the statement (with its first 100 characters).

use crate::checkpoint::{checkpoint_sql, Checkpoint};
use crate::error::{db_err, CatchupError};
use crate::pool::Pool;
use crate::schema_tracker::SchemaTracker;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::fmt::Write;

/// Errors that mean a replayed DDL statement is already in effect: database/table exists or
/// not, duplicate column/key, column/key to drop missing.
const ALREADY_APPLIED: &[u16] = &[1007, 1008, 1050, 1051, 1060, 1061, 1091, 1146];

/// Does a statement run without a default schema name `schema` in a qualified identifier?
fn names_schema(sql: &str, schema: &str) -> bool {
    let quoted = format!("{}.", ferry_shared::ident::quote_ident(schema));
    sql.contains(&quoted)
        || sql.match_indices(&format!("{schema}.")).any(|(i, _)| {
            i == 0
                || !sql.as_bytes()[i - 1].is_ascii_alphanumeric() && sql.as_bytes()[i - 1] != b'_'
        })
}

/// Account and privilege statements (`GRANT`, `CREATE USER`, ...): the target's accounts
/// are the operator's, not replicated.
fn is_account_statement(upper: &str) -> bool {
    let s = upper.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
    [
        "GRANT ",
        "REVOKE ",
        "CREATE USER",
        "DROP USER",
        "ALTER USER",
        "RENAME USER",
        "SET PASSWORD",
        "CREATE ROLE",
        "DROP ROLE",
        "SET DEFAULT ROLE",
        "FLUSH ",
    ]
    .iter()
    .any(|p| s.starts_with(p))
}

/// Whether a statement of default schema `db` is applied, for the replicated `schemas` (`None`:
/// all): it runs in or names one of them, and is not about accounts.
pub(crate) fn is_replicated(db: &str, text: &str, upper: &str, schemas: Option<&[String]>) -> bool {
    let wanted = schemas.is_none_or(|s| {
        s.iter().any(|x| x == db) || (db.is_empty() && s.iter().any(|x| names_schema(text, x)))
    });
    wanted && !is_account_statement(upper)
}

/// A DDL statement of the stream and the checkpoints around it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Ddl {
    /// Its default schema.
    pub db: String,
    pub sql: Vec<u8>,
    /// Trimmed text and its upper-case form.
    pub text: String,
    pub upper: String,
    pub sql_mode: Option<u64>,
    pub charset_client: Option<u16>,
    /// Every worker commits at this checkpoint before the statement...
    pub before: Checkpoint,
    /// ... and moves to this one after it.
    pub after: Checkpoint,
}

/// Runs the barrier for `ddl` (see the module's doc).
pub(crate) async fn apply(
    tgt: &mut Conn,
    pool: &mut Pool,
    tracker: &mut SchemaTracker,
    task: &str,
    ddl: &Ddl,
) -> Result<(), CatchupError> {
    pool.commit(&ddl.before, false).await?;
    pool.sync().await?;
    // The statement's own sql_mode (ANSI_QUOTES changes how it parses) and client character
    // set, as the source ran it.
    let mut session = match ddl.sql_mode {
        Some(m) => format!("SET SESSION sql_mode = {m}"),
        None => "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO'".to_string(),
    };
    match ddl.charset_client {
        Some(c) => {
            let _ = write!(session, ", character_set_client = {c}");
        }
        None => session.push_str(", character_set_client = utf8mb4"),
    }
    if let Err(e) = tgt.query_drop(&session).await {
        tracing::warn!(error = %e, "the target does not take the source statement's session settings; applying the DDL with its own");
    }
    // CREATE/DROP DATABASE name their database as the default schema, which does not exist
    // before (or after) them.
    let upper = &ddl.upper;
    let database_ddl = upper.starts_with("CREATE DATABASE")
        || upper.starts_with("CREATE SCHEMA")
        || upper.starts_with("DROP DATABASE")
        || upper.starts_with("DROP SCHEMA");
    if !ddl.db.is_empty() && !database_ddl {
        tgt.query_drop(format!("USE {}", ferry_shared::ident::quote_ident(&ddl.db)))
            .await
            .map_err(db_err("USE"))?;
    }
    let touched = tracker.touched_by(upper);
    for key in &touched {
        tracker.extras_of(tgt, key).await?;
    }
    match tgt.query_drop(&ddl.sql[..]).await {
        Ok(()) => {}
        // Replayed after a crash between the DDL and its checkpoint: the target already has
        // the change.
        Err(mysql_async::Error::Server(e)) if ALREADY_APPLIED.contains(&e.code) => {
            tracing::warn!(code = e.code, error = %e.message, "DDL already applied on the target (a replay after a restart); skipped");
        }
        Err(e) => {
            return Err(db_err(&format!(
                "applying DDL `{}`",
                ddl.text.chars().take(100).collect::<String>()
            ))(e))
        }
    }
    tracker.forget_tables();
    let mut sql = String::from("START TRANSACTION;");
    tracker.track_ddl(tgt, task, &touched, &mut sql).await?;
    let workers = pool.n();
    for k in 0..workers {
        sql.push_str(&checkpoint_sql(task, k, workers, &ddl.after));
        sql.push(';');
    }
    sql.push_str("COMMIT");
    tgt.query_drop(sql)
        .await
        .map_err(db_err("writing the checkpoint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_of_other_schemas_and_accounts_are_not_replicated() {
        let only = vec!["app".to_string()];
        let s = Some(only.as_slice());
        let ok = |db: &str, text: &str| is_replicated(db, text, &text.to_ascii_uppercase(), s);
        assert!(ok("app", "ALTER TABLE t ADD c INT"));
        assert!(!ok("other", "ALTER TABLE t ADD c INT"));
        assert!(ok("", "CREATE TABLE app.t (a INT)"));
        assert!(ok("", "CREATE TABLE `app`.t (a INT)"));
        assert!(!ok("", "CREATE TABLE myapp.t (a INT)"));
        assert!(!ok("app", "GRANT SELECT ON app.* TO u"));
        assert!(!ok("app", " CREATE USER u"));
        assert!(is_replicated("x", "DROP TABLE t", "DROP TABLE T", None));
    }
}
