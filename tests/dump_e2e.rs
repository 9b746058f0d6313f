//! Acceptance: consistency under concurrent writes, exact Location, S3 destination, and resume
//! after kill -9.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;
use rand::Rng;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const ACCOUNTS: u64 = 20_000;
const START_BALANCE: i64 = 1000;

async fn make_bank(db: &str) {
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    for t in ["acct_a", "acct_b"] {
        exec(&mut src, &format!("CREATE TABLE `{db}`.`{t}` (id BIGINT PRIMARY KEY, bal BIGINT NOT NULL, note VARCHAR(40))")).await;
        exec(
            &mut src,
            &format!(
                "INSERT INTO `{db}`.`{t}` (id, bal, note) SELECT seq, {START_BALANCE}, CONCAT('n', seq) FROM `{db}`.seq_1_to_{ACCOUNTS}"
            ),
        )
        .await;
    }
}

/// Moves money between random rows of the two tables in transactions until `stop`.
async fn transfer_workload(db: String, stop: Arc<AtomicBool>, done: Arc<AtomicU64>) {
    let mut c = source().await;
    while !stop.load(Ordering::Relaxed) {
        let (from, to, amount, from_t, to_t) = {
            let mut r = rand::rng();
            let a_to_b = r.random_bool(0.5);
            let (f, t) = if a_to_b {
                ("acct_a", "acct_b")
            } else {
                ("acct_b", "acct_a")
            };
            (
                r.random_range(1..=ACCOUNTS),
                r.random_range(1..=ACCOUNTS),
                r.random_range(1..50i64),
                f,
                t,
            )
        };
        let mut tx = c.start_transaction(Default::default()).await.unwrap();
        tx.query_drop(format!(
            "UPDATE `{db}`.`{from_t}` SET bal = bal - {amount} WHERE id = {from}"
        ))
        .await
        .unwrap();
        tx.query_drop(format!(
            "UPDATE `{db}`.`{to_t}` SET bal = bal + {amount} WHERE id = {to}"
        ))
        .await
        .unwrap();
        tx.commit().await.unwrap();
        done.fetch_add(1, Ordering::Relaxed);
    }
}

async fn total_on_target(db: &str) -> i64 {
    let mut t = target().await;
    let s: Option<i64> = t
        .query_first(format!("SELECT CAST((SELECT SUM(bal) FROM `{db}`.acct_a) + (SELECT SUM(bal) FROM `{db}`.acct_b) AS SIGNED)"))
        .await
        .unwrap();
    s.unwrap()
}

