//! The binlog stream from a real MariaDB source, read as a replica and decoded by ferry's own
//! decode path: inserts, updates and deletes of several types come back exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use ferry_catchup::decode::Change;
use ferry_catchup::rows::{Cell, RowsKind};
use ferry_catchup::source::{stream, StreamStart};
use harness::*;
use mysql_async::prelude::Queryable;

#[tokio::test]
async fn row_changes_stream_back_exactly() {
    let db = unique_db("cstream");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, u INT UNSIGNED, d DECIMAL(10,3), \
             dt DATETIME(6), tm TIME(2), s VARCHAR(50), b BLOB, e ENUM('x','y','z'), bt BIT(5))"
        ),
    )
    .await;
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = src
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.t VALUES \
             (1, 4294967295, -1234567.891, '2024-02-29 12:34:56.123456', '-838:59:58.5', 'héllo', x'00ff', 'y', b'10101'), \
             (2, NULL, 0.5, '1000-01-01 00:00:00', '00:00:00', '', '', 'z', b'0')"
        ),
    )
    .await;
    exec(
        &mut src,
        &format!("UPDATE `{db}`.t SET s = 'changed' WHERE id = 2"),
    )
    .await;
    exec(&mut src, &format!("DELETE FROM `{db}`.t WHERE id = 1")).await;

    let conn = source().await;
    let start = StreamStart {
        file,
        pos,
        server_id: 4_000_000_000 - std::process::id() % 1000,
        non_blocking: true,
    };
    let mut changes = Vec::new();
    let table = db.clone();
    stream(conn, &start, |p| {
        if let Change::Rows { table: tm, event } = &p.change {
            if tm.db == table {
                changes.push(event.clone());
            }
        }
        true
    })
    .await
    .unwrap();
    assert_eq!(changes.len(), 3, "{changes:#?}");
    assert_eq!(changes[0].kind, RowsKind::Write);
    let row1: Vec<Cell> = changes[0].rows[0]
        .1
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(row1[0], Cell::Int(1));
    assert_eq!(row1[1], Cell::UInt(4294967295));
    assert_eq!(row1[2], Cell::Text("-1234567.891".into()));
    assert_eq!(row1[3], Cell::Text("2024-02-29 12:34:56.123456".into()));
    assert_eq!(row1[4], Cell::Text("-838:59:58.50".into()));
    assert_eq!(row1[5], Cell::Bytes("héllo".as_bytes().to_vec()));
    assert_eq!(row1[6], Cell::Bytes(vec![0, 0xff]));
    assert_eq!(row1[7], Cell::Enum(2));
    assert_eq!(row1[8], Cell::Bytes(vec![0b10101]));
    let row2: Vec<Cell> = changes[0].rows[1]
        .1
        .clone()
        .unwrap()
        .into_iter()
        .map(|c| c.unwrap())
        .collect();
    assert_eq!(row2[1], Cell::Null);
    assert_eq!(row2[3], Cell::Text("1000-01-01 00:00:00.000000".into()));
    assert_eq!(changes[1].kind, RowsKind::Update);
    let (before, after) = &changes[1].rows[0];
    assert_eq!(before.as_ref().unwrap()[5], Some(Cell::Bytes(vec![])));
    assert_eq!(
        after.as_ref().unwrap()[5],
        Some(Cell::Bytes(b"changed".to_vec()))
    );
    assert_eq!(changes[2].kind, RowsKind::Delete);
    assert_eq!(
        changes[2].rows[0].0.as_ref().unwrap()[0],
        Some(Cell::Int(1))
    );
}
