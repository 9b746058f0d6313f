//! Acceptance: every column type with its extremes, and hostile names, survive a dump replayed
//! with the plain `mariadb` client (SQL) and with `LOAD DATA` (CSV): CHECKSUM TABLE is equal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use std::path::Path;

/// The type matrix; `{}` is replaced by nothing (kept simple for reuse).
const COLUMNS: &str = r#"
  `id` INT NOT NULL PRIMARY KEY,
  `ti` TINYINT, `tiu` TINYINT UNSIGNED, `si` SMALLINT, `mi` MEDIUMINT, `miu` MEDIUMINT UNSIGNED,
  `i` INT, `iu` INT UNSIGNED, `bi` BIGINT, `biu` BIGINT UNSIGNED,
  `dec` DECIMAL(65,30), `dec0` DECIMAL(10,0) UNSIGNED, `f` FLOAT, `fs` FLOAT(7,3), `d` DOUBLE,
  `b1` BIT(1), `b64` BIT(64),
  `dt` DATE, `dtm` DATETIME(6), `ts` TIMESTAMP(6) NULL DEFAULT NULL, `tm` TIME(6), `tm0` TIME, `y` YEAR,
  `c` CHAR(10), `vc` VARCHAR(300), `bin` BINARY(8), `vbin` VARBINARY(64),
  `tb` TINYBLOB, `bl` BLOB, `mb` MEDIUMBLOB, `lb` LONGBLOB,
  `tt` TINYTEXT, `tx` TEXT, `mt` MEDIUMTEXT, `lt` LONGTEXT,
  `lat` VARCHAR(20) CHARACTER SET latin1,
  `e` ENUM('a','b','c d','') , `st` SET('x','y','z'),
  `j` JSON, `g` GEOMETRY, `pt` POINT, `ls` LINESTRING, `pg` POLYGON,
  `ip6` INET6, `uu` UUID,
  `we.ird``col/ü` INT
"#;

const ROWS: &[&str] = &[
    // minimums / negatives
    "(1, -128, 0, -32768, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
      -99999999999999999999999999999999999.999999999999999999999999999999, 0, -3.40282e38, -9999.999, -1.7976931348623157e308,
      b'0', b'0', '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '-838:59:59.000000', '-00:00:01', 1901,
      '', '', x'00', x'', x'', x'', x'', x'', '', '', '', '', 'Ã©', 'a', '', '[]',
      ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(-1.5 2.25)'), ST_GeomFromText('LINESTRING(0 0,1 1,2 1)'),
      ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), '::', '00000000-0000-0000-0000-000000000000', -1)",
    // maximums
    "(2, 127, 255, 32767, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
      99999999999999999999999999999999999.999999999999999999999999999999, 9999999999, 3.40282e38, 9999.999, 1.7976931348623157e308,
      b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', '9999-12-31 23:59:59.999999',
      '2038-01-19 03:14:07.999999', '838:59:59.000000', '838:59:59', 2155,
      'zzzzzzzzzz', REPEAT('ü', 300), x'ffffffffffffffff', REPEAT(x'ff', 64), REPEAT(x'00', 255), REPEAT(x'01', 1000), REPEAT('m', 70000), REPEAT('l', 100000),
      REPEAT('t', 255), REPEAT('x', 1000), REPEAT('y', 70000), REPEAT('z', 100000), 'ÿÿ', 'c d', 'x,y,z',
      '{\"a\": [1, 2.5, \"x\\\\\"y\", null, true], \"b\": {\"c\": \"\\\\u00e9\"}}', NULL, NULL, NULL, NULL,
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 2147483647)",
    // zero dates, hostile strings, NULL vs 'NULL' vs ''
    "(3, 0, 0, 0, -1, 1, -1, 1, -1, 1, 0.000000000000000000000000000001, 1, 1.17549e-38, 0.001, 2.2250738585072014e-308,
      NULL, b'1000000000000000000000000000000000000000000000000000000000000001', '0000-00-00', '0000-00-00 00:00:00.000000', NULL, '-00:00:00.000001', '00:00:00', 0,
      'NULL', 'it''s a \"quote\" \\\\ back\\nslash\\r\\t\\0 nul\\Z', x'0000000000000000', x'00410042', x'00', x'0d0a', x'1a', x'5c',
      'NULL', '\\\\N', '🚀 emoji ✓ 中文 العربية', 'tab\\there', NULL, '', '', 'null',
      ST_GeomFromText('MULTIPOINT(1 1,2 2)'), NULL, NULL, NULL, '::1', '123e4567-e89b-12d3-a456-426614174000', 0)",
    // all NULL
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    // float precision and -0
    "(5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.1, 0, 0.1, 0.1, 0.1, b'1', b'101', '2024-02-29', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.5', '12:34:56.5', '-12:00:00', 2024,
      'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'b', 'y', '\"str\"',
      ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1))'), NULL, NULL, NULL, '1.2.3.4', NULL, 5)",
];

