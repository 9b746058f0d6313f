//! Acceptance: `ferry dump` → `ferry load` round trips of the type matrix and odd names, as
//! SQL and CSV (several dialects), compressed and not, from a local directory and from S3:
//! CHECKSUM TABLE on the target equals the source, and the loader's own verification agrees.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::matrix::*;
use harness::*;
use std::path::Path;

async fn assert_same(db: &str, table: &str) {
    let mut src = source().await;
    let mut tgt = target().await;
    let a = checksum_table(&mut src, db, table).await;
    let b = checksum_table(&mut tgt, db, table).await;
    assert!(a.is_some(), "source checksum of {db}.{table}");
    assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{table}");
}

fn assert_verified(summary: &serde_json::Value, tables: usize) {
    let v = summary["verified"].as_array().expect("verified list");
    assert_eq!(v.len(), tables, "{summary}");
    for t in v {
        assert_eq!(t["ok"], true, "{summary}");
        assert_eq!(t["checksum"], "ok", "{summary}");
    }
    assert_eq!(summary["mismatches"], 0);
}

fn quoted_filter(db: &str) -> String {
    format!("`{}`.*", db.replace('`', "``"))
}

fn roundtrip(db: &str, dir: &Path, dump_args: &[&str], load_args: &[&str]) -> serde_json::Value {
    let filter = quoted_filter(db);
    let mut args = vec!["-f", &filter, "--rows", "2", "--checksum"];
    args.extend_from_slice(dump_args);
    dump(dir, &args);
    load(dir, load_args)
}

#[tokio::test]
async fn type_matrix_sql_and_csv_roundtrips() {
    let db = format!("{DB_BASE}{}", unique_db("_l"));
    create_matrix(&db).await;
    let variants: &[&[&str]] = &[
        &["--filetype", "sql"],
        &[
            "--filetype",
            "sql",
            "--compress",
            "zstd",
            "--statement-size",
            "200",
        ],
        &[
            "--filetype",
            "sql",
            "--compress",
            "gzip",
            "--escape-backslash",
            "false",
        ],
        &["--filetype", "csv"],
        &[
            "--filetype",
            "csv",
            "--compress",
            "zstd",
            "--csv-separator",
            "|+|",
            "--csv-delimiter",
            "'",
        ],
        &[
            "--filetype",
            "csv",
            "--csv-header",
            "false",
            "--csv-line-terminator",
            "\\r\\n",
            "--csv-null-value",
            "NULL",
        ],
        &[
            "--filetype",
            "csv",
            "--escape-backslash",
            "false",
            "--csv-separator",
            "\t",
        ],
    ];
    for args in variants {
        drop_target_db(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let summary = roundtrip(&db, dir.path(), args, &[]);
        assert_eq!(summary["rows"], 7, "{args:?}: {summary}");
        assert_verified(&summary, 1);
        assert_same(&db, TABLE).await;
    }
}

#[tokio::test]
async fn insert_method_and_small_chunks_roundtrip() {
    let db = format!("{DB_BASE}{}", unique_db("_i"));
    create_matrix(&db).await;
    for (dump_args, load_args) in [
        (&["--filetype", "sql"][..], &["--method", "insert"][..]),
        (&["--filetype", "csv"][..], &["--method", "insert"][..]),
        // One chunk per row: every chunk after the first replays the file's session settings.
        (
            &["--filetype", "sql", "--statement-size", "1"][..],
            &["--chunk-size", "1"][..],
        ),
    ] {
        drop_target_db(&db).await;
        let dir = tempfile::tempdir().unwrap();
        let summary = roundtrip(&db, dir.path(), dump_args, load_args);
        assert_eq!(summary["rows"], 7, "{dump_args:?} {load_args:?}: {summary}");
        assert_verified(&summary, 1);
        assert_same(&db, TABLE).await;
    }
}

#[tokio::test]
async fn s3_roundtrip_of_several_tables() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("FERRY_TEST_S3_ENDPOINT"),
        std::env::var("FERRY_TEST_S3_BUCKET"),
    ) else {
        panic!("S3 server not configured: run through scripts/test.sh (it starts scripts/s3.sh)");
    };
    let db = unique_db("ls3");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s TEXT, KEY ks (s(10)))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, REPEAT(MD5(seq), 8) FROM `{db}`.seq_1_to_40000"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.`u.v` (k VARCHAR(10) PRIMARY KEY)"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.`u.v` VALUES ('a'),('b')"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE VIEW `{db}`.vw AS SELECT COUNT(*) AS n FROM `{db}`.t"),
    )
    .await;
    let url = format!("s3://{bucket}/load-{db}");
    for (compress, filetype) in [("zstd", "sql"), ("gzip", "csv")] {
        let url = format!("{url}-{filetype}");
        run_ok(dump_command(&servers().source_url, &url).args([
            "--s3-endpoint",
            &endpoint,
            "-B",
            &db,
            "--compress",
            compress,
            "--filetype",
            filetype,
            "--rows",
            "10000",
            "--checksum",
        ]));
        drop_target_db(&db).await;
        let out = run_ok(load_command(&url).args([
            "--s3-endpoint",
            &endpoint,
            "--output",
            "json",
            "--chunk-size",
            "1MiB",
            "--defer-indexes",
            "true",
        ]));
        let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(summary["rows"], 40002, "{summary}");
        assert_eq!(summary["views"], 1);
        assert_verified(&summary, 2);
        assert_same(&db, "t").await;
        assert_same(&db, "u.v").await;
        let mut tgt = target().await;
        let n: Option<u64> = mysql_async::prelude::Queryable::query_first(
            &mut tgt,
            format!("SELECT n FROM `{db}`.vw"),
        )
        .await
        .unwrap();
        assert_eq!(n, Some(40000));
        // The deferred index is back.
        let idx: Option<String> = mysql_async::prelude::Queryable::query_first(
            &mut tgt,
            format!("SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = '{db}' AND TABLE_NAME = 't' AND INDEX_NAME = 'ks'"),
        )
        .await
        .unwrap();
        assert_eq!(idx.as_deref(), Some("ks"));
    }
}

