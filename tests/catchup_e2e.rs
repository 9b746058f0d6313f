//! dump → load → catchup: changes made on the source after the dump (rows and DDL) reach the
//! target, and `--until caught-up` stops at lag 0 with the target equal to the source. A second
//! run resumes from the checkpoint and changes nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;

fn catchup(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let s = servers();
    let out = run_ok(
        catchup_command(&s.source_url, &s.target_url)
            .args(["--from"])
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
    // Caught up: no lag worth the name (other tests keep writing to the shared source).
    assert!(s1["lag_seconds"].as_u64().unwrap() <= 2, "{s1}");
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
    let out = catchup_command(&s.source_url, &s.target_url)
        .args([
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

/// kill -9 of catchup at 5 random moments while the source takes writes; after the writes
/// stop, `--until caught-up` leaves the target equal to the source (tables with and without a
/// primary key: nothing lost, nothing doubled), whatever the worker count of each run.
#[tokio::test]
async fn kill_9_under_write_load_then_exact() {
    use rand::Rng;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let db = unique_db("ckill");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT, s VARCHAR(30))"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.nk (a INT, b VARCHAR(30))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT seq, seq, 'init' FROM `{db}`.seq_1_to_200"),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db]);
    load(dir.path(), &[]);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let db = db.clone();
        tokio::spawn(async move {
            let mut c = source().await;
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = rand::rng().random_range(1..400);
                let sql = match n % 4 {
                    0 => format!("REPLACE INTO `{db}`.t VALUES ({id}, {n}, 'w')"),
                    1 => format!("UPDATE `{db}`.t SET v = v + 1 WHERE id = {id}"),
                    2 => format!(
                        "BEGIN; DELETE FROM `{db}`.t WHERE id = {id}; INSERT INTO `{db}`.nk VALUES ({n}, 'x'); COMMIT"
                    ),
                    _ => format!("INSERT INTO `{db}`.nk VALUES ({}, 'dup'), ({}, 'dup')", n % 5, n % 5),
                };
                exec(&mut c, &sql).await;
            }
            n
        })
    };
    let s = servers();
    let task = format!("kill-{db}");
    for round in 0..5 {
        let mut child = catchup_command(&s.source_url, &s.target_url)
            .args([
                "--task-id",
                &task,
                // Another worker count at every restart: the saved one is kept while
                // workers' checkpoints differ, so routing (and skipping) stays exact.
                "--workers",
                ["4", "1", "3", "2", "4"][round],
                "--from",
            ])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let wait = rand::rng().random_range(150..700);
        tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "catchup exited early in round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap();
        let _ = child.wait();
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    assert!(writes > 50, "only {writes} writes");
    run_ok(
        catchup_command(&s.source_url, &s.target_url)
            .args(["--task-id", &task])
            .args(["--until", "caught-up", "--from"])
            .arg(dir.path()),
    );
    let mut tgt = target().await;
    for t in ["t", "nk"] {
        let a = checksum_table(&mut src, &db, t).await;
        let b = checksum_table(&mut tgt, &db, t).await;
        assert_eq!(
            a, b,
            "CHECKSUM TABLE differs for {db}.{t} after {writes} writes"
        );
    }
}

