//! Acceptance: S3 through the pinned S3-protocol server of `scripts/s3.sh` (on 127.0.0.1), with
//! incompressible data so that objects really are multipart uploads:
//! - storage: an object of several parts is invisible until completed, then reads back whole
//!   and in ranges (across part boundaries), and a ranged read streams;
//! - dump -> load through S3 (zstd, one object of several parts, loaded in many chunks through
//!   ranged GETs) leaves the target equal to the source (CHECKSUM TABLE);
//! - memory: a dump and a load of a table bigger than both bounds stay under 200 / 300 MB;
//! - `--retry-for-secs`: an endpoint that goes away (through a proxy) mid-upload or mid-read
//!   is given up on after that period.
//!
//! The server's request log says what went over the wire (part uploads, completions, status
//! 206 for ranged GETs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use bytes::Bytes;
use ferry_shared::storage::{self, S3Options};
use harness::*;

const MIB: usize = 1 << 20;

fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// Requests for `prefix/name` with this method, a query containing `query`, and this status.
fn count(s3: &S3Server, prefix: &str, name: &str, method: &str, query: &str, status: u16) -> usize {
    s3.requests_for(prefix, name)
        .iter()
        .filter(|(m, q, st)| m == method && q.contains(query) && *st == status)
        .count()
}

#[tokio::test]
async fn multipart_object_completes_and_reads_back_in_ranges() {
    let s3 = s3();
    let prefix = unique_db("s3unit");
    let opts = S3Options {
        endpoint: Some(s3.endpoint.clone()),
        part_size: Some(5 * MIB),
        ..Default::default()
    };
    let st = storage::open(&s3.url(&prefix), &opts).await.unwrap();
    let data = random_bytes(13 * MIB + 12_345);
    let mut w = st.create("obj.bin").await.unwrap();
    for piece in data.chunks(700_000) {
        w.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert!(
        !st.exists("obj.bin").await.unwrap(),
        "visible before finish"
    );
    assert_eq!(w.finish().await.unwrap(), data.len() as u64);
    let listed = st.list("").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].size, data.len() as u64);
    // 5 + 5 + 3 MiB: three parts, then one completion, as the server saw them.
    assert_eq!(count(s3, &prefix, "obj.bin", "PUT", "partNumber=", 200), 3);
    assert_eq!(count(s3, &prefix, "obj.bin", "POST", "uploadId=", 200), 1);

    assert!(st.read("obj.bin").await.unwrap() == data[..], "whole read");
    let n = data.len();
    for (start, len) in [
        (0, 10),
        (5 * MIB - 100, 200),
        (7 * MIB, 4 * MIB),
        (n - 1000, 1000),
    ] {
        let got = st
            .read_range("obj.bin", start as u64, len as u64)
            .await
            .unwrap();
        assert!(got == data[start..start + len], "range {start}+{len}");
    }
    // A ranged read streams: the bytes come in pieces, not as one buffer of the whole range.
    let mut r = st
        .stream_range("obj.bin", MIB as u64, 10 * MIB as u64)
        .await
        .unwrap();
    let (mut pieces, mut got) = (0, Vec::new());
    while let Some(p) = r.next_piece().await.unwrap() {
        assert!(p.len() < 10 * MIB);
        pieces += 1;
        got.extend_from_slice(&p);
    }
    assert!(pieces > 1 && got == data[MIB..11 * MIB], "{pieces} pieces");
    assert!(count(s3, &prefix, "obj.bin", "GET", "", 206) >= 5);
}

/// A source database with a table of `rows` rows of 1000 random bytes (`rnd`) and a small one.
async fn random_source(prefix: &str, rows: u32) -> String {
    let db = unique_db(prefix);
    let mut src = source().await;
    for sql in [
        format!("CREATE DATABASE `{db}`"),
        format!("CREATE TABLE `{db}`.rnd (id INT PRIMARY KEY, b VARBINARY(1000), n INT)"),
        format!(
            "INSERT INTO `{db}`.rnd SELECT seq, RANDOM_BYTES(1000), seq % 7 FROM `{db}`.seq_1_to_{rows}"
        ),
        format!("CREATE TABLE `{db}`.small (k VARCHAR(20) PRIMARY KEY, s TEXT)"),
        format!("INSERT INTO `{db}`.small SELECT CONCAT('k', seq), MD5(seq) FROM `{db}`.seq_1_to_500"),
    ] {
        exec(&mut src, &sql).await;
    }
    db
}

