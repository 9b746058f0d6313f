//! Start positions from a GTID set or a time, and `--until` bounds, against a real MariaDB
//! source: transactions written across FLUSH BINARY LOGS (and pauses, for times); each
//! returned position is checked by streaming from it — the first transaction there is the
//! expected one — and by `BINLOG_GTID_POS`. Purged, future and diverged inputs are errors.
//!
//! The tests share the source's binlog (FLUSH, PURGE), so they run one at a time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use ferry_catchup::decode::Change;
use ferry_catchup::locate::{self, LocateError, Until};
use ferry_catchup::source::{stream, StreamStart};
use ferry_shared::failure::Classify;
use ferry_shared::location::BinlogPos;
use harness::*;
use mysql_async::prelude::Queryable;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A replica server id of its own for every stream.
fn server_id() -> u32 {
    static N: AtomicU32 = AtomicU32::new(0);
    3_000_000_000 + (std::process::id() % 100_000) * 100 + N.fetch_add(1, Ordering::Relaxed)
}

async fn master_status(c: &mut mysql_async::Conn) -> BinlogPos {
    let row: mysql_async::Row = c.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
    BinlogPos::new(row.get::<String, _>(0).unwrap(), row.get(1).unwrap())
}

async fn now(c: &mut mysql_async::Conn) -> u32 {
    c.query_first("SELECT UNIX_TIMESTAMP()")
        .await
        .unwrap()
        .unwrap()
}

/// Inserts `id` into `db`.t in its own transaction; returns its GTID.
async fn insert(c: &mut mysql_async::Conn, db: &str, id: u32) -> String {
    exec(c, &format!("INSERT INTO `{db}`.t VALUES ({id})")).await;
    c.query_first("SELECT @@last_gtid").await.unwrap().unwrap()
}

async fn table(c: &mut mysql_async::Conn, prefix: &str) -> String {
    let db = unique_db(prefix);
    exec(c, &format!("CREATE DATABASE `{db}`")).await;
    exec(c, &format!("CREATE TABLE `{db}`.t (id INT PRIMARY KEY)")).await;
    db
}

/// The first transaction streamed from `at`: its GTID and the first row it writes (`None`
/// when the binlog ends there).
async fn first_txn(at: &BinlogPos) -> Option<(String, String, i64)> {
    let start = StreamStart {
        file: at.file.clone(),
        pos: at.pos,
        server_id: server_id(),
        non_blocking: true,
    };
    let mut gtid = None;
    let mut found = None;
    stream(source().await, &start, |p| match p.change {
        Change::Gtid(g) => {
            gtid = Some(g);
            true
        }
        Change::Rows { table, event } => {
            let id = match &event.rows[0].1.as_ref().unwrap()[0] {
                Some(ferry_catchup::rows::Cell::Int(i)) => *i,
                other => panic!("{other:?}"),
            };
            found = Some((table.db.clone(), id));
            false
        }
        Change::Query { .. } | Change::Commit { .. } if gtid.is_some() => false,
        _ => true,
    })
    .await
    .unwrap();
    let (db, id) = found?;
    Some((gtid.unwrap(), db, id))
}

async fn start(t: u32) -> Result<BinlogPos, LocateError> {
    locate::start_for_time(&mut source().await, t, server_id()).await
}

async fn binlog_gtid_pos(c: &mut mysql_async::Conn, at: &BinlogPos) -> String {
    c.exec_first::<Option<String>, _, _>("SELECT BINLOG_GTID_POS(?, ?)", (&at.file, at.pos))
        .await
        .unwrap()
        .flatten()
        .unwrap()
}

