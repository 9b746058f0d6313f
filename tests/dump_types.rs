//! Acceptance: every column type with its extremes, and hostile names, survive a dump replayed
//! with the plain `mariadb` client (SQL) and with `LOAD DATA` (CSV): CHECKSUM TABLE is equal.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::matrix::*;
use harness::*;
use std::path::Path;

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
