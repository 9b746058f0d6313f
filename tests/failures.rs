//! The failure policy end to end: every error class gives one exit code in dump, load and
//! catchup (1 definite, 3 transient that outlasted --retry-for-secs), with a message naming the
//! thing; and every command rides out its server going away in the middle of the work.
//!
//! - `exit_codes_by_class_end_to_end`: the classes that can be provoked cheaply, through the
//!   `ferry` binary against real servers: server gone (a port nothing listens on), access
//!   denied, unknown database, TLS failure (a CA that did not sign the server's certificate, or
//!   a server without TLS), syntax error (a broken schema file). Disk full is provoked for the
//!   dump in `dump_errors` (a 2 MiB tmpfs).
//! - `exit_codes_by_class_in_each_command`: every class (also lock wait timeout, deadlock,
//!   disk full, S3 throttling and S3 access denied, which a test cannot provoke cheaply) through
//!   the error type of each command, to the exit code the binary gives.
//! - `load_rides_out_a_target_restart` and `dump_rides_out_cut_connections`.

mod harness;

use ferry_shared::failure::{s3_class, Class, Classify, Failure};
use ferry_shared::storage::StorageError;
use harness::*;
use std::path::Path;
use std::process::Output;

/// A port with nothing listening on it.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// `ferry dump|load|catchup` with `url` as the server under test (the others are the good
/// test servers), `extra` appended.
fn run(command: &str, url: &str, dump: &Path, to: &Path, extra: &[&str]) -> Output {
    let s = servers();
    let mut c = ferry();
    c.args([command, "--progress", "off", "--retry-for-secs", "1"]);
    match command {
        "dump" => {
            c.args(["--source", url, "--to"]).arg(to);
        }
        "load" => {
            c.args(["--target", url, "--from"]).arg(dump);
        }
        _ => {
            c.args([
                "--source",
                url,
                "--target",
                &s.target_url,
                "--until",
                "caught-up",
            ])
            .arg("--from")
            .arg(dump);
        }
    }
    c.args(extra).output().expect("run ferry")
}

/// (class, command, server URL, extra options, exit code, text the message must hold)
type Row<'a> = (&'a str, &'a str, &'a str, Vec<&'a str>, i32, String);

#[tokio::test]
async fn exit_codes_by_class_end_to_end() {
    let s = servers();
    let db = unique_db("fail");
    make_tables(&s.source_url, &db, 8).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    dump(&good, &["-B", &db]);

    let gone = format!("mysql://root@127.0.0.1:{}", dead_port());
    let port = |url: &str| url.rsplit(':').next().unwrap_or("").to_string();
    let denied = format!("mysql://ferry_nobody@127.0.0.1:{}", port(&s.source_url));
    let unknown_db = format!("{}/ferry_no_such_db", s.source_url.trim_end_matches('/'));
    let other_ca = unrelated_ca(dir.path());
    let ca = other_ca.to_string_lossy().into_owned();
    // A dump whose schema file the target cannot parse.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).expect("mkdir");
    for e in std::fs::read_dir(&good).expect("dump dir").flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), broken.join(e.file_name())).expect("copy");
        }
    }
    let schema = format!("{db}.a-schema.sql");
    let text = std::fs::read_to_string(good.join(&schema)).expect("schema file");
    assert!(text.contains("NOT NULL,"), "{text}");
    std::fs::write(
        broken.join(&schema),
        text.replacen("NOT NULL,", "NOT NULL,,", 1),
    )
    .expect("write");

    let rows: Vec<Row> = vec![
        (
            "server gone",
            "dump",
            &gone,
            vec![],
            3,
            gone[8..].to_string(),
        ),
        (
            "server gone",
            "load",
            &gone,
            vec![],
            3,
            gone[8..].to_string(),
        ),
        (
            "server gone",
            "catchup",
            &gone,
            vec![],
            3,
            gone[8..].to_string(),
        ),
        ("access denied", "dump", &denied, vec![], 1, "1045".into()),
        ("access denied", "load", &denied, vec![], 1, "1045".into()),
        (
            "access denied",
            "catchup",
            &denied,
            vec![],
            1,
            "1045".into(),
        ),
        (
            "unknown database",
            "dump",
            &unknown_db,
            vec![],
            1,
            "ferry_no_such_db".into(),
        ),
        (
            "unknown database",
            "load",
            &unknown_db,
            vec![],
            1,
            "ferry_no_such_db".into(),
        ),
        (
            "unknown database",
            "catchup",
            &unknown_db,
            vec![],
            1,
            "ferry_no_such_db".into(),
        ),
        (
            "TLS failure",
            "dump",
            &s.source_url,
            vec!["--source-ssl-ca", &ca],
            1,
            "TLS".into(),
        ),
        (
            "TLS failure",
            "load",
            &s.target_url,
            vec!["--target-ssl-ca", &ca],
            1,
            "TLS".into(),
        ),
        (
            "TLS failure",
            "catchup",
            &s.source_url,
            vec!["--source-ssl-ca", &ca],
            1,
            "TLS".into(),
        ),
    ];
    let mut report = Vec::new();
    for (n, (class, command, url, extra, code, names)) in rows.iter().enumerate() {
        let to = dir.path().join(format!("out{n}"));
        let out = run(command, url, &good, &to, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        report.push(format!(
            "{class:18} {command:8} exit {:?}",
            out.status.code()
        ));
        assert_eq!(out.status.code(), Some(*code), "{class} / {command}: {err}");
        assert!(
            err.contains(names.as_str()),
            "{class} / {command}: message must name `{names}`: {err}"
        );
        if *code == 3 {
            assert!(
                err.contains("--retry-for-secs"),
                "{class} / {command}: {err}"
            );
        }
    }
    // Syntax error: only the load sends SQL text of the user's; the target refuses it.
    let out = run("load", &s.target_url, &broken, dir.path(), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "syntax error / load: {err}");
    assert!(
        err.contains("1064") && err.contains(&schema),
        "syntax error / load: {err}"
    );
    report.push(format!(
        "{:18} {:8} exit {:?}",
        "syntax error",
        "load",
        out.status.code()
    ));
    eprintln!("{}", report.join("\n"));
    drop_target_db(&db).await;
}

