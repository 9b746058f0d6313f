//! Options users combine: --where, triggers and routines, --no-data, JSON summary, filters.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;

#[tokio::test]
async fn where_triggers_routines_and_json_summary() {
    let db = unique_db("opts");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT, note VARCHAR(20))"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(20), v INT DEFAULT 3)"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.skipped (id INT PRIMARY KEY)"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.t SELECT seq, seq % 7, CONCAT('n', seq) FROM `{db}`.seq_1_to_1000"
        ),
    )
    .await;
    exec(&mut src, &format!("CREATE TRIGGER `{db}`.t_ai AFTER INSERT ON `{db}`.t FOR EACH ROW INSERT INTO `{db}`.audit (what) VALUES (NEW.note)")).await;
    exec(
        &mut src,
        &format!("CREATE FUNCTION `{db}`.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE PROCEDURE `{db}`.bump() BEGIN UPDATE `{db}`.t SET v = v + 1; END"),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let out = dump(
        dir.path(),
        &[
            "-f",
            &format!("{db}.*"),
            "-f",
            &format!("!{db}.skipped"),
            "--where",
            "v = 3",
            "--rows",
            "100",
            "--triggers",
            "--routines",
            "--output",
            "json",
        ],
    );
    let summary: serde_json::Value =
        serde_json::from_str(out.trim()).expect("--output json prints one JSON object");
    let expected_rows = (1..=1000).filter(|i| i % 7 == 3).count() as u64;
    // --where applies to every table (audit is still empty: its trigger came after the rows).
    assert_eq!(summary["rows"], expected_rows, "{summary}");
    assert_eq!(summary["tables"], 2, "audit and t; skipped is filtered out");
    assert!(
        summary["elapsed_secs"].as_f64().is_some()
            && summary["locations"].as_array().unwrap().len() == 1
    );
    assert!(files_matching(dir.path(), |n| n.contains("skipped")).is_empty());

    // Replay schema, triggers, routines and data on the target.
    let mut tgt = target().await;
    exec(&mut tgt, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
    replay_sql_files(
        &files_matching(dir.path(), |n| n.ends_with("-schema-create.sql")),
        None,
    );
    replay_sql_files(
        &files_matching(dir.path(), |n| {
            n.ends_with("-schema.sql") && !n.ends_with("-schema-create.sql")
        }),
        Some(&db),
    );
    replay_sql_files(
        &files_matching(dir.path(), |n| {
            n.ends_with(".sql") && !n.contains("-schema")
        }),
        Some(&db),
    );
    let post = files_matching(dir.path(), |n| {
        n.ends_with("-schema-triggers.sql") || n.ends_with("-schema-post.sql")
    });
    assert_eq!(post.len(), 2, "{post:?}");
    replay_sql_files(&post, Some(&db));
    let n: Option<u64> = tgt
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t WHERE v = 3"))
        .await
        .unwrap();
    assert_eq!(n, Some(expected_rows));
    let other: Option<u64> = tgt
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t WHERE v <> 3"))
        .await
        .unwrap();
    assert_eq!(other, Some(0), "--where applies to every chunk");
    let twice: Option<i64> = tgt
        .query_first(format!("SELECT `{db}`.twice(21)"))
        .await
        .unwrap();
    assert_eq!(twice, Some(42), "routine replayed");
    exec(
        &mut tgt,
        &format!("INSERT INTO `{db}`.t VALUES (5000, 0, 'fired')"),
    )
    .await;
    let fired: Option<u64> = tgt
        .query_first(format!(
            "SELECT COUNT(*) FROM `{db}`.audit WHERE what = 'fired'"
        ))
        .await
        .unwrap();
    assert_eq!(fired, Some(1), "trigger replayed");

    // --no-data writes schemas and a manifest without data files.
    let schema_only = tempfile::tempdir().unwrap();
    dump(schema_only.path(), &["-B", &db, "--no-data"]);
    assert!(files_matching(schema_only.path(), |n| n.ends_with(".sql")
        && !n.contains("-schema"))
    .is_empty());
    assert_eq!(manifest(schema_only.path())["totals"]["rows"], 0);
    // No chunk read, yet the Location catch-up starts from is recorded.
    assert_eq!(
        manifest(schema_only.path())["locations"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

/// A database without tables is dumped (schema file and Location) and loaded (created), so
/// it can be caught up into; a filter that names no database at all is still an error.
#[tokio::test]
async fn a_database_without_tables_is_dumped_and_loaded() {
    let db = unique_db("emptydb");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db]);
    let m = manifest(dir.path());
    assert_eq!(m["databases"][0]["name"], db.as_str(), "{m}");
    assert_eq!(m["locations"].as_array().map(Vec::len), Some(1), "{m}");
    load(dir.path(), &[]);
    let mut tgt = target().await;
    let found: Option<String> = tgt
        .exec_first(
            "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(found.as_deref(), Some(db.as_str()));
}
