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

/// Changes streamed from the source and applied in safe mode (twice: replays converge)
/// leave the target equal to the source, for a table with a key and one without.
#[tokio::test]
async fn streamed_changes_applied_in_safe_mode_converge() {
    use ferry_catchup::apply::{statements, TargetTable};
    let db = unique_db("capply");
    let mut src = source().await;
    let mut tgt = target().await;
    let cols = "id INT, u BIGINT UNSIGNED, f FLOAT, dbl DOUBLE, d DECIMAL(20,6), dt DATETIME(3), \
                ts TIMESTAMP(6) NULL, tm TIME, y YEAR, s VARCHAR(40), b VARBINARY(10), bl BLOB, \
                e ENUM('a','b'), st SET('x','y','z'), bt BIT(10), j JSON, ip INET6, g POINT";
    for (c, k) in [(&mut src, true), (&mut tgt, false)] {
        let _ = k;
        exec(c, &format!("CREATE DATABASE `{db}`")).await;
        exec(
            c,
            &format!("CREATE TABLE `{db}`.k ({cols}, PRIMARY KEY (id))"),
        )
        .await;
        exec(c, &format!("CREATE TABLE `{db}`.nk ({cols})")).await;
    }
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = src
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    exec(&mut src, "SET time_zone = '+05:30'").await;
    for t in ["k", "nk"] {
        exec(
            &mut src,
            &format!(
                "INSERT INTO `{db}`.{t} VALUES \
                 (1, 18446744073709551615, 1.5, 2.2250738585072014e-308, -99999999999999.999999, '2024-02-29 23:59:59.999', \
                  '2038-01-19 03:14:07.5', '-838:59:59', 2155, 'it''s \\\\ ü', x'00', x'ff00', 'b', 'x,z', b'1000000001', \
                  '{{\"a\": [1, \"x\"]}}', '::1', ST_GeomFromText('POINT(1 2)')), \
                 (2, 0, -0.25, 1e300, 0, '1000-01-01 00:00:00', NULL, '00:00:01', 1901, '', '', NULL, 'a', '', b'0', 'null', NULL, NULL), \
                 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)"
            ),
        )
        .await;
        exec(
            &mut src,
            &format!("UPDATE `{db}`.{t} SET s = 'upd', d = d + 1 WHERE id IN (1, 3)"),
        )
        .await;
        exec(&mut src, &format!("DELETE FROM `{db}`.{t} WHERE id = 2")).await;
    }
    let mut events = Vec::new();
    let start = StreamStart {
        file,
        pos,
        server_id: 4_000_001_000 - std::process::id() % 1000,
        non_blocking: true,
    };
    let want = db.clone();
    stream(source().await, &start, |p| {
        if let Change::Rows { table, event } = p.change {
            if table.db == want {
                events.push((table, event));
            }
        }
        true
    })
    .await
    .unwrap();
    assert_eq!(events.len(), 6);
    exec(&mut tgt, "SET SESSION time_zone = '+00:00'").await;
    for round in 0..2 {
        for (tm, ev) in &events {
            let names: Vec<String> = tm.columns.iter().map(|c| c.name.clone().unwrap()).collect();
            let t = TargetTable {
                qualified: format!("`{db}`.`{}`", tm.table),
                key: if tm.table == "k" { vec![0] } else { vec![] },
                columns: names,
                generated: vec![],
                fixed_binary: vec![],
                unsigned: vec![],
            };
            if round == 1 && tm.table == "nk" {
                continue; // no key: replays are not idempotent; checkpoints make them exact
            }
            for s in statements(ev, tm, &t).unwrap() {
                exec(&mut tgt, &s).await;
            }
        }
    }
    for t in ["k", "nk"] {
        let a = checksum_table(&mut src, &db, t).await;
        let b = checksum_table(&mut tgt, &db, t).await;
        assert!(a.is_some());
        assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{t}");
    }
}

/// MariaDB `log_bin_compress=ON`: compressed QUERY and ROWS events are decoded, never
/// skipped (a private server pair: the setting is global).
#[tokio::test]
async fn mariadb_compressed_events_are_decoded() {
    let pair = private_servers();
    let url = pair.source_url.clone();
    let mut src = connect(&url).await;
    exec(
        &mut src,
        "SET GLOBAL log_bin_compress = ON, GLOBAL log_bin_compress_min_len = 10",
    )
    .await;
    let mut s2 = connect(&url).await; // a session that sees the new global values
    let (file, pos): (String, u64) = {
        let row: mysql_async::Row = s2.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
        (row.get(0).unwrap(), row.get(1).unwrap())
    };
    exec(&mut s2, "CREATE DATABASE zc").await;
    exec(&mut s2, "CREATE TABLE zc.t (id INT PRIMARY KEY, s TEXT) COMMENT 'a long enough comment to be compressed'").await;
    exec(
        &mut s2,
        "INSERT INTO zc.t SELECT seq, REPEAT(CONCAT('row', seq), 40) FROM zc.seq_1_to_50",
    )
    .await;
    exec(
        &mut s2,
        "UPDATE zc.t SET s = REPEAT('u', 300) WHERE id <= 10",
    )
    .await;
    exec(&mut s2, "DELETE FROM zc.t WHERE id > 45").await;
    let kinds: Vec<String> = s2
        .query_map(
            format!("SHOW BINLOG EVENTS IN '{file}' FROM {pos}"),
            |r: mysql_async::Row| r.get::<String, _>(2).unwrap_or_default(),
        )
        .await
        .unwrap();
    let start = StreamStart {
        file,
        pos,
        server_id: 4_000_002_000 - std::process::id() % 1000,
        non_blocking: true,
    };
    let mut rows = (0, 0, 0);
    let mut ddl = Vec::new();
    let mut last_s = None;
    stream(connect(&url).await, &start, |p| {
        match p.change {
            Change::Rows { table, event } if table.db == "zc" => {
                let n = event.rows.len();
                match event.kind {
                    RowsKind::Write => rows.0 += n,
                    RowsKind::Update => {
                        rows.1 += n;
                        last_s = event.rows[0].1.as_ref().unwrap()[1].clone();
                    }
                    RowsKind::Delete => rows.2 += n,
                }
            }
            Change::Query { sql, .. } => ddl.push(String::from_utf8_lossy(&sql).into_owned()),
            _ => {}
        }
        true
    })
    .await
    .unwrap();
    assert!(
        kinds.iter().any(|k| k.contains("compressed")),
        "events were compressed: {kinds:?}"
    );
    assert_eq!(rows, (50, 10, 5));
    assert_eq!(last_s, Some(Cell::Bytes(vec![b'u'; 300])));
    assert!(
        ddl.iter().any(|q| q.contains("a long enough comment")),
        "{ddl:?}"
    );
}
