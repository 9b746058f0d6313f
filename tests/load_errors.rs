//! Acceptance: bad input is a clear error naming the file and the byte offset, exit code 1, no
//! success summary, and no table recorded as loaded that is not — and a second run over the same
//! bad input fails the same way instead of trusting what the first one recorded. Cases:
//! truncated zstd (with and without a manifest), an unclosed CSV/SQL quote (found without
//! reading forever, named where it opened, also deep in a big file), wrong column counts (CSV
//! and SQL, also in a later chunk of a compressed file), invalid UTF-8 under
//! `--character-set utf8mb4`, data that no longer matches the manifest's checksum, a data file
//! missing from the dump; and a target with `local_infile` off falls back to INSERT with a
//! warning (`--method load-data` then fails naming local_infile).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// No run of `ferry load` in this file may take longer (bad input must fail fast).
const CHILD_LIMIT: Duration = Duration::from_secs(60);

const CREATE: &str = "CREATE TABLE `t` (id INT PRIMARY KEY, s VARCHAR(100));\n";

/// A Dumpling-layout dump of one table `db`.`t`: `(file suffix, bytes)` per data file.
fn dumpling_dir(db: &str, files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(format!("{db}-schema-create.sql")),
        format!("CREATE DATABASE `{db}`;\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join(format!("{db}.t-schema.sql")), CREATE).unwrap();
    for (suffix, data) in files {
        std::fs::write(dir.path().join(format!("{db}.t.{suffix}")), data).unwrap();
    }
    dir
}

fn data_path(dir: &Path, db: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{db}.t.{suffix}"))
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// Runs `cmd`, killing it after [`CHILD_LIMIT`]; pipes are drained while it runs.
fn run_limited(cmd: &mut Command) -> Outcome {
    let started = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > CHILD_LIMIT {
            child.kill().unwrap();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned();
            panic!(
                "ferry ran for over {}s ({cmd:?}); stderr so far:\n{stderr}",
                CHILD_LIMIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Outcome {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        elapsed: started.elapsed(),
    }
}

/// Runs `ferry load --output json` from `dir` on the test target expecting exit code 1 and no
/// summary on stdout; returns stderr.
fn load_fails(dir: &Path, args: &[&str]) -> String {
    let o = run_limited(load_command(dir).args(["--output", "json"]).args(args));
    assert_eq!(
        o.code,
        Some(1),
        "expected exit code 1 from ferry load {args:?}\nstdout:\n{}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    assert!(
        o.stdout.trim().is_empty(),
        "a failed load printed a summary: {}\nstderr:\n{}",
        o.stdout,
        o.stderr
    );
    o.stderr
}

/// The `error:` line(s) of ferry's stderr (without the log lines), for messages.
fn error_text(stderr: &str) -> String {
    match stderr.find("error: ") {
        Some(i) => stderr[i..].to_string(),
        None => stderr.to_string(),
    }
}

/// Asserts `stderr` says `<path>: at byte <offset>: ...` and contains every one of `words`.
fn assert_input_error(stderr: &str, path: &Path, offset: u64, words: &[&str]) {
    let want = format!("{}: at byte {offset}: ", path.display());
    assert!(
        stderr.contains(&want),
        "expected `{want}` in the error; got:\n{}",
        error_text(stderr)
    );
    for w in words {
        assert!(
            stderr.contains(w),
            "expected `{w}` in the error; got:\n{}",
            error_text(stderr)
        );
    }
}

/// Runs the same load a second time (same task: resumes from what the first run recorded):
/// it must fail again with the same error line, not report the table loaded. Returns its stderr.
fn fails_again(dir: &Path, args: &[&str], first: &str) -> String {
    let second = load_fails(dir, args);
    let line = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("error: "))
            .map(str::to_string)
    };
    assert!(line(first).is_some(), "no `error:` line in:\n{first}");
    assert_eq!(
        line(first),
        line(&second),
        "the second run over the same bad input failed differently:\n{second}"
    );
    second
}

/// Rows of a query on `ferry_meta`; none when the checkpoint schema does not exist yet.
async fn meta_rows<T: mysql_async::prelude::FromRow + Send + 'static>(
    sql: &str,
    db: &str,
) -> Vec<T> {
    let mut tgt = target().await;
    match tgt.exec(sql, (db,)).await {
        Ok(v) => v,
        Err(mysql_async::Error::Server(e)) if e.code == 1146 || e.code == 1049 => Vec::new(),
        Err(e) => panic!("{sql}: {e}"),
    }
}

/// `ferry_meta.load_table_v1` states of `db`'s tables (any task).
async fn table_states(db: &str) -> Vec<(String, String, u8)> {
    meta_rows(
        "SELECT task_id, tbl, state FROM ferry_meta.load_table_v1 WHERE db = ?",
        db,
    )
    .await
}

/// `ferry_meta.load_file_v1` rows of `db`'s files (any task): file, state.
async fn file_states(db: &str) -> Vec<(String, u8)> {
    meta_rows(
        "SELECT file, state FROM ferry_meta.load_file_v1 WHERE db = ?",
        db,
    )
    .await
}

/// Neither the table nor its (single) data file is recorded as finished by any task (the
/// setup did register them: the Dumpling cases get as far as loading), and the run's log
/// (`stderr`) does not say the table was loaded.
async fn not_finished(db: &str, stderr: &str) {
    let logged = format!("table loaded table=`{db}`.`t`");
    assert!(
        !stderr.contains(&logged),
        "the failed run logged `{logged}`:\n{stderr}"
    );
    let tables = table_states(db).await;
    assert!(
        !tables.is_empty(),
        "no ferry_meta.load_table_v1 row for {db}"
    );
    assert!(
        tables.iter().all(|(_, _, s)| *s != 2),
        "{db}.t is recorded as finished: {tables:?}"
    );
    let files = file_states(db).await;
    assert!(!files.is_empty(), "no ferry_meta.load_file_v1 row for {db}");
    assert!(
        files.iter().all(|(_, s)| *s != 2),
        "a bad file of {db} is recorded as done: {files:?}"
    );
}

/// Nothing of `db` reached the target: no table, and no checkpoint row of any task.
async fn nothing_loaded(db: &str) {
    let mut tgt = target().await;
    let tables: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
            (db,),
        )
        .await
        .unwrap();
    assert_eq!(tables, Some(0), "tables of {db} were created on the target");
    assert_eq!(table_states(db).await, vec![], "ferry_meta rows for {db}");
    assert_eq!(
        file_states(db).await,
        vec![],
        "ferry_meta file rows for {db}"
    );
}

