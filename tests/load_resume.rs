//! Acceptance: `ferry load` is exact under kill -9 and when several processes share a task.
//!
//! - killed at 5 random moments and restarted each time, the target ends equal to the source,
//!   and the checkpoint holds each chunk once (a table without a key would show a second copy);
//! - three processes with one `--task-id` finish with the exact result, and the files a killed
//!   process held are finished by the others.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;
use rand::Rng;
use std::time::Duration;

const TABLES: &[&str] = &["with_pk", "no_key", "uniq", "wide"];

async fn make_source(db: &str) -> u64 {
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE `{db}`.with_pk (id INT PRIMARY KEY, k INT, s VARCHAR(64), KEY kk (k))"
        ),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.no_key (a INT, b VARCHAR(64))"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.uniq (u VARCHAR(40) NOT NULL, v INT, UNIQUE KEY (u))"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.wide (id BIGINT AUTO_INCREMENT PRIMARY KEY, t TEXT)"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.with_pk SELECT seq, seq % 97, MD5(seq) FROM `{db}`.seq_1_to_60000"
        ),
    )
    .await;
    // Duplicate rows on purpose: a chunk loaded twice would not be noticed by a key.
    exec(&mut src, &format!("INSERT INTO `{db}`.no_key SELECT seq % 1000, MD5(seq % 1000) FROM `{db}`.seq_1_to_60000")).await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.uniq SELECT SHA1(seq), seq FROM `{db}`.seq_1_to_30000"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.wide (t) SELECT REPEAT(MD5(seq), 20) FROM `{db}`.seq_1_to_20000"
        ),
    )
    .await;
    170_000
}

async fn assert_target_equals_source(db: &str) {
    let mut src = source().await;
    let mut tgt = target().await;
    for t in TABLES {
        let a = checksum_table(&mut src, db, t).await;
        let b = checksum_table(&mut tgt, db, t).await;
        assert!(a.is_some());
        assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{t}");
    }
}

async fn checkpoint_rows(task: &str) -> (u64, u64) {
    let mut tgt = target().await;
    // Before any load created `ferry_meta`, nothing is checkpointed.
    let r: Option<(u64, Option<u64>)> = tgt
        .exec_first(
            "SELECT COUNT(*), CAST(SUM(`rows`) AS UNSIGNED) FROM ferry_meta.load_chunk_v1 WHERE task_id = ?",
            (task,),
        )
        .await
        .unwrap_or(Some((0, None)));
    let (n, rows) = r.unwrap();
    (n, rows.unwrap_or(0))
}

fn spawn_load(dir: &std::path::Path, task: &str) -> std::process::Child {
    load_command(dir)
        .args([
            "--task-id",
            task,
            "--chunk-size",
            "256KiB",
            "--threads",
            "3",
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ferry load")
}

/// Runs a load of `task` to its end; it must succeed with no mismatch.
fn finish_load(dir: &std::path::Path, task: &str) {
    let out = spawn_load(dir, task).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the final load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["mismatches"], 0, "{summary}");
}

/// Starts a load of `task`, waits until the task has `chunks` chunks checkpointed (at most
/// 30 s), then `wait_ms` more, and kills it with SIGKILL; true if it was still running.
async fn kill_after_commits(dir: &std::path::Path, task: &str, chunks: u64, wait_ms: u64) -> bool {
    let mut child = spawn_load(dir, task);
    let mut waited = 0;
    while checkpoint_rows(task).await.0 < chunks && waited < 30_000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 5;
    }
    tokio::time::sleep(Duration::from_millis(wait_ms)).await;
    let running = child.try_wait().unwrap().is_none();
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    running
}