#[tokio::test]
async fn gtid_starts_just_after_the_given_transaction() {
    let _serial = SERIAL.lock().await;
    let mut src = source().await;
    let db = table(&mut src, "cloc_gtid").await;
    let mut gtids = Vec::new();
    let mut files = Vec::new();
    for id in 1..=5 {
        if id == 3 || id == 5 {
            exec(&mut src, "FLUSH BINARY LOGS").await;
        }
        gtids.push(insert(&mut src, &db, id).await);
        files.push(master_status(&mut src).await.file);
    }
    for i in 0..4 {
        let at = locate::start_for_gtid(&mut src, &gtids[i], server_id())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", gtids[i]));
        // The next transaction, in its own file (after a FLUSH: at the new file's first one).
        assert_eq!(at.file, files[i + 1], "after {}", gtids[i]);
        let (gtid, in_db, id) = first_txn(&at).await.expect("a transaction");
        assert_eq!(
            (gtid.as_str(), in_db.as_str(), id),
            (gtids[i + 1].as_str(), db.as_str(), i as i64 + 2),
            "from {at}"
        );
        assert_eq!(binlog_gtid_pos(&mut src, &at).await, gtids[i], "at {at}");
    }
    // Everything applied: the start is the binlog's current end.
    let at = locate::start_for_gtid(&mut src, &gtids[4], server_id())
        .await
        .unwrap();
    assert_eq!(at, master_status(&mut src).await);
    assert_eq!(first_txn(&at).await, None);
}

#[tokio::test]
async fn gtid_future_diverged_and_foreign_sets_are_clear_errors() {
    let _serial = SERIAL.lock().await;
    let mut src = source().await;
    let db = table(&mut src, "cloc_bad").await;
    let g: ferry_shared::location::MariadbGtid = insert(&mut src, &db, 1).await.parse().unwrap();

    let ahead = format!("{}-{}-{}", g.domain, g.server, g.seq + 1000);
    let e = locate::start_for_gtid(&mut src, &ahead, server_id())
        .await
        .unwrap_err();
    assert!(matches!(e, LocateError::Future { .. }), "{e}");
    assert!(
        e.to_string().contains(&ahead) && e.to_string().contains(&g.to_string()),
        "{e}"
    );
    let other_domain = format!("{g},77-1-1");
    let e = locate::start_for_gtid(&mut src, &other_domain, server_id())
        .await
        .unwrap_err();
    assert!(matches!(e, LocateError::Future { .. }), "{e}");

    let diverged = format!("{}-{}-{}", g.domain, g.server + 76, g.seq);
    let e = locate::start_for_gtid(&mut src, &diverged, server_id())
        .await
        .unwrap_err();
    assert!(matches!(e, LocateError::Diverged { .. }), "{e}");
    assert!(e.to_string().contains(&g.to_string()), "{e}");

    let e = locate::start_for_gtid(
        &mut src,
        "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
        server_id(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, LocateError::Input(_)), "{e}");
    assert!(e.to_string().contains("MariaDB"), "{e}");
    assert!(!e.is_transient());
}

