//! dump → load → catchup: changes made on the source after the dump (rows and DDL) reach the
//! target, and `--until caught-up` stops at lag 0 with the target equal to the source. A second
//! run resumes from the checkpoint and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;

fn catchup(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let s = servers();
    let out = run_ok(
        ferry()
            .args([
                "catchup",
                "--source",
                &s.source_url,
                "--target",
                &s.target_url,
                "--from",
            ])
            .arg(dir)
            .args(["--until", "caught-up", "--output", "json"])
            .args(args),
    );
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test]
async fn dump_load_catchup_converges() {
    let db = unique_db("ccatch");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v VARCHAR(20), n INT)"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.nk (a INT, b VARCHAR(20))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, CONCAT('v', seq), seq FROM `{db}`.seq_1_to_500"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.nk SELECT seq % 10, 'dup' FROM `{db}`.seq_1_to_50"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db]);
    // After the dump: rows, DDL, a new table.
    exec(
        &mut src,
        &format!("UPDATE `{db}`.t SET v = 'changed' WHERE id % 7 = 0"),
    )
    .await;
    exec(&mut src, &format!("DELETE FROM `{db}`.t WHERE id > 480")).await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t VALUES (1000, 'new', 1)"),
    )
    .await;
    exec(
        &mut src,
        &format!("DELETE FROM `{db}`.nk WHERE a = 3 LIMIT 2"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.nk VALUES (77, 'after')"),
    )
    .await;
    exec(
        &mut src,
        &format!("ALTER TABLE `{db}`.t ADD COLUMN extra INT DEFAULT 5"),
    )
    .await;
    exec(
        &mut src,
        &format!("UPDATE `{db}`.t SET extra = id WHERE id < 10"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.later (k INT PRIMARY KEY)"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.later VALUES (1), (2)"),
    )
    .await;
    load(dir.path(), &[]);
    let s1 = catchup(dir.path(), &[]);
    assert!(s1["rows"].as_u64().unwrap() > 0, "{s1}");
    assert!(s1["ddl"].as_u64().unwrap() >= 2, "{s1}");
    let mut tgt = target().await;
    for t in ["t", "nk", "later"] {
        let a = checksum_table(&mut src, &db, t).await;
        let b = checksum_table(&mut tgt, &db, t).await;
        assert!(a.is_some());
        assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{t}");
    }
    // Again: resumes from the checkpoint, nothing of ours left to apply.
    let s2 = catchup(dir.path(), &[]);
    assert_eq!(s2["ddl"], 0, "{s2}");
    for t in ["t", "nk", "later"] {
        assert_eq!(
            checksum_table(&mut src, &db, t).await,
            checksum_table(&mut tgt, &db, t).await
        );
    }
}

#[tokio::test]
async fn a_purged_start_position_is_a_clear_error() {
    let s = servers();
    let out = ferry()
        .args([
            "catchup",
            "--source",
            &s.source_url,
            "--target",
            &s.target_url,
            "--start-position",
            "mysql-bin.000000:4",
            "--until",
            "caught-up",
            "--task-id",
            &unique_db("purged"),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mysql-bin.000000:4")
            && err.contains("purged")
            && err.contains("oldest available: mysql-bin."),
        "{err}"
    );
}