async fn assert_target_equals_source(db: &str) {
    let (mut src, mut tgt) = (source().await, target().await);
    for t in ["rnd", "small"] {
        let s = checksum_table(&mut src, db, t).await;
        assert!(s.is_some(), "{db}.{t} has a checksum");
        assert_eq!(s, checksum_table(&mut tgt, db, t).await, "{db}.{t}");
    }
}

#[tokio::test]
async fn incompressible_multipart_dump_loads_exactly_through_ranged_reads() {
    let s3 = s3();
    let db = random_source("s3rt", 14_000).await;
    let prefix = format!("rt-{db}");
    let url = s3.url(&prefix);
    let endpoint = ["--s3-endpoint", s3.endpoint.as_str()];
    run_ok(
        dump_command(&servers().source_url, &url)
            .args(endpoint)
            .args(["-B", &db, "--compress", "zstd"]),
    );
    let st = s3.storage(&prefix).await;
    let name = format!("{db}.rnd.000000000.sql.zst");
    let object = st.list(&name).await.unwrap();
    assert_eq!(object.len(), 1, "{name}");
    // Random bytes (hex in the SQL) leave zstd little to take: more than one 8 MiB part.
    assert!(object[0].size > 8 << 20, "{} bytes", object[0].size);
    let parts = count(s3, &prefix, &name, "PUT", "partNumber=", 200);
    assert!(parts >= 2, "{parts} parts uploaded");
    assert_eq!(count(s3, &prefix, &name, "POST", "uploadId=", 200), 1);

    let out = run_ok(load_command(&url).args(endpoint).args([
        "--output",
        "json",
        "--chunk-size",
        "1MiB",
    ]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["rows"], 14_500, "{summary}");
    assert!(summary["chunks"].as_u64().unwrap() >= 10, "{summary}");
    // The loader read the object through ranged GETs (206), never as one whole GET (200).
    assert!(count(s3, &prefix, &name, "GET", "", 206) >= 1);
    assert_eq!(count(s3, &prefix, &name, "GET", "", 200), 0);
    assert_target_equals_source(&db).await;
    drop_target_db(&db).await;
}

/// 170k rows, ~345 MB of SQL (more than either bound) dumped to S3 in 7 objects of ~50 MB that
/// the 4 workers write at once (part buffers of every open upload used to add up to ~230 MB).
/// Returns the database, the dump's URL and the dump's peak RSS in KiB.
async fn dump_random_to_s3(prefix: &str) -> (String, String, u64) {
    let s3 = s3();
    let db = random_source(prefix, 170_000).await;
    let url = s3.url(&format!("{prefix}-{db}"));
    let (_, dump_kb) = run_ok_measuring_rss(
        dump_command(&servers().source_url, &url)
            .args(["--s3-endpoint", s3.endpoint.as_str()])
            .args(["-B", &db, "--rows", "25000"]),
    );
    let objects = s3
        .storage(&format!("{prefix}-{db}"))
        .await
        .list(&format!("{db}.rnd."))
        .await
        .unwrap();
    let total: u64 = objects.iter().map(|o| o.size).sum();
    assert!(total > 300_000_000 && objects.len() >= 6, "{objects:?}");
    eprintln!(
        "S3, {} MB of objects: dump peak RSS {} MB",
        total >> 20,
        dump_kb >> 10
    );
    (db, url, dump_kb)
}

#[tokio::test]
async fn a_dump_to_s3_stays_under_its_memory_bound() {
    let (db, _, dump_kb) = dump_random_to_s3("s3mem").await;
    assert!(dump_kb < 200 << 10, "dump peak RSS {} MB", dump_kb >> 10);
    exec(&mut source().await, &format!("DROP DATABASE `{db}`")).await;
}

#[tokio::test]
async fn a_load_from_s3_stays_under_its_memory_bound() {
    let s3 = s3();
    let (db, url, _) = dump_random_to_s3("s3lmem").await;
    let endpoint = ["--s3-endpoint", s3.endpoint.as_str()];
    let (out, load_kb) =
        run_ok_measuring_rss(load_command(&url).args(endpoint).args(["--output", "json"]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    eprintln!("load peak RSS {} MB", load_kb >> 10);
    assert_eq!(summary["rows"], 170_500, "{summary}");
    assert_target_equals_source(&db).await;
    assert!(load_kb < 300 << 10, "load peak RSS {} MB", load_kb >> 10);
    drop_target_db(&db).await;
    exec(&mut source().await, &format!("DROP DATABASE `{db}`")).await;
}

/// Runs `cmd` (through an S3 proxy) until the S3 server has logged `seen` requests; then the
/// endpoint goes away for good (connections cut, new ones refused). Returns the command's exit
/// code, stderr, and the seconds it took to end after that.
async fn run_until_s3_goes_away(
    cmd: &mut std::process::Command,
    proxy: harness::proxy::CutProxy,
    seen: impl Fn() -> bool,
) -> (Option<i32>, String, u64) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = pipe.read_to_string(&mut s);
        s
    });
    let t0 = std::time::Instant::now();
    while !seen() {
        assert!(child.try_wait().unwrap().is_none(), "ended before the cut");
        assert!(t0.elapsed().as_secs() < 120, "the S3 requests never came");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    proxy.cut_all();
    drop(proxy);
    let cut = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if cut.elapsed().as_secs() > 150 {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    (code, stderr.join().unwrap(), cut.elapsed().as_secs())
}

/// `--retry-for-secs` bounds S3 retries as it bounds database ones: when the S3 endpoint goes
/// away in the middle of a dump's multipart upload, or of a load's ranged reads, the part
/// upload or read retries for that long and gives up (it used to keep at it for ten minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_retries_give_up_after_retry_for_secs() {
    let s3 = s3();
    let port: u16 = s3.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    // ~80 MB of SQL in one object: ten parts, uploaded (and read back) one after the other.
    let db = random_source("s3gone", 40_000).await;
    let name = format!("{db}.rnd.000000000.sql");
    let retry = ["--retry-for-secs", "2"];

    let prefix = format!("gone-{db}");
    let proxy = harness::proxy::CutProxy::start(port).await;
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let (code, stderr, secs) = run_until_s3_goes_away(
        dump_command(&servers().source_url, s3.url(&prefix))
            .args(["--s3-endpoint", &via_proxy, "-B", &db, "--threads", "1"])
            .args(retry),
        proxy,
        || count(s3, &prefix, &name, "PUT", "partNumber=", 200) >= 1,
    )
    .await;
    assert!(
        code.is_some_and(|c| c != 0),
        "dump: exit {code:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("giving up") && stderr.contains("uploading part"),
        "{stderr}"
    );
    assert!(secs < 90, "the dump gave up {secs} s after S3 went away");

    let prefix = format!("back-{db}");
    run_ok(dump_command(&servers().source_url, s3.url(&prefix)).args([
        "--s3-endpoint",
        s3.endpoint.as_str(),
        "-B",
        &db,
    ]));
    let proxy = harness::proxy::CutProxy::start(port).await;
    let via_proxy = format!("http://127.0.0.1:{}", proxy.port);
    let (code, stderr, secs) = run_until_s3_goes_away(
        load_command(s3.url(&prefix))
            .args(["--s3-endpoint", &via_proxy, "--threads", "1"])
            .args(retry),
        proxy,
        || count(s3, &prefix, &name, "GET", "", 206) >= 1,
    )
    .await;
    assert!(
        code.is_some_and(|c| c != 0),
        "load: exit {code:?}:\n{stderr}"
    );
    assert!(
        stderr.contains("giving up") && stderr.contains("reading s3://"),
        "{stderr}"
    );
    assert!(secs < 90, "the load gave up {secs} s after S3 went away");
    drop_target_db(&db).await;
    exec(&mut source().await, &format!("DROP DATABASE `{db}`")).await;
}
