//! Acceptance: bad input is a clear error naming the file and the byte offset, exit code 1, and
//! no table is reported loaded that is not: truncated zstd, an unclosed CSV quote (found without
//! reading forever), wrong column counts, invalid UTF-8 under utf8mb4, data that no longer
//! matches the manifest's checksum, a data file missing from the dump; and a target with
//! `local_infile` off falls back to INSERT with a warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;
use std::path::Path;
use std::time::{Duration, Instant};

/// A Dumpling-layout dump of one table `db`.`t` with the given data files.
fn dumpling_dir(db: &str, create: &str, files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("{db}-schema-create.sql")),
        format!("CREATE DATABASE `{db}`;\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join(format!("{db}.t-schema.sql")), create).unwrap();
    for (suffix, data) in files {
        std::fs::write(dir.path().join(format!("{db}.t.{suffix}")), data).unwrap();
    }
    dir
}

/// Runs `ferry load` expecting exit code 1 within 60 s; returns stderr.
fn load_fails(dir: &Path, args: &[&str]) -> String {
    let started = Instant::now();
    let mut child = load_command(dir)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("ferry load ran for over 60 s on bad input");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "expected exit 1; stderr:\n{stderr}"
    );
    assert!(
        !stdout.contains("load complete"),
        "success reported: {stdout}"
    );
    stderr
}

/// The table is not recorded as finished by any task.
async fn not_finished(db: &str) {
    let mut tgt = target().await;
    let n: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM ferry_meta.load_table_v1 WHERE db = ? AND tbl = 't' AND state = 2",
            (db,),
        )
        .await
        .unwrap_or(Some(0));
    assert_eq!(n, Some(0), "{db}.t is recorded as loaded");
}

const CREATE: &str = "CREATE TABLE `t` (id INT PRIMARY KEY, s VARCHAR(100));\n";

fn sql_rows(from: u32, to: u32) -> String {
    let rows: Vec<String> = (from..to)
        .map(|i| format!("({i},'row {i} {}')", "x".repeat(40)))
        .collect();
    format!("INSERT INTO `t` VALUES {};\n", rows.join(","))
}

#[tokio::test]
async fn truncated_zstd_is_named() {
    // Without a manifest: the decompressor finds the cut.
    let db = unique_db("ezst");
    let whole = zstd::encode_all(sql_rows(0, 20_000).as_bytes(), 1).unwrap();
    let cut = whole[..whole.len() / 2].to_vec();
    let dir = dumpling_dir(&db, CREATE, &[("000000001.sql.zst", cut)]);
    let e = load_fails(dir.path(), &[]);
    assert!(
        e.contains(&format!("{db}.t.000000001.sql.zst")) && e.contains("at byte"),
        "{e}"
    );
    assert!(e.contains("truncated"), "{e}");
    not_finished(&db).await;

    // A ferry dump: the manifest's sizes show the cut before anything is loaded.
    let db = unique_db("ezstm");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s TEXT)"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, REPEAT(MD5(seq), 5) FROM `{db}`.seq_1_to_5000"),
    )
    .await;
    let dump_dir = tempfile::tempdir().unwrap();
    dump(dump_dir.path(), &["-B", &db, "--compress", "zstd"]);
    let data = files_matching(dump_dir.path(), |n| {
        n.ends_with(".sql.zst") && !n.contains("-schema")
    });
    let f = &data[0];
    let bytes = std::fs::read(f).unwrap();
    std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_fails(dump_dir.path(), &[]);
    let name = f.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        e.contains(&name) && e.contains("changed or cut short"),
        "{e}"
    );
    let mut tgt = target().await;
    let exists: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(
        exists,
        Some(0),
        "nothing was created before the dump was checked"
    );
}