async fn target_count(db: &str) -> u64 {
    let mut tgt = target().await;
    let n: Option<u64> = tgt
        .query_first(format!("SELECT COUNT(*) FROM `{db}`.t"))
        .await
        .unwrap();
    n.unwrap()
}

fn sql_rows(from: u32, to: u32) -> String {
    let rows: Vec<String> = (from..to)
        .map(|i| format!("({i},'row {i} {}')", "x".repeat(40)))
        .collect();
    format!("INSERT INTO `t` VALUES {};\n", rows.join(","))
}

fn find(hay: &[u8], needle: &[u8]) -> u64 {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the data", String::from_utf8_lossy(needle)))
        as u64
}

/// How many bytes a zstd decoder gets out of `cut` before it reports the stream as cut.
fn zstd_decodable(cut: &[u8]) -> u64 {
    let mut d = zstd::stream::read::Decoder::new(cut).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        match d.read(&mut buf) {
            Ok(0) => panic!("the cut zstd stream decodes without an error"),
            Ok(k) => n += k as u64,
            Err(_) => return n,
        }
    }
}

/// A table `db`.t on the source with `rows` rows of `values_sql` (expressions of `seq`).
async fn source_table(db: &str, columns: &str, rows: u32, values_sql: &str) {
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(&mut src, &format!("CREATE TABLE `{db}`.t ({columns})")).await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.t SELECT {values_sql} FROM `{db}`.seq_1_to_{rows}"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 1. Truncated zstd

#[tokio::test]
async fn truncated_zstd_without_a_manifest_names_the_decompressed_byte() {
    let db = unique_db("ezst");
    let text = sql_rows(0, 20_000);
    let whole = zstd::encode_all(text.as_bytes(), 1).unwrap();
    let cut = whole[..whole.len() / 2].to_vec();
    let at = zstd_decodable(&cut);
    assert!(at < text.len() as u64);
    let dir = dumpling_dir(&db, &[("000000001.sql.zst", cut)]);
    let e = load_fails(dir.path(), &[]);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql.zst"),
        at,
        &["truncated"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
    fails_again(dir.path(), &[], &e);
}

#[tokio::test]
async fn truncated_zstd_after_loaded_chunks_is_named_and_the_table_not_finished() {
    // Small chunks: chunks before the cut may commit, but the file and table must stay
    // unfinished, and a second run (skipping those chunks) must meet the cut again.
    let db = unique_db("ezstc");
    let mut text = String::new();
    for k in 0..40 {
        text.push_str(&sql_rows(k * 1000, (k + 1) * 1000));
    }
    let whole = zstd::encode_all(text.as_bytes(), 3).unwrap();
    let cut = whole[..whole.len() * 2 / 3].to_vec();
    let at = zstd_decodable(&cut);
    let dir = dumpling_dir(&db, &[("000000001.sql.zst", cut)]);
    let args = ["--chunk-size", "64KiB"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql.zst"),
        at,
        &["truncated"],
    );
    not_finished(&db, &e).await;
    let loaded = target_count(&db).await;
    assert!(loaded < 40_000, "{loaded} rows from a cut file");
    let again = fails_again(dir.path(), &args, &e);
    not_finished(&db, &again).await;
}

#[tokio::test]
async fn truncated_zstd_in_a_ferry_dump_is_caught_by_the_manifest_before_loading() {
    let db = unique_db("ezstm");
    source_table(
        &db,
        "id INT PRIMARY KEY, s TEXT",
        5000,
        "seq, REPEAT(MD5(seq), 5)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--compress", "zstd"]);
    let data = files_matching(dir.path(), |n| {
        n.ends_with(".sql.zst") && !n.contains("-schema")
    });
    assert_eq!(data.len(), 1, "{data:?}");
    let f = &data[0];
    let bytes = std::fs::read(f).unwrap();
    std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_fails(dir.path(), &[]);
    let want = format!(
        "{}: {} bytes, the manifest says {}",
        f.display(),
        bytes.len() / 2,
        bytes.len()
    );
    assert!(
        e.contains(&want) && e.contains("changed or cut short"),
        "expected `{want}` ... `changed or cut short`; got:\n{}",
        error_text(&e)
    );
    nothing_loaded(&db).await;
}

// ---------------------------------------------------------------------------------------
// 2. Unclosed quotes

#[tokio::test]
async fn unclosed_csv_quote_is_named_where_it_opened() {
    let db = unique_db("equote");
    let dir = dumpling_dir(&db, &[("0.csv", b"1,\"abc\n2,def\n".to_vec())]);
    let args = ["--csv-header", "false"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv"),
        2,
        &["never closed"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
    fails_again(dir.path(), &args, &e);
}

#[tokio::test]
async fn unclosed_csv_quote_early_in_a_big_file_fails_fast() {
    let db = unique_db("equote2");
    let mut data = b"id,s\n1,ok\n2,\"opened here\n".to_vec();
    let open = find(&data, b"\"opened");
    for i in 3..250_000 {
        data.extend_from_slice(format!("{i},plain row {i}\n").as_bytes());
    }
    assert!(data.len() > 4 << 20);
    let dir = dumpling_dir(&db, &[("0.csv", data)]);
    let args = ["--chunk-size", "256KiB"];
    let o = run_limited(
        load_command(dir.path())
            .args(["--output", "json"])
            .args(args),
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stdout.trim().is_empty(), "{}", o.stdout);
    assert!(
        o.elapsed < Duration::from_secs(20),
        "took {:?} to find an unclosed quote in 4 MB",
        o.elapsed
    );
    assert_input_error(
        &o.stderr,
        &data_path(dir.path(), &db, "0.csv"),
        open,
        &["never closed"],
    );
    not_finished(&db, &o.stderr).await;
    // Everything after the quote is one field: no row after it may be loaded.
    assert!(target_count(&db).await <= 1);
}

#[tokio::test]
async fn unclosed_csv_quote_deep_in_a_big_file_names_the_absolute_offset() {
    // The quote opens in a late chunk of a zstd file: the offset must count from the start of
    // the (decompressed) file, not from the chunk.
    let db = unique_db("equote3");
    let mut data = Vec::new();
    for i in 0..150_000 {
        data.extend_from_slice(format!("{i},plain row {i}\n").as_bytes());
    }
    data.extend_from_slice(b"150000,\"opened late\n");
    let open = find(&data, b"\"opened late");
    for i in 150_001..160_000 {
        data.extend_from_slice(format!("{i},plain row {i}\n").as_bytes());
    }
    assert!(open > 2 << 20);
    let z = zstd::encode_all(&data[..], 3).unwrap();
    let dir = dumpling_dir(&db, &[("0.csv.zst", z)]);
    let args = ["--csv-header", "false", "--chunk-size", "256KiB"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv.zst"),
        open,
        &["never closed"],
    );
    not_finished(&db, &e).await;
    assert!(target_count(&db).await < 150_000);
    let again = fails_again(dir.path(), &args, &e);
    not_finished(&db, &again).await;
}

#[tokio::test]
async fn unclosed_sql_string_is_named_where_it_opened() {
    let db = unique_db("equotes");
    let mut sql = sql_rows(0, 10).into_bytes();
    sql.extend_from_slice(b"INSERT INTO `t` VALUES (10,'ok'),(11,'never closed);\n");
    sql.extend_from_slice(sql_rows(12, 20).replace('\'', "").as_bytes());
    let open = find(&sql, b"'never");
    let dir = dumpling_dir(&db, &[("000000001.sql", sql)]);
    let e = load_fails(dir.path(), &[]);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql"),
        open,
        &["never closed"],
    );
    not_finished(&db, &e).await;
    fails_again(dir.path(), &[], &e);
}

// ---------------------------------------------------------------------------------------
// 3. Wrong column counts

#[tokio::test]
async fn wrong_csv_column_count_names_the_row() {
    let db = unique_db("ecols");
    let dir = dumpling_dir(&db, &[("0.csv", b"1,a\n2,b,c\n".to_vec())]);
    let args = ["--csv-header", "false"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv"),
        4,
        &["3 fields", "2 columns"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
    fails_again(dir.path(), &args, &e);

    // Too few fields, after a header line.
    let db = unique_db("ecols1");
    let dir = dumpling_dir(&db, &[("0.csv", b"id,s\n1,a\n2\n3,c\n".to_vec())]);
    let e = load_fails(dir.path(), &[]);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv"),
        9,
        &["1 fields", "2 columns"],
    );
    not_finished(&db, &e).await;
}

#[tokio::test]
async fn wrong_csv_column_count_in_a_late_chunk_of_a_compressed_file() {
    let db = unique_db("ecolsz");
    let mut data = b"id,s\n".to_vec();
    for i in 0..100_000 {
        data.extend_from_slice(format!("{i},value {i}\n").as_bytes());
    }
    data.extend_from_slice(b"100000,extra,field\n");
    let bad = find(&data, b"100000,extra");
    for i in 100_001..101_000 {
        data.extend_from_slice(format!("{i},value {i}\n").as_bytes());
    }
    let z = zstd::encode_all(&data[..], 3).unwrap();
    let dir = dumpling_dir(&db, &[("0.csv.zst", z)]);
    let args = ["--chunk-size", "128KiB"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv.zst"),
        bad,
        &["3 fields", "2 columns"],
    );
    not_finished(&db, &e).await;
    fails_again(dir.path(), &args, &e);
}

#[tokio::test]
async fn wrong_sql_value_count_names_the_row() {
    let db = unique_db("ecols2");
    let sql = b"INSERT INTO `t` VALUES (1,'a'),(2);\n".to_vec();
    let dir = dumpling_dir(&db, &[("000000001.sql", sql)]);
    let e = load_fails(dir.path(), &[]);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql"),
        31,
        &["1 values", "2 columns"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
    fails_again(dir.path(), &[], &e);

    // Too many values, deep in a gzip file split into chunks.
    let db = unique_db("ecols3");
    let mut text = String::new();
    for k in 0..30 {
        text.push_str(&sql_rows(k * 1000, (k + 1) * 1000));
    }
    text.push_str("INSERT INTO `t` VALUES (30000,'ok'),(30001,'one','two');\n");
    let bad = find(text.as_bytes(), b"(30001,");
    text.push_str(&sql_rows(30_002, 31_000));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let dir = dumpling_dir(&db, &[("000000001.sql.gz", gz.finish().unwrap())]);
    let args = ["--chunk-size", "64KiB"];
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql.gz"),
        bad,
        &["3 values", "2 columns"],
    );
    not_finished(&db, &e).await;
    fails_again(dir.path(), &args, &e);
}

/// A one-statement SQL data file whose row starting with `row` is bad: the error must name
/// that row's byte (and the data file), and nothing may be recorded as loaded.
async fn sql_row_is_named(prefix: &str, stmt: &[u8], row: &[u8], args: &[&str], words: &[&str]) {
    let db = unique_db(prefix);
    let at = find(stmt, row);
    let dir = dumpling_dir(&db, &[("000000001.sql", stmt.to_vec())]);
    let e = load_fails(dir.path(), args);
    assert_input_error(&e, &data_path(dir.path(), &db, "000000001.sql"), at, words);
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
}

// mydumper --insert-ignore / --replace write these; ferry runs them as they are, but a wrong
// value count is still bad input, to be named by its row's byte like any other.

#[tokio::test]
async fn wrong_value_count_in_insert_ignore_names_the_row() {
    sql_row_is_named(
        "ecolsig",
        b"INSERT IGNORE INTO `t` VALUES (1,'a'),(2);\n",
        b"(2)",
        &[],
        &[],
    )
    .await;
}

#[tokio::test]
async fn wrong_value_count_in_replace_names_the_row() {
    sql_row_is_named(
        "ecolsrep",
        b"REPLACE INTO `t` VALUES (1,'a'),(2,'b','c');\n",
        b"(2,",
        &[],
        &[],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 4. Invalid UTF-8 under --character-set utf8mb4

#[tokio::test]
async fn invalid_utf8_under_utf8mb4_is_named() {
    let args = ["--character-set", "utf8mb4"];
    let db = unique_db("eutf");
    let sql = b"INSERT INTO `t` VALUES (1,'fine'),(2,'caf\xe9');\n".to_vec();
    let row = find(&sql, b"(2,");
    let dir = dumpling_dir(&db, &[("000000001.sql", sql)]);
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "000000001.sql"),
        row,
        &["UTF-8", "byte 3 of the value"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
    fails_again(dir.path(), &args, &e);

    let db = unique_db("eutf2");
    let dir = dumpling_dir(&db, &[("0.csv", b"id,s\n1,fine\n2,caf\xe9\n".to_vec())]);
    let e = load_fails(dir.path(), &args);
    assert_input_error(
        &e,
        &data_path(dir.path(), &db, "0.csv"),
        12,
        &["UTF-8", "byte 3 of the value"],
    );
    not_finished(&db, &e).await;
    assert_eq!(target_count(&db).await, 0);
}

// Strings the SQL reader has to decode (an escape LOAD DATA reads differently, a double-quoted
// string holding an apostrophe, as mydumper writes them) are text as much as plain ones: a
// latin1 byte in them must be refused too, not loaded as `?` with a warning.

#[tokio::test]
async fn invalid_utf8_in_an_escaped_sql_string_is_named() {
    sql_row_is_named(
        "eutfesc",
        b"INSERT INTO `t` VALUES (1,'fine'),(2,'caf\xe9 100\\%');\n",
        b"(2,",
        &["--character-set", "utf8mb4"],
        &["UTF-8"],
    )
    .await;
}

#[tokio::test]
async fn invalid_utf8_in_a_double_quoted_sql_string_is_named() {
    sql_row_is_named(
        "eutfdq",
        b"INSERT INTO `t` VALUES (1,'fine'),(2,\"l'\xe9t\xe9\");\n",
        b"(2,",
        &["--character-set", "utf8mb4"],
        &["UTF-8"],
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// 5. Manifest checksum

#[tokio::test]
async fn data_that_does_not_match_the_manifest_checksum_fails_verification() {
    let db = unique_db("esum");
    source_table(&db, "id INT PRIMARY KEY, s VARCHAR(20)", 100, "seq, 'aaaa'").await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--checksum"]);
    let data = files_matching(dir.path(), |n| {
        n.ends_with(".sql") && !n.contains("-schema")
    });
    assert_eq!(data.len(), 1, "{data:?}");
    let text = std::fs::read_to_string(&data[0]).unwrap();
    // Same size, one letter of one value changed.
    let changed = text.replacen("'aaaa'", "'aaab'", 1);
    assert_ne!(text, changed);
    assert_eq!(text.len(), changed.len());
    std::fs::write(&data[0], changed).unwrap();
    let e = load_fails(dir.path(), &[]);
    assert!(
        e.contains("verification failed") && e.contains(&format!("`{db}`.`t`")),
        "{}",
        error_text(&e)
    );
    assert!(e.contains("checksum mismatch"), "{}", error_text(&e));
    // A second run must not take the first one's records as a finished, verified load.
    fails_again(dir.path(), &[], &e);
}

// ---------------------------------------------------------------------------------------
// 6. A data file missing

#[tokio::test]
async fn a_data_file_missing_from_the_dump_is_named_before_loading() {
    let db = unique_db("emiss");
    source_table(&db, "id INT PRIMARY KEY", 1000, "seq").await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--rows", "300"]);
    let data = files_matching(dir.path(), |n| {
        n.ends_with(".sql") && !n.contains("-schema")
    });
    assert!(data.len() > 1, "{data:?}");
    std::fs::remove_file(&data[1]).unwrap();
    let e = load_fails(dir.path(), &[]);
    let want = format!("{}: listed in the manifest", data[1].display());
    assert!(
        e.contains(&want) && e.contains("missing"),
        "expected `{want}` ... `missing`; got:\n{}",
        error_text(&e)
    );
    nothing_loaded(&db).await;
}

// ---------------------------------------------------------------------------------------
// 7. local_infile off on the target

fn private_load(url: &str, dir: &Path, args: &[&str]) -> Outcome {
    let mut c = ferry();
    c.args(["load", "--progress", "off", "--target", url, "--from"])
        .arg(dir)
        .args(args);
    run_limited(&mut c)
}

#[tokio::test]
async fn local_infile_off_falls_back_to_insert_with_a_warning() {
    let db = unique_db("einfile");
    source_table(
        &db,
        "id INT PRIMARY KEY, s VARCHAR(40), n DECIMAL(10,2) NULL",
        3000,
        "seq, MD5(seq), IF(seq % 7 = 0, NULL, seq / 3)",
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    dump(dir.path(), &["-B", &db, "--checksum"]);

    // A private target: turning local_infile off on the shared one would disturb other tests.
    let private = private_servers();
    assert_ne!(private.target_url, servers().target_url);
    let mut tgt = connect(&private.target_url).await;
    exec(&mut tgt, "SET GLOBAL local_infile = 0").await;

    let o = private_load(&private.target_url, dir.path(), &["--output", "json"]);
    assert_eq!(o.code, Some(0), "load failed:\n{}", o.stderr);
    let warning = o
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("local_infile"));
    assert!(
        warning.is_some_and(|w| w.contains("INSERT")),
        "no warning about local_infile and INSERT:\n{}",
        o.stderr
    );
    let summary: serde_json::Value = serde_json::from_str(o.stdout.trim())
        .unwrap_or_else(|e| panic!("summary: {e}: {}", o.stdout));
    assert_eq!(summary["method"], "insert", "{summary}");
    assert_eq!(summary["rows"], 3000, "{summary}");
    assert_eq!(summary["mismatches"], 0, "{summary}");
    assert_eq!(summary["verified"][0]["checksum"], "ok", "{summary}");
    let mut src = source().await;
    let a = checksum_table(&mut src, &db, "t").await;
    let b = checksum_table(&mut tgt, &db, "t").await;
    assert!(a.is_some());
    assert_eq!(a, b, "CHECKSUM TABLE of the INSERT-loaded table differs");

    // Asking for LOAD DATA explicitly: a precheck error naming local_infile, nothing loaded.
    exec(&mut tgt, &format!("DROP DATABASE `{db}`")).await;
    let o = private_load(
        &private.target_url,
        dir.path(),
        &["--method", "load-data", "--task-id", "explicit-load-data"],
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(o.stdout.trim().is_empty(), "{}", o.stdout);
    assert!(
        error_text(&o.stderr).contains("local_infile"),
        "{}",
        o.stderr
    );
    let n: Option<u64> = tgt
        .exec_first(
            "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            (&db,),
        )
        .await
        .unwrap();
    assert_eq!(n, Some(0), "the failed precheck created {db}");
    drop(tgt);
    drop(private);
}
