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

/// mydumper 0.11+ `--load-data`: rows in `.dat` files, dialect and columns in the companion
/// `.sql` file's LOAD DATA statement (written here by hand: the apt mydumper is 0.10).
#[tokio::test]
async fn mydumper_load_data_layout_loads_exactly() {
    use std::io::Write;
    let db = unique_db("ldat");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join(format!("{db}-schema-create.sql")),
        format!("CREATE DATABASE `{db}`;\n"),
    )
    .unwrap();
    std::fs::write(
        d.join(format!("{db}.t-schema.sql")),
        "/*!40101 SET NAMES binary*/;\nCREATE TABLE `t` (`id` int NOT NULL, `s` varchar(50) DEFAULT NULL, `extra` int DEFAULT 7, `n` int, PRIMARY KEY (`id`));\n",
    )
    .unwrap();
    let control = |file: &str| {
        format!(
            "/*!40101 SET NAMES binary*/;\n/*!40014 SET FOREIGN_KEY_CHECKS=0*/;\nLOAD DATA LOCAL INFILE '{file}' REPLACE INTO TABLE `t` CHARACTER SET binary FIELDS TERMINATED BY ',' ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES STARTING BY '' TERMINATED BY '\\n' (`id`,`n`,`s`);\n"
        )
    };
    let dat1 = format!("{db}.t.00000.dat");
    std::fs::write(
        d.join(&dat1),
        "1,10,\"a,b\"\n2,\\N,\"quote \\\" and\\nnewline\"\n3,30,\\N\n",
    )
    .unwrap();
    std::fs::write(d.join(format!("{db}.t.00000.sql")), control(&dat1)).unwrap();
    let dat2 = format!("{db}.t.00001.dat");
    let gz = |text: &str| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(d.join(format!("{dat2}.gz")), gz("4,40,\"x\"\n")).unwrap();
    std::fs::write(d.join(format!("{db}.t.00001.sql.gz")), gz(&control(&dat2))).unwrap();

    let summary = load(d, &[]);
    assert_eq!(summary["rows"], 4, "{summary}");
    let mut tgt = target().await;
    let rows: Vec<(i32, Option<String>, i32, Option<i32>)> =
        mysql_async::prelude::Queryable::query(
            &mut tgt,
            format!("SELECT id, s, extra, n FROM `{db}`.t ORDER BY id"),
        )
        .await
        .unwrap();
    assert_eq!(
        rows,
        vec![
            (1, Some("a,b".into()), 7, Some(10)),
            (2, Some("quote \" and\nnewline".into()), 7, None),
            (3, None, 7, Some(30)),
            (4, Some("x".into()), 7, Some(40)),
        ]
    );
}