/// An error each command can meet, made fresh for each command's error type.
#[derive(Clone, Copy)]
enum Made {
    /// A server error code.
    Code(u16, &'static str),
    Refused,
    Closed,
    NoTls,
    DiskFull,
    /// An S3 answer: HTTP status and S3 error code.
    S3(u16, &'static str),
}

enum Source {
    Db(mysql_async::Error),
    S3(StorageError),
    File(std::io::Error),
}

impl Made {
    fn make(self) -> Source {
        use mysql_async::{DriverError, Error as E, IoError};
        match self {
            Made::Code(code, message) => Source::Db(E::Server(mysql_async::ServerError {
                code,
                state: "HY000".into(),
                message: message.into(),
            })),
            Made::Refused => Source::Db(E::Io(IoError::Io(
                std::io::ErrorKind::ConnectionRefused.into(),
            ))),
            Made::Closed => Source::Db(E::Driver(DriverError::ConnectionClosed)),
            Made::NoTls => Source::Db(E::Driver(DriverError::NoClientSslFlagFromServer)),
            Made::DiskFull => Source::File(std::io::Error::from_raw_os_error(28)),
            Made::S3(status, code) => Source::S3(StorageError::S3 {
                location: "s3://bucket/dump/db.t.000000001.sql".into(),
                action: "write",
                message: code.into(),
                transient: s3_class(Some(status), Some(code)).0 == Class::Transient,
            }),
        }
    }

    /// The exit codes of this error in dump's, load's and catchup's error types.
    fn exit_codes(self) -> [u8; 3] {
        use ferry_catchup::run::CatchupError;
        use ferry_loader::error::LoadError;
        let dump = match self.make() {
            Source::Db(e) => ferry_dumper::DumpError::query("dumping db.t", e),
            Source::S3(e) => ferry_dumper::DumpError::Storage(e),
            Source::File(e) => ferry_dumper::DumpError::Storage(StorageError::Io {
                location: "/d/db.t.000000001.sql".into(),
                action: "write",
                source: e,
            }),
        };
        let load = match self.make() {
            Source::Db(e) => ferry_loader::error::from_driver(e, "loading db.t"),
            Source::S3(e) => LoadError::Storage(e),
            Source::File(e) => LoadError::Failed(Failure::io("reading /d/x", &e)),
        };
        let catchup = match self.make() {
            Source::Db(e) => CatchupError::Failed(Failure::mysql("applying", &e)),
            Source::S3(e) => CatchupError::Failed(Failure::new(
                "reading the manifest",
                e.to_string(),
                e.class(),
            )),
            Source::File(e) => CatchupError::Failed(Failure::io("reading", &e)),
        };
        [dump.class(), load.class(), catchup.class()].map(Class::exit_code)
    }
}

#[test]
fn exit_codes_by_class_in_each_command() {
    use Made::*;
    let table = [
        ("server gone (refused)", Refused, 3),
        ("server gone (closed)", Closed, 3),
        ("server gone (2013)", Code(2013, "Lost connection"), 3),
        (
            "server shutting down",
            Code(1053, "Server shutdown in progress"),
            3,
        ),
        (
            "lock wait timeout",
            Code(1205, "Lock wait timeout exceeded"),
            3,
        ),
        ("deadlock", Code(1213, "Deadlock found"), 3),
        ("access denied", Code(1045, "Access denied"), 1),
        ("unknown database", Code(1049, "Unknown database 'x'"), 1),
        (
            "syntax error",
            Code(1064, "You have an error in your SQL syntax"),
            1,
        ),
        ("disk full (server)", Code(1114, "The table 't' is full"), 1),
        ("disk full (local)", DiskFull, 1),
        ("TLS failure", NoTls, 1),
        ("S3 throttling", S3(503, "SlowDown"), 3),
        ("S3 access denied", S3(403, "AccessDenied"), 1),
    ];
    for (class, error, code) in table {
        assert_eq!(
            error.exit_codes(),
            [code; 3],
            "{class}: dump, load, catchup"
        );
    }
}

/// Rows and CHECKSUM TABLE of every table of `db` on both servers are equal.
async fn assert_same(src_url: &str, tgt_url: &str, db: &str, tables: &[&str]) {
    let (mut src, mut tgt) = (connect(src_url).await, connect(tgt_url).await);
    for t in tables {
        let (a, b) = (
            checksum_table(&mut src, db, t).await,
            checksum_table(&mut tgt, db, t).await,
        );
        assert!(a.is_some(), "{db}.{t} has a checksum");
        assert_eq!(
            a, b,
            "{db}.{t}: CHECKSUM TABLE differs between source and target"
        );
    }
}

/// Makes `db` with tables `a` (keyed, `rows` rows) and `b` (no key) on the server at `url`.
async fn make_tables(url: &str, db: &str, rows: u64) {
    let mut src = connect(url).await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.a (id INT PRIMARY KEY, v VARCHAR(64), n BIGINT)"),
    )
    .await;
    exec(
        &mut src,
        &format!("CREATE TABLE `{db}`.b (k INT, v VARCHAR(64))"),
    )
    .await;
    exec(
        &mut src,
        &format!("INSERT INTO `{db}`.a SELECT seq, MD5(seq), seq * 7 FROM `{db}`.seq_1_to_{rows}"),
    )
    .await;
    exec(
        &mut src,
        &format!(
            "INSERT INTO `{db}`.b SELECT seq % 100, SHA1(seq) FROM `{db}`.seq_1_to_{}",
            rows / 4
        ),
    )
    .await;
}

/// Waits for `child` (`ferry <command>`): it exited 0 and logged `noticed` (it met the failure
/// and retried).
fn assert_rode_out(child: std::process::Child, command: &str, noticed: &str) {
    let out = child.wait_with_output().expect(command);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{command} did not ride it out: {err}");
    assert!(
        err.contains(noticed),
        "{command} did not notice the failure: {err}"
    );
}

/// A private server pair (one may be restarted) whose source has `db` (see [`make_tables`]),
/// and an empty directory.
async fn private_pair_with_tables(db: &str, rows: u64) -> (PrivateServers, tempfile::TempDir) {
    let pair = private_servers();
    make_tables(&pair.source_url, db, rows).await;
    (pair, tempfile::tempdir().expect("tempdir"))
}

/// The target restarts in the middle of `ferry load`: the load waits, reconnects and finishes
/// the interrupted chunks in the same run (exit 0), and the target equals the source.
#[tokio::test]
async fn load_rides_out_a_target_restart() {
    let db = "restart_load";
    let (pair, dir) = private_pair_with_tables(db, 600_000).await;
    run_ok(dump_command(&pair.source_url, dir.path()).args(["-B", db, "--rows", "20000"]));
    let mut load = ferry()
        .args([
            "load",
            "--progress",
            "off",
            "--threads",
            "2",
            "--chunk-size",
            "256KiB",
            "--target",
            &pair.target_url,
            "--from",
        ])
        .arg(dir.path())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn load");
    // Restart once the load has committed some chunks, not all.
    let mut tgt = connect(&pair.target_url).await;
    let started = std::time::Instant::now();
    loop {
        let done: Option<u64> = mysql_async::prelude::Queryable::query_first(
            &mut tgt,
            "SELECT COUNT(*) FROM ferry_meta.load_chunk_v1",
        )
        .await
        .unwrap_or(None);
        if done.unwrap_or(0) >= 3 {
            break;
        }
        assert!(
            load.try_wait().expect("wait").is_none(),
            "the load finished before the restart; give it more rows"
        );
        assert!(started.elapsed().as_secs() < 120, "no chunk committed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(tgt);
    pair.restart("target", std::time::Duration::from_secs(3))
        .await;
    assert_rode_out(load, "load", "retrying");
    assert_same(&pair.source_url, &pair.target_url, db, &["a", "b"]).await;
}

/// Starts `ferry dump` of `db` to `to` (chunks of 5000 rows, 2 threads) and returns once it has
/// written the files of a few chunks, while it is still running (their completion markers are
/// written in batches, so they may not be there yet).
async fn dump_some_chunks(url: &str, db: &str, to: &Path) -> std::process::Child {
    let mut dump = dump_command(url, to)
        .args(["-B", db, "--rows", "5000", "--threads", "2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn dump");
    let started = std::time::Instant::now();
    while data_files_begun(to) < 4 {
        assert!(
            dump.try_wait().expect("wait").is_none(),
            "the dump finished too soon; give it more rows"
        );
        assert!(started.elapsed().as_secs() < 120, "no chunk finished");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    dump
}

/// The source's connections are cut in the middle of `ferry dump` (through a proxy): the dump
/// reads the interrupted chunks again at a new consistent point and completes; loaded, it
/// equals the source. Multi-threaded: the proxy runs on this runtime while the test waits for
/// the dump.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_rides_out_cut_connections() {
    let s = servers();
    let db = unique_db("cut");
    make_tables(&s.source_url, &db, 400_000).await;
    let proxy = harness::proxy::CutProxy::start(s.source_port).await;
    let via_proxy = s
        .source_url
        .replace(&format!(":{}", s.source_port), &format!(":{}", proxy.port));
    let dir = tempfile::tempdir().expect("tempdir");
    let dump = dump_some_chunks(&via_proxy, &db, dir.path()).await;
    let cut = proxy.cut_all();
    assert!(cut > 0, "no live connection to cut");
    assert_rode_out(dump, "dump", "new consistent point");
    drop_target_db(&db).await;
    load(dir.path(), &[]);
    assert_same(&s.source_url, &s.target_url, &db, &["a", "b"]).await;
    drop_target_db(&db).await;
}

/// The source restarts in the middle of `ferry dump`: the dump waits for it, reads the
/// unfinished chunks at a new consistent point and completes; loaded, it equals the source.
#[tokio::test]
async fn dump_rides_out_a_source_restart() {
    let db = "restart_dump";
    let (pair, dir) = private_pair_with_tables(db, 400_000).await;
    let dump = dump_some_chunks(&pair.source_url, db, dir.path()).await;
    pair.restart("source", std::time::Duration::from_secs(2))
        .await;
    assert_rode_out(dump, "dump", "new consistent point");
    // The restarted source writes a new binlog file: the chunks read again carry its Location.
    let locations = manifest(dir.path())["locations"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(
        locations >= 2,
        "one Location for chunks read before and after the restart"
    );
    run_ok(
        ferry()
            .args([
                "load",
                "--progress",
                "off",
                "--target",
                &pair.target_url,
                "--from",
            ])
            .arg(dir.path()),
    );
    assert_same(&pair.source_url, &pair.target_url, db, &["a", "b"]).await;
}