#[tokio::test]
async fn kill_9_at_random_moments_then_exact() {
    let db = unique_db("lkill");
    let total = make_source(&db).await;
    let dir = tempfile::tempdir().unwrap();
    dump(
        dir.path(),
        &["-B", &db, "--rows", "7000", "--compress", "zstd"],
    );
    let task = format!("kill-{db}");
    let mut rng = rand::rng();
    let mut killed_mid_way = 0;
    for round in 0..5 {
        let before = checkpoint_rows(&task).await.0;
        // Kill at a random moment after this run committed something of its own.
        let wait = rng.random_range(0..120);
        if kill_after_commits(dir.path(), &task, before + 1, wait).await {
            killed_mid_way += 1;
        }
        let (chunks, rows) = checkpoint_rows(&task).await;
        eprintln!("round {round}: killed {wait} ms after its first commit; {chunks} chunks / {rows} rows checkpointed");
    }
    assert!(
        killed_mid_way >= 3,
        "the load finished before most kills; make it bigger"
    );
    finish_load(dir.path(), &task);
    assert_target_equals_source(&db).await;
    let (_, rows) = checkpoint_rows(&task).await;
    assert_eq!(rows, total, "checkpointed rows: each chunk exactly once");
    // The index deferred by the first run is back, whichever run finished the table.
    let mut tgt = target().await;
    let idx: Option<String> = tgt
        .exec_first(
            "SELECT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'with_pk' AND INDEX_NAME = 'kk'",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(idx.as_deref(), Some("kk"));
}

#[tokio::test]
async fn three_processes_share_a_task_and_finish_a_killed_ones_files() {
    let db = unique_db("lthree");
    let total = make_source(&db).await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--rows", "4000"]);
    let task = format!("three-{db}");
    let a = spawn_load(dir.path(), &task);
    let b = spawn_load(dir.path(), &task);
    let mut c = spawn_load(dir.path(), &task);
    // Kill one once it holds a claim of its own (owner ids carry the pid).
    let mine = format!("%:{}:%", c.id());
    let mut waited = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 10;
        let mut tgt = target().await;
        let held: Option<u64> = tgt
            .exec_first(
                "SELECT COUNT(*) FROM ferry_meta.load_file_v1 WHERE task_id = ? AND state = 1 AND owner LIKE ?",
                (&task, &mine),
            )
            .await
            .unwrap_or(Some(0));
        if held.unwrap_or(0) >= 1 || waited > 20_000 {
            break;
        }
    }
    c.kill().unwrap();
    let _ = c.wait();
    let oa = a.wait_with_output().unwrap();
    let ob = b.wait_with_output().unwrap();
    for o in [&oa, &ob] {
        assert!(
            o.status.success(),
            "a surviving process failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let sa: serde_json::Value = serde_json::from_slice(&oa.stdout).unwrap();
    let sb: serde_json::Value = serde_json::from_slice(&ob.stdout).unwrap();
    let taken = sa["files_taken_over"].as_u64().unwrap() + sb["files_taken_over"].as_u64().unwrap();
    let chunks = sa["chunks"].as_u64().unwrap() + sb["chunks"].as_u64().unwrap();
    eprintln!("survivors loaded {chunks} chunks; took over {taken} files");
    assert!(
        sa["chunks"].as_u64().unwrap() > 0 && sb["chunks"].as_u64().unwrap() > 0,
        "both survivors worked"
    );
    assert_target_equals_source(&db).await;
    let (_, rows) = checkpoint_rows(&task).await;
    assert_eq!(rows, total);
    let mut tgt = target().await;
    let left: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM ferry_meta.load_file_v1 WHERE task_id = ? AND state <> 2",
            (&task,),
        )
        .await
        .unwrap();
    assert_eq!(left, Some(0));
    assert!(
        taken > 0,
        "the killed process held files that the others finished"
    );
}

/// Many small tables (the shape of multi-tenant schemas): files are claimed many at once and
/// small tables keep their indexes while loading. Killed twice mid-way, the load still ends
/// exact: each chunk checkpointed once, every table equal to the source with its index, no
/// index definition left waiting.
#[tokio::test]
async fn many_small_tables_kill_9_then_exact() {
    const N: usize = 150;
    let db = unique_db("lsmall");
    let mut src = source().await;
    let mut sql = format!("CREATE DATABASE `{db}`; USE `{db}`;");
    for i in 0..N {
        sql.push_str(&format!(
            "CREATE TABLE t{i:03} (id INT PRIMARY KEY, tenant INT, name VARCHAR(32), KEY by_tenant (tenant, name));\
             INSERT INTO t{i:03} VALUES (1, {i}, 'a'), (2, {i}, 'b'), (3, {i}, 'c');"
        ));
    }
    exec(&mut src, &sql).await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db]);
    let task = format!("small-{db}");
    let mut killed_mid_way = 0;
    for round in 0..2 {
        let before = checkpoint_rows(&task).await.0;
        if kill_after_commits(dir.path(), &task, before + 6, 0).await {
            killed_mid_way += 1;
        }
        let (chunks, rows) = checkpoint_rows(&task).await;
        eprintln!("round {round}: {chunks} chunks / {rows} rows checkpointed");
    }
    assert!(killed_mid_way >= 1, "the load finished before every kill");
    finish_load(dir.path(), &task);
    let (chunks, rows) = checkpoint_rows(&task).await;
    assert_eq!(
        (chunks, rows),
        (N as u64, 3 * N as u64),
        "each chunk exactly once"
    );
    let mut tgt = target().await;
    for i in 0..N {
        let t = format!("t{i:03}");
        assert_eq!(
            checksum_table(&mut src, &db, &t).await,
            checksum_table(&mut tgt, &db, &t).await,
            "CHECKSUM TABLE differs for {db}.{t}"
        );
    }
    let indexes: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(DISTINCT TABLE_NAME) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND INDEX_NAME = 'by_tenant'",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(indexes, Some(N as u64), "every table has its index");
    let waiting: Option<(u64, u64)> = tgt
        .exec_first(
            "SELECT SUM(state <> 2), SUM(restore_sql IS NOT NULL AND restore_sql <> '') FROM ferry_meta.load_table_v1 WHERE task_id = ?",
            (&task,),
        )
        .await
        .unwrap();
    assert_eq!(
        waiting,
        Some((0, 0)),
        "all tables finished; small ones never deferred"
    );
}