pub const DB_BASE: &str = "ty`pe.d/b-schema ü";
pub const TABLE: &str = "t.a`b/ł -schema";

async fn create_matrix(db: &str) {
    let mut src = source().await;
    exec(
        &mut src,
        &format!(
            "CREATE DATABASE `{}` CHARACTER SET utf8mb4",
            db.replace('`', "``")
        ),
    )
    .await;
    let q = format!("`{}`.`{}`", db.replace('`', "``"), TABLE.replace('`', "``"));
    exec(
        &mut src,
        &format!("CREATE TABLE {q} ({COLUMNS}) ENGINE=InnoDB"),
    )
    .await;
    exec(&mut src, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
    exec(&mut src, "SET SESSION time_zone = '+05:30'").await;
    for r in ROWS {
        exec(&mut src, &format!("INSERT INTO {q} VALUES {r}")).await;
    }
    // Precise floats that the server's text form would round.
    exec(&mut src, &format!("INSERT INTO {q} (`id`, `f`, `d`) VALUES (6, 1.2345678, 0.30000000000000004), (7, 16777217, 9007199254740993)")).await;
}

async fn recreate_on_target(db: &str, dir: &Path) {
    let mut tgt = target().await;
    exec(
        &mut tgt,
        &format!("DROP DATABASE IF EXISTS `{}`", db.replace('`', "``")),
    )
    .await;
    let schema_files = files_matching(dir, |n| n.ends_with("-schema-create.sql"));
    assert_eq!(schema_files.len(), 1, "one database schema file");
    replay_sql_files(&schema_files, None);
    let table_schema = files_matching(dir, |n| {
        n.ends_with("-schema.sql") && !n.ends_with("-schema-create.sql")
    });
    assert_eq!(
        table_schema.len(),
        1,
        "one table schema file: {table_schema:?}"
    );
    replay_sql_files(&table_schema, Some(db));
}

async fn assert_same(db: &str) {
    let mut src = source().await;
    let mut tgt = target().await;
    let a = checksum_table(&mut src, db, TABLE).await;
    let b = checksum_table(&mut tgt, db, TABLE).await;
    assert!(a.is_some());
    assert_eq!(a, b, "CHECKSUM TABLE differs for {db}.{TABLE}");
}

#[tokio::test]
async fn type_matrix_sql_roundtrip() {
    let db = format!("{DB_BASE}{}", unique_db("_s"));
    create_matrix(&db).await;
    for compress in ["none", "zstd", "gzip"] {
        let dir = tempfile::tempdir().unwrap();
        dump(
            dir.path(),
            &[
                "-f",
                &format!("`{}`.*", db.replace('`', "``")),
                "--compress",
                compress,
                "--rows",
                "2",
                "--checksum",
            ],
        );
        let data = files_matching(dir.path(), |n| n.contains(".sql") && !n.contains("-schema"));
        assert!(data.len() >= 3, "chunked data files: {data:?}");
        let m = manifest(dir.path());
        assert_eq!(m["tables"][0]["rows"], 7);
        assert_eq!(m["tables"][0]["name"], TABLE);
        recreate_on_target(&db, dir.path()).await;
        replay_sql_files(&data, Some(&db));
        assert_same(&db).await;
        // The manifest checksum is what the target computes with the same expression.
        let expr = m["tables"][0]["checksum"]["row_expression"]
            .as_str()
            .unwrap()
            .to_string();
        let mut tgt = target().await;
        let q = format!(
            "SELECT CAST(SUM({expr}) AS CHAR) FROM `{}`.`{}`",
            db.replace('`', "``"),
            TABLE.replace('`', "``")
        );
        let sum: Option<String> = mysql_async::prelude::Queryable::query_first(&mut tgt, q)
            .await
            .unwrap();
        assert_eq!(sum.as_deref(), m["tables"][0]["checksum"]["sum"].as_str());
    }
}

#[tokio::test]
async fn type_matrix_csv_roundtrip() {
    let db = format!("{DB_BASE}{}", unique_db("_c"));
    create_matrix(&db).await;
    // (separator, delimiter, escape_backslash, null marker)
    let dialects = [
        (",", "\"", "true", "\\N"),
        ("|*|", "'", "true", "\\N"),
        (";", "\"", "false", "NULL"),
    ];
    for (sep, delim, esc, null) in dialects {
        let dir = tempfile::tempdir().unwrap();
        dump(
            dir.path(),
            &[
                "-f",
                &format!("`{}`.*", db.replace('`', "``")),
                "--filetype",
                "csv",
                "--csv-separator",
                sep,
                "--csv-delimiter",
                delim,
                "--escape-backslash",
                esc,
                "--csv-null-value",
                null,
                "--threads",
                "2",
            ],
        );
        recreate_on_target(&db, dir.path()).await;
        let data = files_matching(dir.path(), |n| n.ends_with(".csv"));
        assert_eq!(data.len(), 1);
        let mut tgt = target().await;
        exec(&mut tgt, "SET SESSION time_zone = '+00:00'").await;
        exec(&mut tgt, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
        let lit = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
        let escaped_by = if esc == "true" { "'\\\\'" } else { "''" };
        // Types that read binary strings as their internal bytes get their text through a
        // variable converted to a text character set, as a loader must do.
        let cols: Vec<(String, String)> = mysql_async::prelude::Queryable::exec(
            &mut tgt,
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
            (&db, TABLE),
        )
        .await
        .unwrap();
        let mut list = Vec::new();
        let mut sets = Vec::new();
        for (i, (name, ty)) in cols.iter().enumerate() {
            let q = format!("`{}`", name.replace('`', "``"));
            if ty == "inet6" || ty == "uuid" {
                list.push(format!("@v{i}"));
                sets.push(format!("{q} = CONVERT(@v{i} USING latin1)"));
            } else {
                list.push(q);
            }
        }
        let sql = format!(
            "LOAD DATA INFILE {} INTO TABLE `{}`.`{}` CHARACTER SET binary FIELDS TERMINATED BY {} OPTIONALLY ENCLOSED BY {} ESCAPED BY {} LINES TERMINATED BY '\\n' IGNORE 1 LINES ({}) SET {}",
            lit(&data[0].to_string_lossy()),
            db.replace('`', "``"),
            TABLE.replace('`', "``"),
            lit(sep),
            lit(delim),
            escaped_by,
            list.join(","),
            sets.join(",")
        );
        exec(&mut tgt, &sql).await;
        assert_same(&db).await;
    }
}

/// Every file of `dir` (by name) with its decompressed bytes, leaving out the two that carry
/// timestamps.
fn dump_contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_matching(dir, |n| n != "metadata" && n != "ferry-manifest.json")
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, read_maybe_compressed(&p))
        })
        .collect()
}