fn replay_dump(dir: &Path, db: &str) {
    let schema = files_matching(dir, |n| n.ends_with("-schema-create.sql"));
    replay_sql_files(&schema, None);
    let tables = files_matching(dir, |n| {
        n.ends_with("-schema.sql") && !n.ends_with("-schema-create.sql")
    });
    replay_sql_files(&tables, Some(db));
    let data = files_matching(dir, |n| {
        (n.ends_with(".sql") || n.ends_with(".sql.zst")) && !n.contains("-schema")
    });
    replay_sql_files(&data, Some(db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_under_concurrent_transfers_and_location_is_exact() {
    let db = unique_db("bank");
    make_bank(&db).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..3)
        .map(|_| tokio::spawn(transfer_workload(db.clone(), stop.clone(), done.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let expected = 2 * ACCOUNTS as i64 * START_BALANCE;
    let mut last_dir = None;
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let before = done.load(Ordering::Relaxed);
        let d = dir.path().to_path_buf();
        let db2 = db.clone();
        tokio::task::spawn_blocking(move || {
            dump(&d, &["-B", &db2, "--threads", "4", "--rows", "1000"])
        })
        .await
        .unwrap();
        let during = done.load(Ordering::Relaxed) - before;
        let m = manifest(dir.path());
        assert_eq!(
            m["locations"].as_array().unwrap().len(),
            1,
            "one snapshot point"
        );
        assert!(
            m["tables"][0]["chunks"].as_array().unwrap().len() >= 10,
            "chunked by --rows 1000"
        );
        let mut t = target().await;
        exec(&mut t, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
        replay_dump(dir.path(), &db);
        assert_eq!(
            total_on_target(&db).await,
            expected,
            "round {round}: dump is not consistent ({during} transfers committed during the dump)"
        );
        last_dir = Some(dir);
    }
    assert!(done.load(Ordering::Relaxed) > 0, "the workload ran");
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    // Replaying the source's binlog from the recorded Location onto the copy reproduces the
    // source exactly: the Location is the snapshot's, not a neighbour.
    let dir = last_dir.unwrap();
    let m = manifest(dir.path());
    let file = m["locations"][0]["location"]["pos"]["file"]
        .as_str()
        .unwrap()
        .to_string();
    let pos = m["locations"][0]["location"]["pos"]["pos"]
        .as_u64()
        .unwrap();
    let meta = std::fs::read_to_string(dir.path().join("metadata")).unwrap();
    assert!(
        meta.contains(&format!("\tLog: {file}\n\tPos: {pos}\n")),
        "metadata: {meta}"
    );
    let s = servers();
    let out = std::process::Command::new("mariadb-binlog")
        .args([
            "--read-from-remote-server",
            "-h127.0.0.1",
            &format!("-P{}", s.source_port),
            "-uroot",
        ])
        .arg(format!("--start-position={pos}"))
        .arg(format!("--database={db}"))
        .arg("--to-last-log")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb-binlog: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut sql = b"SET SESSION sql_log_bin=0;\n".to_vec();
    sql.extend_from_slice(&out.stdout);
    let tmp = dir.path().join("binlog-replay.sql.txt");
    std::fs::write(&tmp, &sql).unwrap();
    replay_sql_files(&[tmp], None);
    let mut src = source().await;
    let mut tgt = target().await;
    for t in ["acct_a", "acct_b"] {
        assert_eq!(
            checksum_table(&mut src, &db, t).await,
            checksum_table(&mut tgt, &db, t).await,
            "{t} after binlog replay"
        );
    }
}

#[tokio::test]
async fn s3_zstd_dump_matches_local_dump() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("FERRY_TEST_S3_ENDPOINT"),
        std::env::var("FERRY_TEST_S3_BUCKET"),
    ) else {
        panic!("S3 server not configured: run through scripts/test.sh (it starts scripts/s3.sh)");
    };
    let db = unique_db("s3");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, s TEXT)"),
    )
    .await;
    // ~12 MB so that objects take the multipart path (8 MiB parts).
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, REPEAT(MD5(seq), 8) FROM `{db}`.seq_1_to_50000"),
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

    let local = tempfile::tempdir().unwrap();
    dump(
        local.path(),
        &[
            "-B",
            &db,
            "--compress",
            "zstd",
            "--rows",
            "20000",
            "--filesize",
            "10MiB",
        ],
    );
    let prefix = format!("run-{db}");
    let url = format!("s3://{bucket}/{prefix}");
    run_ok(dump_command(&servers().source_url, &url).args([
        "--s3-endpoint",
        &endpoint,
        "-B",
        &db,
        "--compress",
        "zstd",
        "--rows",
        "20000",
        "--filesize",
        "10MiB",
    ]));

    let storage = ferry_shared::storage::open(
        &url,
        &ferry_shared::storage::S3Options {
            endpoint: Some(endpoint.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let objects = storage.list("").await.unwrap();
    let names: Vec<&str> = objects.iter().map(|o| o.name.as_str()).collect();
    let local_names: Vec<String> = files_matching(local.path(), |_| true)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        local_names.iter().map(String::as_str).collect::<Vec<_>>(),
        "same objects as the local dump"
    );
    assert!(names.iter().any(|n| n.ends_with(".sql.zst")));
    for o in &objects {
        if o.name == "metadata" || o.name == "ferry-manifest.json" {
            continue;
        }
        let remote = storage.read(&o.name).await.unwrap();
        let l = std::fs::read(local.path().join(&o.name)).unwrap();
        let (r, l) = if o.name.ends_with(".zst") {
            (
                zstd::decode_all(&remote[..]).unwrap(),
                zstd::decode_all(&l[..]).unwrap(),
            )
        } else {
            (remote.to_vec(), l)
        };
        assert!(r == l, "{} differs between S3 and local", o.name);
    }
    let m: serde_json::Value =
        serde_json::from_slice(&storage.read("ferry-manifest.json").await.unwrap()).unwrap();
    assert_eq!(m["totals"]["rows"], 50002);
}

#[tokio::test]
async fn resume_after_kill_9_completes_without_duplicates() {
    let db = unique_db("resume");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.side (id INT AUTO_INCREMENT PRIMARY KEY, v INT)"),
    )
    .await;
    for i in 0..4 {
        exec(
            &mut src,
            &format!("CREATE TABLE `{db}`.t{i} (id INT PRIMARY KEY, pad VARCHAR(200))"),
        )
        .await;
        exec(&mut src, &format!("INSERT INTO `{db}`.t{i} SELECT seq, REPEAT('x', 150 + seq % 50) FROM `{db}`.seq_1_to_60000")).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--threads",
        "2",
        "--rows",
        "1000",
        "-f",
        &format!("{db}.t*"),
    ];
    let mut killed_with_done = 0;
    // Kill at a moment when some chunks are done and others are not.
    let mut child = dump_command(&servers().source_url, dir.path())
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        let n = chunks_marked(dir.path());
        if n >= 20 {
            killed_with_done = n;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        killed_with_done > 0,
        "the dump finished before it could be killed; make the data bigger"
    );
    assert!(
        !dir.path().join("ferry-manifest.json").exists(),
        "killed dump must not look complete"
    );
    // Move the binlog on, so the second run's snapshot is at another Location.
    exec(&mut src, &format!("INSERT INTO `{db}`.side (v) VALUES (1)")).await;

    let out = dump(dir.path(), &args);
    assert!(out.contains("resumed"), "{out}");
    let m = manifest(dir.path());
    let locations = m["locations"].as_array().unwrap();
    assert_eq!(
        locations.len(),
        2,
        "a resumed dump lists both snapshot points"
    );
    let mut used = std::collections::BTreeSet::new();
    for t in m["tables"].as_array().unwrap() {
        let chunks = t["chunks"].as_array().unwrap();
        let idx: Vec<u64> = chunks
            .iter()
            .map(|c| c["index"].as_u64().unwrap())
            .collect();
        assert_eq!(
            idx,
            (0..chunks.len() as u64).collect::<Vec<_>>(),
            "every chunk once"
        );
        for c in chunks {
            used.insert(c["location"].as_u64().unwrap());
        }
        assert_eq!(t["rows"], 60000);
    }
    assert_eq!(used.len(), 2, "chunks were read at both Locations");
    assert!(
        !dir.path().join(".ferry-dump").exists(),
        "state removed once complete"
    );
    let leftovers = files_matching(dir.path(), |n| n.ends_with(".ferry-partial"));
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let mut tgt = target().await;
    exec(&mut tgt, &format!("DROP DATABASE IF EXISTS `{db}`")).await;
    replay_dump(dir.path(), &db);
    for i in 0..4 {
        let t = format!("t{i}");
        assert_eq!(
            checksum_table(&mut src, &db, &t).await,
            checksum_table(&mut tgt, &db, &t).await,
            "{t}"
        );
    }
    // Running again on a complete dump is refused, not silently redone.
    let again = dump_command(&servers().source_url, dir.path())
        .args(args)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a complete dump"));
}