fn load_fails(dir: &Path, args: &[&str]) -> String {
    let out = load_command(dir).args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "expected exit 1: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("load complete"));
    stderr
}

async fn rows_of(db: &str) -> Vec<(i32, String, Option<i32>, i32)> {
    let mut tgt = target().await;
    mysql_async::prelude::Queryable::query(
        &mut tgt,
        format!("SELECT id, a, b, extra FROM `{db}`.t ORDER BY id"),
    )
    .await
    .unwrap()
}

/// Pre-created target tables with more columns in another order; existing rows; duplicates.
#[tokio::test]
async fn existing_tables_map_by_name_and_conflicts_follow_the_options() {
    let db = unique_db("lexist");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a VARCHAR(20), b INT)"),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO `{db}`.t SELECT seq, CONCAT('v', seq), IF(seq % 3 = 0, NULL, seq * 2) FROM `{db}`.seq_1_to_100")).await;
    let expected: Vec<(i32, String, Option<i32>, i32)> = (1..=100)
        .map(|i| (i, format!("v{i}"), (i % 3 != 0).then_some(i * 2), 5))
        .collect();
    let sql = tempfile::tempdir().unwrap();
    dump(sql.path(), &["-B", &db, "--rows", "30"]);
    let csv = tempfile::tempdir().unwrap();
    dump(
        csv.path(),
        &["-B", &db, "--rows", "30", "--filetype", "csv"],
    );
    // The same SQL dump without its manifest: columns come from the schema file.
    let plain = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(sql.path()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "ferry-manifest.json" && e.path().is_file() {
            std::fs::copy(e.path(), plain.path().join(e.file_name())).unwrap();
        }
    }
    let recreate = || async {
        drop_target_db(&db).await;
        let mut tgt = target().await;
        exec(&mut tgt, &format!("CREATE DATABASE `{db}`")).await;
        exec(&mut tgt, &format!("CREATE TABLE `{db}`.t (b INT, extra INT DEFAULT 5, id INT PRIMARY KEY, a VARCHAR(20))")).await;
    };
    for dir in [sql.path(), csv.path(), plain.path()] {
        recreate().await;
        let summary = load(dir, &["--no-schema"]);
        assert_eq!(summary["rows"], 100, "{summary}");
        assert_eq!(rows_of(&db).await, expected, "{}", dir.display());
    }
    // The table holds rows now: a new task refuses, unless told what to do.
    let task = ["--task-id", &format!("{db}-again-1")];
    let e = load_fails(plain.path(), &[&["--no-schema"][..], &task[..]].concat());
    assert!(
        e.contains("already hold rows") && e.contains("--on-existing"),
        "{e}"
    );
    let e = load_fails(
        plain.path(),
        &[
            &["--no-schema", "--on-existing", "append"][..],
            &["--task-id", &format!("{db}-again-2")][..],
        ]
        .concat(),
    );
    assert!(
        e.contains("duplicate") && e.contains("--on-duplicate"),
        "{e}"
    );
    let s = load(
        plain.path(),
        &[
            "--no-schema",
            "--on-existing",
            "append",
            "--on-duplicate",
            "ignore",
            "--task-id",
            &format!("{db}-again-3"),
        ],
    );
    assert_eq!(s["mismatches"], 0, "{s}");
    assert_eq!(rows_of(&db).await, expected);
    let s = load(
        sql.path(),
        &[
            "--no-schema",
            "--on-existing",
            "truncate",
            "--task-id",
            &format!("{db}-again-4"),
        ],
    );
    assert_eq!(s["rows"], 100);
    assert_eq!(rows_of(&db).await, expected);
    // A dump column the target lacks is a clear error before any row moves.
    let mut tgt = target().await;
    exec(&mut tgt, &format!("ALTER TABLE `{db}`.t DROP COLUMN b")).await;
    exec(&mut tgt, &format!("TRUNCATE TABLE `{db}`.t")).await;
    let e = load_fails(
        sql.path(),
        &["--no-schema", "--task-id", &format!("{db}-again-5")],
    );
    assert!(
        e.contains("column `b`") && e.contains("does not exist in the target table"),
        "{e}"
    );
}

