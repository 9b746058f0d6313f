//! Acceptance: dumps written by other tools load exactly: a mydumper 0.10 dump (the apt
//! `mydumper`) of a sysbench dataset, with the peer's own `metadata`, file names and quoting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use std::process::Command;

#[tokio::test]
async fn mydumper_dump_of_sysbench_loads_exactly() {
    let db = unique_db("lmyd");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    let s = servers();
    let out = Command::new("sysbench")
        .args([
            "oltp_read_only",
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={}", s.source_port),
            "--mysql-user=root",
            &format!("--mysql-db={db}"),
            "--tables=3",
            "--table-size=20000",
            "prepare",
        ])
        .output()
        .expect("sysbench (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "sysbench prepare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("mydumper")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &s.source_port.to_string(),
            "-u",
            "root",
            "-B",
            &db,
            "-t",
            "2",
            "-r",
            "7000",
            "-o",
        ])
        .arg(dir.path())
        .output()
        .expect("mydumper (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "mydumper: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("metadata").exists());
    let summary = load(dir.path(), &["--threads", "3"]);
    assert_eq!(summary["format"], "dumpling/mydumper");
    assert_eq!(summary["rows"], 60000, "{summary}");
    assert_eq!(summary["mismatches"], 0);
    let mut tgt = target().await;
    for t in ["sbtest1", "sbtest2", "sbtest3"] {
        let a = checksum_table(&mut src, &db, t).await;
        let b = checksum_table(&mut tgt, &db, t).await;
        assert!(a.is_some());
        assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{t}");
    }
    // AUTO_INCREMENT continues after the loaded ids.
    exec(
        &mut tgt,
        &format!("INSERT INTO `{db}`.sbtest1 (k, c, pad) VALUES (1, 'c', 'p')"),
    )
    .await;
    let id: Option<u64> = mysql_async::prelude::Queryable::query_first(
        &mut tgt,
        format!("SELECT MAX(id) FROM `{db}`.sbtest1"),
    )
    .await
    .unwrap();
    assert_eq!(id, Some(20001));
}