#[tokio::test]
async fn purged_gtids_and_times_name_the_oldest_file() {
    let _serial = SERIAL.lock().await;
    let mut src = source().await;
    let db = table(&mut src, "cloc_purge").await;
    let old = insert(&mut src, &db, 1).await;
    let last_before = insert(&mut src, &db, 2).await;
    exec(&mut src, "FLUSH BINARY LOGS").await;
    insert(&mut src, &db, 3).await;
    let oldest = master_status(&mut src).await.file;
    // MariaDB keeps a file until its binlog checkpoint passes (InnoDB flushed its commits).
    for _ in 0..100 {
        exec(&mut src, &format!("PURGE BINARY LOGS TO '{oldest}'")).await;
        let listed: String = src
            .query_first::<mysql_async::Row, _>("SHOW BINARY LOGS")
            .await
            .unwrap()
            .unwrap()
            .get(0)
            .unwrap();
        if listed == oldest {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The oldest file starts right after `last_before`: still a valid start.
    let at = locate::start_for_gtid(&mut src, &last_before, server_id())
        .await
        .unwrap();
    assert_eq!(at.file, oldest);
    assert_eq!(first_txn(&at).await.unwrap().2, 3);
    // `old` is one transaction short of the oldest file's state: that one is purged.
    let e = locate::start_for_gtid(&mut src, &old, server_id())
        .await
        .unwrap_err();
    assert!(matches!(e, LocateError::Purged { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&oldest) && msg.contains(&last_before) && msg.contains("purged"),
        "{msg}"
    );

    let long_ago = locate::parse_time("2001-01-01 00:00:00").unwrap();
    let e = locate::start_for_time(&mut src, long_ago, server_id())
        .await
        .unwrap_err();
    assert!(matches!(e, LocateError::TimeTooOld { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&oldest) && msg.contains("2001-01-01 00:00:00 UTC") && msg.contains("UTC"),
        "{msg}"
    );
}

/// Applies the stream from `start` the way the catch-up loop does, asking `until` before every
/// transaction; returns the GTIDs applied and the one it stopped before.
async fn run_until(start: &BinlogPos, until: &Until) -> (Vec<String>, Option<String>) {
    let stream_start = StreamStart {
        file: start.file.clone(),
        pos: start.pos,
        server_id: server_id(),
        non_blocking: true,
    };
    let (mut file, mut last_end) = (start.file.clone(), start.pos);
    let mut last_gtid: Option<String> = None;
    let mut applied = Vec::new();
    let mut stopped_before = None;
    stream(source().await, &stream_start, |p| {
        match &p.change {
            Change::Rotate {
                file: f,
                pos,
                artificial: false,
            } => {
                file = f.clone();
                last_end = *pos;
                return true;
            }
            Change::Gtid(g) => {
                // `last_end` is where this transaction's GTID event starts.
                if until.reached(&file, last_end, last_gtid.as_deref(), p.timestamp) {
                    stopped_before = Some(g.clone());
                    return false;
                }
                applied.push(g.clone());
                last_gtid = Some(g.clone());
            }
            _ => {}
        }
        if p.end_pos > 0 {
            last_end = p.end_pos;
        }
        true
    })
    .await
    .unwrap();
    (applied, stopped_before)
}

#[tokio::test]
async fn time_starts_at_the_first_transaction_at_or_after_it_and_until_stops() {
    let _serial = SERIAL.lock().await;
    let mut src = source().await;
    let db = table(&mut src, "cloc_time").await;
    exec(&mut src, "FLUSH BINARY LOGS").await;
    // Strictly after the moment every listed file was opened (the oldest may be this new one).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t_a0 = now(&mut src).await;
    let ga = insert(&mut src, &db, 1).await;
    let t_a1 = now(&mut src).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    exec(&mut src, "FLUSH BINARY LOGS").await;
    let t_b0 = now(&mut src).await;
    let gb = insert(&mut src, &db, 2).await;
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let t_c0 = now(&mut src).await;
    let gc = insert(&mut src, &db, 3).await;
    let t_c1 = now(&mut src).await;
    assert!(t_b0 >= t_a1 + 2 && t_c0 >= t_b0 + 2);

    let at_a = start(t_a0).await.unwrap();
    assert_eq!(first_txn(&at_a).await.unwrap().0, ga, "{at_a}");
    for (t, want) in [(t_a1 + 1, &gb), (t_b0, &gb), (t_c0, &gc)] {
        let at = start(t).await.unwrap();
        let (gtid, in_db, _) = first_txn(&at).await.expect("a transaction");
        assert_eq!((&gtid, &in_db), (want, &db), "t={t} at {at}");
        // A transaction boundary: the binlog GTID state there is the one before `want`.
        let before = if want == &gb { &ga } else { &gb };
        assert_eq!(&binlog_gtid_pos(&mut src, &at).await, before);
    }
    // Nothing at or after `t` yet: the binlog's current end.
    while now(&mut src).await <= t_c1 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let at = start(t_c1 + 1).await.unwrap();
    assert_eq!(at, master_status(&mut src).await);
    let e = start(now(&mut src).await + 3600).await.unwrap_err();
    assert!(matches!(e, LocateError::TimeInFuture { .. }), "{e}");

    // --until, as the apply loop asks it, from A's start.
    let at_c = start(t_c0).await.unwrap();
    let cases = [
        (Until::Time(t_a1), vec![&ga], Some(&gb)),
        (Until::Time(t_b0), vec![&ga, &gb], Some(&gc)),
        (gb.parse().unwrap(), vec![&ga, &gb], Some(&gc)),
        (Until::Position(at_c.clone()), vec![&ga, &gb], Some(&gc)),
        (
            Until::Position(BinlogPos::new(&at_c.file, at_c.pos + 1)),
            vec![&ga, &gb, &gc],
            None,
        ),
        (Until::CaughtUp, vec![&ga, &gb, &gc], None),
    ];
    for (until, applied, before) in cases {
        let (got, stopped) = run_until(&at_a, &until).await;
        let got: Vec<&String> = got.iter().collect();
        assert_eq!(got, applied, "--until {until}");
        assert_eq!(stopped.as_ref(), before, "--until {until}");
    }
}
