//! The source checks before streaming, as a report: one log line a check (`log_bin`,
//! `binlog_format`, `binlog_row_image`, the source's server id against ours,
//! `binlog_row_metadata`, replication grants, the start file still present).
//!
//! Definite errors: every failed check is named in one error, each with its fix; a purged
//! start file names the oldest binlog the source still has. Grants and `binlog_row_metadata`
//! are reported only (roles and proxies grant in ways `SHOW GRANTS` does not spell out; the
//! schema tracker maps columns without names).

use crate::error::{db_err, CatchupError};
use ferry_shared::location::BinlogPos;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;

/// Checks the source can be replicated from `start` and logs a report, one line a check:
/// binlog on, ROW format, FULL images, a server id of our own, replication privileges, and
/// the start file still present. Every failed check is named in the error.
pub async fn precheck(
    src: &mut Conn,
    start: &BinlogPos,
    server_id: u32,
) -> Result<(), CatchupError> {
    let mut problems: Vec<String> = Vec::new();
    let mut check = |name: &str, value: String, ok: bool, fix: &str| {
        if ok {
            tracing::info!("precheck: {name} {value}: ok");
        } else {
            tracing::error!("precheck: {name} {value}: {fix}");
            problems.push(format!("{name} is {value}: {fix}"));
        }
    };
    let (log_bin, format, image, own): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<u32>,
    ) = src
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id")
        .await
        .map_err(db_err("reading the source's binlog settings"))?
        .unwrap_or((None, None, None, None));
    let is =
        |v: &Option<String>, want: &str| v.as_deref().is_some_and(|v| v.eq_ignore_ascii_case(want));
    let shown = |v: &Option<String>| v.clone().unwrap_or_else(|| "unset".into());
    check(
        "log_bin",
        match log_bin.as_deref() {
            Some("1") => "ON".into(),
            Some("0") => "OFF".into(),
            _ => shown(&log_bin),
        },
        is(&log_bin, "1") || is(&log_bin, "ON"),
        "turn the binary log on (log_bin) and restart the source",
    );
    check(
        "binlog_format",
        shown(&format),
        is(&format, "ROW"),
        "SET GLOBAL binlog_format = ROW (and in the option file)",
    );
    check(
        "binlog_row_image",
        shown(&image),
        is(&image, "FULL"),
        "SET GLOBAL binlog_row_image = FULL (and in the option file)",
    );
    check(
        "source server_id",
        own.map_or("unknown".into(), |o| o.to_string()),
        own != Some(server_id),
        &format!("it equals --server-id {server_id}: give catch-up a unique one"),
    );
    // Column names in the binlog: without them the schema tracker maps columns.
    if let Ok(Some(meta)) = src
        .query_first::<String, _>("SELECT @@binlog_row_metadata")
        .await
    {
        tracing::info!(
            "precheck: binlog_row_metadata {meta}: {}",
            if meta.eq_ignore_ascii_case("FULL") {
                "column names come with the rows"
            } else {
                "columns are mapped by the schema tracker (the dump's columns and the DDL since); FULL is more robust"
            }
        );
    }
    // Privileges: a warning only, as roles and proxies can grant them in ways SHOW GRANTS
    // does not spell out; the stream itself fails clearly without them.
    if let Ok(grants) = src.query::<String, _>("SHOW GRANTS").await {
        let up: Vec<String> = grants.iter().map(|g| g.to_ascii_uppercase()).collect();
        let has = |p: &str| {
            up.iter()
                .any(|g| g.contains(p) || g.contains("ALL PRIVILEGES ON *.*"))
        };
        if has("REPLICATION SLAVE") || has("REPLICATION REPLICA") {
            tracing::info!("precheck: replication grants: ok");
        } else {
            tracing::warn!("precheck: the source user's grants show no REPLICATION SLAVE; reading the binlog may be refused (GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO ...)");
        }
    }
    match src.query::<mysql_async::Row, _>("SHOW BINARY LOGS").await {
        Ok(logs) => {
            let names: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
            let oldest = names.first().map(String::as_str).unwrap_or("none");
            check(
                "start position",
                start.to_string(),
                names.contains(&start.file),
                &format!("its binlog file was purged from the source (oldest available: {oldest}); take a new dump"),
            );
        }
        Err(e) => check(
            "SHOW BINARY LOGS",
            "refused".into(),
            false,
            &format!("{e} (the user needs BINLOG MONITOR / REPLICATION CLIENT)"),
        ),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CatchupError::Definite(format!(
            "precheck failed: {}",
            problems.join("; ")
        )))
    }
}