/// The source server restarts mid-stream: a running catch-up reconnects (with backoff), goes
/// on applying what is written after the restart, and stops cleanly at SIGTERM with exit 0.
/// A private server pair: restarting the shared source would disturb other tests.
#[tokio::test]
async fn source_restart_mid_stream_reconnects() {
    let pair = private_servers();
    let (src_url, tgt_url) = (pair.source_url.clone(), pair.target_url.clone());
    let mut src = connect(&src_url).await;
    // Until the restart, MariaDB's default metadata: no column names, no signedness (the
    // restarted server has FULL again, from its option file).
    exec(&mut src, "SET GLOBAL binlog_row_metadata = NO_LOG").await;
    exec(&mut src, "CREATE DATABASE rs").await;
    exec(
        &mut src,
        "CREATE TABLE rs.t (id INT UNSIGNED PRIMARY KEY, v VARCHAR(20), u BIGINT UNSIGNED, s SMALLINT UNSIGNED)",
    )
    .await;
    exec(&mut src, "CREATE TABLE rs.nk (a INT, b INT)").await;
    exec(
        &mut src,
        "INSERT INTO rs.t SELECT seq, 'init', 18446744073709551615 - seq, 65535 FROM rs.seq_1_to_100",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    run_ok(dump_command(&src_url, dir.path()).args(["-B", "rs"]));
    run_ok(
        ferry()
            .args(["load", "--target", &tgt_url, "--from"])
            .arg(dir.path()),
    );
    // The target has a column more, in the middle: it keeps its default. Without column
    // names in the binlog, the schema tracker (the dump's columns, then the DDL) maps them.
    let mut tgt = connect(&tgt_url).await;
    exec(
        &mut tgt,
        "ALTER TABLE rs.t ADD COLUMN extra INT DEFAULT 7 AFTER v",
    )
    .await;
    let mut child = catchup_command(&src_url, &tgt_url)
        .args(["--output", "json", "--from"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for i in 101..=200 {
        if i == 150 {
            exec(
                &mut src,
                "ALTER TABLE rs.t ADD COLUMN w INT DEFAULT 5 AFTER id",
            )
            .await;
        }
        exec(
            &mut src,
            &format!(
                "INSERT INTO rs.t (id, v, u, s) VALUES ({i}, 'before', 18446744073709551615 - {i}, 65535 - {i})"
            ),
        )
        .await;
        exec(&mut src, &format!("INSERT INTO rs.nk VALUES ({i}, 1)")).await;
    }
    drop(src);
    // Restart the source: a clean shutdown, a pause, the same server started again.
    pair.restart("source", std::time::Duration::from_secs(2))
        .await;
    let mut src = connect(&src_url).await;
    for i in 201..=300 {
        exec(
            &mut src,
            &format!("INSERT INTO rs.t (id, v, u, s, w) VALUES ({i}, 'after', 18446744073709551615 - {i}, {i}, {i})"),
        )
        .await;
        exec(
            &mut src,
            &format!("UPDATE rs.nk SET b = b + 1 WHERE a = {}", i - 100),
        )
        .await;
    }
    // The running catch-up (no --until) gets there by itself.
    let waited = std::time::Instant::now();
    let all = "SELECT CONCAT_WS(',', id, v, u, s, w) FROM rs.t ORDER BY id";
    loop {
        use mysql_async::prelude::Queryable;
        let a: Vec<String> = src.query(all).await.unwrap();
        // An error while the target is still before the DDL: not there yet.
        let b: Vec<String> = tgt.query(all).await.unwrap_or_default();
        let c = checksum_table(&mut src, "rs", "nk").await;
        let d = checksum_table(&mut tgt, "rs", "nk").await;
        if a == b && c == d {
            break;
        }
        if waited.elapsed().as_secs() > 90 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "catch-up did not resume after the source restart: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        summary["reconnects"].as_u64().unwrap() >= 1,
        "{summary} {stderr}"
    );
    use mysql_async::prelude::Queryable;
    let n: Option<u64> = tgt.query_first("SELECT COUNT(*) FROM rs.nk").await.unwrap();
    assert_eq!(
        n,
        Some(100),
        "keyless rows doubled or lost across the restart"
    );
    let extra: Option<u64> = tgt
        .query_first("SELECT COUNT(*) FROM rs.t WHERE extra = 7")
        .await
        .unwrap();
    assert_eq!(extra, Some(300));
}

/// The type matrix (hostile names, extremes, NULLs) through catch-up: inserts, updates that
/// change the key, updates of every column, deletes; then DDL mid-stream (ADD / DROP / MODIFY
/// COLUMN, RENAME TABLE, a new table with generated columns and a unique key, TRUNCATE), all
/// with 3 workers. Every table's CHECKSUM TABLE equals the source's.
#[tokio::test]
async fn type_matrix_and_ddl_replicate_exactly() {
    use harness::matrix::*;
    let db = format!("{DB_BASE}{}", unique_db("_c"));
    create_matrix(&db).await;
    let qdb = format!("`{}`", db.replace('`', "``"));
    let q = format!("{qdb}.`{}`", TABLE.replace('`', "``"));
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db]);
    load(dir.path(), &[]);
    let mut src = source().await;
    exec(&mut src, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
    exec(&mut src, "SET SESSION time_zone = '-03:00'").await;
    let stmts = [
        format!("UPDATE {q} SET `id` = `id` + 100"),
        format!("INSERT INTO {q} VALUES {}", ROWS.join(", ")),
        format!("UPDATE {q} SET `vc` = CONCAT(IFNULL(`vc`, ''), '✓'), `bi` = -`id`, `j` = JSON_OBJECT('k', `id`), `ts` = '2001-02-03 04:05:06.789', `tm` = '-100:00:00.5', `b64` = b'1', `e` = 'b', `st` = 'x,z' WHERE `id` < 100"),
        format!("DELETE FROM {q} WHERE `id` IN (3, 104)"),
        format!("UPDATE {q} SET `lb` = REPEAT(x'fe', 20000), `dec` = -0.5 WHERE `id` = 102"),
        format!("ALTER TABLE {q} ADD COLUMN `added` VARCHAR(10) DEFAULT 'dflt' AFTER `ti`"),
        format!("UPDATE {q} SET `added` = 'set' WHERE `id` = 1"),
        format!("ALTER TABLE {q} DROP COLUMN `mb`"),
        format!("ALTER TABLE {q} MODIFY COLUMN `si` INT"),
        format!("UPDATE {q} SET `si` = 100000 WHERE `id` = 2"),
        format!("RENAME TABLE {q} TO {qdb}.`renamed`"),
        format!("INSERT INTO {qdb}.`renamed` (`id`, `si`) VALUES (500, 70000)"),
        format!("CREATE TABLE {qdb}.`gen` (id INT PRIMARY KEY, a INT, b INT AS (a * 2) VIRTUAL, c VARCHAR(20) AS (CONCAT('c', a)) PERSISTENT, u VARCHAR(10), UNIQUE KEY (u))"),
        format!("INSERT INTO {qdb}.`gen` (id, a, u) VALUES (1, 1, 'x'), (2, 2, 'y'), (3, 3, NULL)"),
        // A swap of unique values inside one transaction.
        format!("BEGIN; UPDATE {qdb}.`gen` SET u = NULL WHERE id = 1; UPDATE {qdb}.`gen` SET u = 'x', a = 20 WHERE id = 2; UPDATE {qdb}.`gen` SET u = 'y' WHERE id = 1; COMMIT"),
        format!("CREATE TABLE {qdb}.`trunc` (id INT PRIMARY KEY)"),
        format!("INSERT INTO {qdb}.`trunc` VALUES (1), (2)"),
        format!("TRUNCATE TABLE {qdb}.`trunc`"),
        format!("INSERT INTO {qdb}.`trunc` VALUES (3)"),
    ];
    for st in &stmts {
        exec(&mut src, st).await;
    }
    let sum = catchup(dir.path(), &["--workers", "3"]);
    assert_eq!(sum["ddl"].as_u64(), Some(7), "{sum}");
    let mut tgt = target().await;
    for t in ["renamed", "gen", "trunc"] {
        let a = checksum_table(&mut src, &db, t).await;
        assert!(a.is_some(), "{t}");
        assert_eq!(
            a,
            checksum_table(&mut tgt, &db, t).await,
            "CHECKSUM TABLE differs for {t}"
        );
    }
}

/// Creates `db`.t (id INT PRIMARY KEY) on the source (through `src`) and on the target, for a
/// catch-up from a GTID with no dump; returns a target connection and the source's
/// `@@gtid_binlog_pos` after the DDL.
async fn same_table_on_both(src: &mut mysql_async::Conn, db: &str) -> (mysql_async::Conn, String) {
    use mysql_async::prelude::Queryable;
    let mut tgt = target().await;
    for conn in [&mut *src, &mut tgt] {
        exec(conn, &format!("CREATE DATABASE `{db}`")).await;
        exec(conn, &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)")).await;
    }
    let start: String = src
        .query_first("SELECT @@gtid_binlog_pos")
        .await
        .unwrap()
        .unwrap();
    (tgt, start)
}

/// `--start-gtid` (after what the target has) and `--until GTID` stop exactly after that
/// transaction; the same task then resumes to `--until caught-up`. `--until FILE:POS` and a
/// bad `--until` too.
#[tokio::test]
async fn start_gtid_and_until_bounds() {
    use mysql_async::prelude::Queryable;
    let db = unique_db("cgtid");
    let mut src = source().await;
    let (mut tgt, start) = same_table_on_both(&mut src, &db).await;
    let mut gtids = Vec::new();
    let mut positions = Vec::new();
    for i in 1..=10 {
        exec(&mut src, &format!("INSERT INTO `{db}`.t VALUES ({i})")).await;
        let g: String = src
            .query_first("SELECT @@last_gtid")
            .await
            .unwrap()
            .unwrap();
        gtids.push(g);
        let row: mysql_async::Row = src
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        positions.push(format!(
            "{}:{}",
            row.get::<String, _>(0).unwrap(),
            row.get::<u64, _>(1).unwrap()
        ));
    }
    let s = servers();
    let run = |extra: &[&str]| {
        let mut c = catchup_command(&s.source_url, &s.target_url);
        c.args(["-B", &db, "--start-gtid", &start, "--output", "json"])
            .args(extra);
        c
    };
    let count = |n: u64| format!("SELECT COUNT(*) = {n} FROM `{db}`.t");
    // Stop once the 4th insert is applied.
    run_ok(&mut run(&["--until", &gtids[3]]));
    let ok: Option<bool> = tgt.query_first(count(4)).await.unwrap();
    assert_eq!(ok, Some(true));
    // The same task (named after the start) goes on to the position after the 7th insert.
    run_ok(&mut run(&["--until", &positions[6]]));
    let ok: Option<bool> = tgt.query_first(count(7)).await.unwrap();
    assert_eq!(ok, Some(true));
    run_ok(&mut run(&["--until", "caught-up"]));
    let ok: Option<bool> = tgt.query_first(count(10)).await.unwrap();
    assert_eq!(ok, Some(true));
    let out = run(&["--until", "tomorrow"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--until"));
}

/// A dump whose tables were read at different Locations (a resumed or lock-free dump):
/// catch-up starts at the earliest, and a table read at a later Location does not get the
/// changes in between again (a table without a key would hold them twice).
#[tokio::test]
async fn tables_read_at_later_locations_get_no_change_twice() {
    let db = unique_db("cfloor");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.nk (a INT, b VARCHAR(10))"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY, v INT)"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.nk VALUES (1, 'x'), (1, 'x')"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t VALUES (1, 1), (2, 2)"),
    )
    .await;
    let early = tempfile::tempdir().unwrap();
    dump(early.path(), &["-B", &db]);
    // Changes between the two Locations; `nk` is then dumped again, at the later one.
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.nk VALUES (2, 'between'), (1, 'x')"),
    )
    .await;
    exec(
        &mut src,
        &format!("UPDATE `{db}`.t SET v = 20 WHERE id = 2"),
    )
    .await;
    let late = tempfile::tempdir().unwrap();
    dump(late.path(), &["-B", &db]);
    // After both: changes every table must get.
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.nk VALUES (3, 'after')"),
    )
    .await;
    exec(
        &mut src,
        &format!("DELETE FROM `{db}`.nk WHERE b = 'x' LIMIT 1"),
    )
    .await;
    exec(&mut src, &format!("INSERT INTO `{db}`.t VALUES (3, 3)")).await;
    // The combined dump: `t` from the early snapshot, `nk` from the late one.
    let name = "ferry-manifest.json";
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(early.path().join(name)).unwrap()).unwrap();
    let late_m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(late.path().join(name)).unwrap()).unwrap();
    let locations = m["locations"].as_array_mut().unwrap();
    locations.push(late_m["locations"][0].clone());
    let late_index = locations.len() - 1;
    let late_nk = late_m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nk")
        .unwrap()
        .clone();
    for t in m["tables"].as_array_mut().unwrap() {
        if t["name"] == "nk" {
            *t = late_nk.clone();
            for c in t["chunks"].as_array_mut().unwrap() {
                c["location"] = serde_json::json!(late_index);
                for f in c["files"].as_array().unwrap() {
                    let f = f["name"].as_str().unwrap();
                    std::fs::copy(late.path().join(f), early.path().join(f)).unwrap();
                }
            }
        }
    }
    std::fs::write(early.path().join(name), serde_json::to_vec(&m).unwrap()).unwrap();
    load(early.path(), &[]);
    let s = catchup(early.path(), &[]);
    assert!(s["rows"].as_u64().unwrap() >= 3, "{s}");
    let mut tgt = target().await;
    for t in ["nk", "t"] {
        assert_eq!(
            checksum_table(&mut src, &db, t).await,
            checksum_table(&mut tgt, &db, t).await,
            "CHECKSUM TABLE differs for {t}"
        );
    }
}

/// A running catch-up commits what it applied while the source goes idle, also when the last
/// events it read were of other databases (they end no transaction of ours).
#[tokio::test]
async fn applied_changes_are_committed_when_the_source_goes_idle() {
    use mysql_async::prelude::Queryable;
    let db = unique_db("cidle");
    let other = unique_db("cidle_other");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{other}`")).await;
    let (mut tgt, start) = same_table_on_both(&mut src, &db).await;
    let s = servers();
    let mut child = catchup_command(&s.source_url, &s.target_url)
        .args(["-B", &db, "--start-gtid", &start])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // Ours, then at once a statement of another database; then nothing.
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t VALUES (1); CREATE TABLE `{other}`.x (a INT)"),
    )
    .await;
    let waited = std::time::Instant::now();
    loop {
        let n: Option<u64> = tgt
            .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
            .await
            .unwrap();
        if n == Some(1) {
            break;
        }
        if waited.elapsed().as_secs() > 20 || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "the applied row was not committed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