#[tokio::test]
async fn unclosed_csv_quote_is_found_fast() {
    let db = unique_db("equote");
    let dir = dumpling_dir(&db, CREATE, &[("0.csv", b"1,\"abc\n2,def\n".to_vec())]);
    let e = load_fails(dir.path(), &["--csv-header", "false"]);
    assert!(
        e.contains(&format!("{db}.t.0.csv")) && e.contains("at byte 2"),
        "{e}"
    );
    assert!(e.contains("never closed"), "{e}");
    not_finished(&db).await;

    // A quote opened early in a big file: named at once at the end, not searched for forever.
    let db = unique_db("equote2");
    let mut data = b"1,ok\n2,\"opened here\n".to_vec();
    for i in 3..200_000 {
        data.extend_from_slice(format!("{i},plain row {i}\n").as_bytes());
    }
    let dir = dumpling_dir(&db, CREATE, &[("0.csv", data)]);
    let started = Instant::now();
    let e = load_fails(
        dir.path(),
        &["--csv-header", "false", "--chunk-size", "256KiB"],
    );
    assert!(e.contains("at byte 7") && e.contains("never closed"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(30));
    not_finished(&db).await;
}

#[tokio::test]
async fn wrong_column_counts_name_the_row() {
    let db = unique_db("ecols");
    let dir = dumpling_dir(&db, CREATE, &[("0.csv", b"1,a\n2,b,c\n".to_vec())]);
    let e = load_fails(dir.path(), &["--csv-header", "false"]);
    assert!(
        e.contains(&format!("{db}.t.0.csv")) && e.contains("at byte 4"),
        "{e}"
    );
    assert!(e.contains("3 fields") && e.contains("2 columns"), "{e}");
    not_finished(&db).await;

    let db = unique_db("ecols2");
    let sql = b"INSERT INTO `t` VALUES (1,'a'),(2);\n".to_vec();
    let dir = dumpling_dir(&db, CREATE, &[("000000001.sql", sql)]);
    let e = load_fails(dir.path(), &[]);
    assert!(
        e.contains(&format!("{db}.t.000000001.sql")) && e.contains("at byte 31"),
        "{e}"
    );
    assert!(e.contains("1 values"), "{e}");
    not_finished(&db).await;
}

#[tokio::test]
async fn invalid_utf8_under_utf8mb4_is_named() {
    let db = unique_db("eutf");
    let sql = b"INSERT INTO `t` VALUES (1,'fine'),(2,'caf\xe9');\n".to_vec();
    let dir = dumpling_dir(&db, CREATE, &[("000000001.sql", sql.clone())]);
    let e = load_fails(dir.path(), &["--character-set", "utf8mb4"]);
    assert!(
        e.contains(&format!("{db}.t.000000001.sql")) && e.contains("at byte 34"),
        "{e}"
    );
    assert!(e.contains("UTF-8"), "{e}");
    not_finished(&db).await;
    let csv = b"1,fine\n2,caf\xe9\n".to_vec();
    let db = unique_db("eutf2");
    let dir = dumpling_dir(&db, CREATE, &[("0.csv", csv)]);
    let e = load_fails(
        dir.path(),
        &["--character-set", "utf8mb4", "--csv-header", "false"],
    );
    assert!(e.contains("at byte 7") && e.contains("UTF-8"), "{e}");
    not_finished(&db).await;
}

#[tokio::test]
async fn data_that_does_not_match_the_manifest_checksum_fails_verification() {
    let db = unique_db("esum");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s VARCHAR(20))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, 'aaaa' FROM `{db}`.seq_1_to_100"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--checksum"]);
    let data = files_matching(dir.path(), |n| {
        n.ends_with(".sql") && !n.contains("-schema")
    });
    let text = std::fs::read_to_string(&data[0]).unwrap();
    // Same size, one value changed.
    let changed = text.replacen("'aaaa'", "'aaab'", 1);
    assert_ne!(text, changed);
    std::fs::write(&data[0], changed).unwrap();
    let e = load_fails(dir.path(), &[]);
    assert!(
        e.contains("verification failed") && e.contains(&format!("`{db}`.`t`")),
        "{e}"
    );
    assert!(e.contains("checksum mismatch"), "{e}");
}

#[tokio::test]
async fn a_data_file_missing_from_the_dump_is_named_before_loading() {
    let db = unique_db("emiss");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq FROM `{db}`.seq_1_to_1000"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--rows", "300"]);
    let data = files_matching(dir.path(), |n| {
        n.ends_with(".sql") && !n.contains("-schema")
    });
    assert!(data.len() > 1);
    std::fs::remove_file(&data[1]).unwrap();
    let e = load_fails(dir.path(), &[]);
    let name = data[1].file_name().unwrap().to_string_lossy().into_owned();
    assert!(e.contains(&name) && e.contains("missing"), "{e}");
    let mut tgt = target().await;
    let exists: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(exists, Some(0));
}

#[tokio::test]
async fn local_infile_off_falls_back_to_insert() {
    // A private target: turning local_infile off on the shared one would disturb other tests.
    let state = tempfile::tempdir().unwrap();
    let script = repo_root().join("scripts/servers.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .args(["start", "--dir"])
        .arg(state.path())
        .args(["--owner-pid", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let env = std::fs::read_to_string(state.path().join("env")).unwrap();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("export FERRY_TEST_TARGET_URL="))
        .unwrap()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_string();
    let stop = || {
        let _ = std::process::Command::new("bash")
            .arg(&script)
            .args(["stop", "--dir"])
            .arg(state.path())
            .status();
    };
    let mut tgt = connect(&url).await;
    exec(&mut tgt, "SET GLOBAL local_infile = 0").await;

    let db = unique_db("einfile");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s VARCHAR(40))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, MD5(seq) FROM `{db}`.seq_1_to_3000"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--checksum"]);

    let out = ferry()
        .args([
            "load",
            "--progress",
            "off",
            "--output",
            "json",
            "--target",
            &url,
            "--from",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        stop();
        panic!("load failed: {stderr}");
    }
    assert!(
        stderr.contains("local_infile=OFF") && stderr.contains("INSERT"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["method"], "insert");
    assert_eq!(summary["rows"], 3000);
    assert_eq!(summary["mismatches"], 0);

    exec(&mut tgt, &format!("DROP DATABASE `{db}`")).await;
    let out = ferry()
        .args([
            "load",
            "--progress",
            "off",
            "--method",
            "load-data",
            "--task-id",
            "other",
            "--target",
            &url,
            "--from",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    stop();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("local_infile"), "{stderr}");
}