#[tokio::test]
async fn bulk_reader_and_driver_write_identical_files() {
    let db = format!("{DB_BASE}{}", unique_db("_d"));
    create_matrix(&db).await;
    // Rows of 16 MiB and more arrive split over several protocol packets.
    let mut src = source().await;
    let q = format!("`{}`.`{}`", db.replace('`', "``"), TABLE.replace('`', "``"));
    exec(&mut src, &format!("INSERT INTO {q} (`id`, `lb`, `lt`) VALUES (8, REPEAT(x'00ff5c27', 4500000), REPEAT('z\\n', 9000000))")).await;
    let filter = format!("`{}`.*", db.replace('`', "``"));
    for args in [
        // Splits by size, not by --rows: chunk plans follow the server's row estimates, which
        // may change between two dumps; file contents must not.
        vec!["-f", &filter, "--filesize", "40000"],
        vec!["-f", &filter, "--filetype", "csv", "--filesize", "40000"],
    ] {
        let bulk = tempfile::tempdir().unwrap();
        dump(bulk.path(), &args);
        let driver = tempfile::tempdir().unwrap();
        run_ok(
            dump_command(&servers().source_url, driver.path())
                .env("FERRY_BULK_READER", "off")
                .args(&args),
        );
        let (a, b) = (dump_contents(bulk.path()), dump_contents(driver.path()));
        assert_eq!(
            a.iter().map(|f| &f.0).collect::<Vec<_>>(),
            b.iter().map(|f| &f.0).collect::<Vec<_>>(),
            "same files for {args:?}"
        );
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            assert!(
                x == y,
                "{name} differs between the bulk reader and the driver ({args:?})"
            );
        }
        if !args.contains(&"csv") {
            recreate_on_target(&db, bulk.path()).await;
            let data = files_matching(bulk.path(), |n| {
                n.ends_with(".sql") && !n.contains("-schema")
            });
            replay_sql_files(&data, Some(&db));
            assert_same(&db).await;
        }
    }
}