#[tokio::test]
async fn type_matrix_through_s3() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("FERRY_TEST_S3_ENDPOINT"),
        std::env::var("FERRY_TEST_S3_BUCKET"),
    ) else {
        panic!("S3 server not configured: run through scripts/test.sh (it starts scripts/s3.sh)");
    };
    let db = format!("{DB_BASE}{}", unique_db("_s3"));
    create_matrix(&db).await;
    let filter = quoted_filter(&db);
    for (i, args) in [
        &["--filetype", "sql", "--compress", "gzip"][..],
        &["--filetype", "csv", "--compress", "zstd"][..],
    ]
    .iter()
    .enumerate()
    {
        let url = format!("s3://{bucket}/matrix-{}-{i}", unique_db("m"));
        run_ok(
            dump_command(&servers().source_url, &url)
                .args([
                    "--s3-endpoint",
                    &endpoint,
                    "-f",
                    &filter,
                    "--rows",
                    "2",
                    "--checksum",
                ])
                .args(*args),
        );
        drop_target_db(&db).await;
        let out = run_ok(load_command(&url).args(["--s3-endpoint", &endpoint, "--output", "json"]));
        let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(summary["rows"], 7, "{args:?}: {summary}");
        assert_verified(&summary, 1);
        assert_same(&db, TABLE).await;
    }
}

/// The CSV NULL marker: a ferry dump is read with the marker its manifest records — also an
/// empty one, and whatever `--csv-null-value` says (that option describes files without a
/// manifest); the same files without the manifest follow the option. An empty marker without a
/// delimiter could not tell NULL from the empty string, so the dump refuses it.
#[tokio::test]
async fn csv_null_marker_comes_from_the_manifest_else_from_the_options() {
    let db = unique_db("lnull");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, a VARCHAR(8), n INT)"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.t VALUES (1, NULL, NULL), (2, '', 0), (3, 'NULL', 3), (4, '\\\\N', NULL)"
        ),
    )
    .await;
    let expected: Vec<(i32, Option<String>, Option<i32>)> = vec![
        (1, None, None),
        (2, Some(String::new()), Some(0)),
        (3, Some("NULL".into()), Some(3)),
        (4, Some("\\N".into()), None),
    ];
    let rows = || async {
        let mut tgt = target().await;
        let got: Vec<(i32, Option<String>, Option<i32>)> = mysql_async::prelude::Queryable::query(
            &mut tgt,
            format!("SELECT id, a, n FROM `{db}`.t ORDER BY id"),
        )
        .await
        .unwrap();
        got
    };
    let dir = tempfile::tempdir().unwrap();
    dump(
        dir.path(),
        &["-B", &db, "--filetype", "csv", "--csv-null-value", ""],
    );
    let data = std::fs::read_to_string(dir.path().join(format!("{db}.t.000000000.csv"))).unwrap();
    assert_eq!(
        data,
        "\"id\",\"a\",\"n\"\n1,,\n2,\"\",0\n3,\"NULL\",3\n4,\"\\\\N\",\n"
    );
    drop_target_db(&db).await;
    let s = load(dir.path(), &["--csv-null-value", "NULL"]);
    assert_eq!(s["mismatches"], 0, "{s}");
    assert_eq!(rows().await, expected, "ferry dump, --csv-null-value NULL");

    // The same files as a foreign dump: the option decides.
    let plain = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(dir.path()).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "ferry-manifest.json" && e.path().is_file() {
            std::fs::copy(e.path(), plain.path().join(e.file_name())).unwrap();
        }
    }
    drop_target_db(&db).await;
    let s = load(plain.path(), &["--csv-null-value", ""]);
    assert_eq!(s["rows"], 4, "{s}");
    assert_eq!(rows().await, expected, "no manifest, --csv-null-value ''");
    drop_target_db(&db).await;

    let out = dump_command(&servers().source_url, dir.path().join("ambiguous"))
        .args(["-B", &db, "--filetype", "csv"])
        .args(["--csv-null-value", "", "--csv-delimiter", ""])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--csv-null-value ''"), "{err}");
    exec(&mut src, &format!("DROP DATABASE `{db}`")).await;
}
