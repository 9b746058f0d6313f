//! Acceptance: memory stays bounded and big files are shared by all workers.
//! - a 1 GB table in one SQL file loads with peak RSS under 300 MB;
//! - a 100 MB single CSV file is split into chunks that every worker loads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use std::io::Write;

fn write_schema(dir: &std::path::Path, db: &str, table: &str, create: &str) {
    std::fs::write(
        dir.join(format!("{db}-schema-create.sql")),
        format!("CREATE DATABASE `{db}`;\n"),
    )
    .unwrap();
    std::fs::write(dir.join(format!("{db}.{table}-schema.sql")), create).unwrap();
}

#[tokio::test]
async fn one_gigabyte_table_in_one_file_stays_under_300_mb() {
    let db = unique_db("lgig");
    let dir = tempfile::tempdir().unwrap();
    write_schema(
        dir.path(),
        &db,
        "big",
        "CREATE TABLE `big` (id BIGINT PRIMARY KEY, n INT, s VARCHAR(1000), t VARCHAR(100)) ENGINE=InnoDB;\n",
    );
    let path = dir.path().join(format!("{db}.big.000000001.sql"));
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    f.write_all(b"/*!40101 SET NAMES binary*/;\n").unwrap();
    let filler: String = (0..950).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let mut rows = 0u64;
    let mut written = 0u64;
    while written < 1_000_000_000 {
        let mut stmt = String::with_capacity(1 << 20);
        stmt.push_str("INSERT INTO `big` VALUES\n");
        for k in 0..900 {
            rows += 1;
            if k > 0 {
                stmt.push_str(",\n");
            }
            stmt.push_str(&format!(
                "({rows},{},'{filler}','it''s \\\\ row {rows}')",
                rows % 1000
            ));
        }
        stmt.push_str(";\n");
        written += stmt.len() as u64;
        f.write_all(stmt.as_bytes()).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let (out, peak_kb) =
        run_ok_measuring_rss(load_command(dir.path()).args(["--output", "json", "--threads", "4"]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!(
        "1 GB load: {rows} rows, peak RSS {} MB, {summary}",
        peak_kb / 1024
    );
    assert_eq!(summary["rows"], rows);
    assert!(
        summary["chunks"].as_u64().unwrap() >= 50,
        "the file was split: {summary}"
    );
    assert!(peak_kb < 300 * 1024, "peak RSS {} MB", peak_kb / 1024);
    let mut tgt = target().await;
    let (n, sum): (u64, String) = mysql_async::prelude::Queryable::query_first(
        &mut tgt,
        format!("SELECT COUNT(*), CAST(SUM(LENGTH(s) + LENGTH(t) + n) AS CHAR) FROM `{db}`.big"),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(n, rows);
    let expect: u64 = (1..=rows)
        .map(|r| 950 + format!("it's \\ row {r}").len() as u64 + r % 1000)
        .sum();
    assert_eq!(sum, expect.to_string());
    drop_target_db(&db).await;
}

#[tokio::test]
async fn hundred_megabyte_csv_is_split_across_all_threads() {
    let db = unique_db("lcsv");
    let dir = tempfile::tempdir().unwrap();
    write_schema(
        dir.path(),
        &db,
        "c",
        "CREATE TABLE `c` (id INT PRIMARY KEY, a VARCHAR(200), b TEXT);\n",
    );
    let path = dir.path().join(format!("{db}.c.000000001.csv"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(b"id,a,b\n").unwrap();
    let mut rows = 0u64;
    let mut written = 0u64;
    while written < 100_000_000 {
        rows += 1;
        // Quoted fields with separators, quotes and line breaks inside.
        let line = format!(
            "{rows},\"x,{rows}\"\"q\"\"\",\"line one\nline two {:0>120}\"\n",
            rows
        );
        written += line.len() as u64;
        f.write_all(line.as_bytes()).unwrap();
    }
    f.flush().unwrap();
    drop(f);
    let summary = load(dir.path(), &["--threads", "4", "--chunk-size", "4MiB"]);
    assert_eq!(summary["rows"], rows, "{summary}");
    let per = summary["chunks_per_worker"].as_array().unwrap();
    assert_eq!(per.len(), 4);
    for c in per {
        assert!(
            c.as_u64().unwrap() > 0,
            "every worker loaded chunks: {summary}"
        );
    }
    assert!(summary["chunks"].as_u64().unwrap() >= 20);
    let mut tgt = target().await;
    let r: Option<(String, String)> = mysql_async::prelude::Queryable::query_first(
        &mut tgt,
        format!("SELECT a, b FROM `{db}`.c WHERE id = 77"),
    )
    .await
    .unwrap();
    let (a, b) = r.unwrap();
    assert_eq!(a, "x,77\"q\"");
    assert_eq!(b, format!("line one\nline two {:0>120}", 77));
    drop_target_db(&db).await;
}
