//! Test harness: real MariaDB servers (never mocks) and helpers to run the `ferry` binary.
//!
//! Servers come from the environment that `scripts/test.sh` sets up (`scripts/servers.sh`), or,
//! when a test binary runs alone, from a sandbox this harness starts in a temp dir with a
//! watchdog that stops it when the test process exits — even when it is killed.
//! Every test works in databases of its own (`unique_db`), so tests run in parallel.
#![allow(dead_code)]

pub mod matrix;
pub mod proxy;

use mysql_async::prelude::Queryable;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

pub struct Servers {
    pub source_url: String,
    pub target_url: String,
    pub source_port: u16,
    pub target_port: u16,
    pub password_file: Option<PathBuf>,
    /// CA of the servers' TLS certificate (when the sandbox has TLS).
    pub ssl_ca: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn parse_env_file(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '"' || c == '\'').to_string(),
            )
        })
        .collect()
}

pub fn servers() -> &'static Servers {
    static S: OnceLock<Servers> = OnceLock::new();
    S.get_or_init(|| {
        if let (Ok(src), Ok(tgt)) = (
            std::env::var("FERRY_TEST_SOURCE_URL"),
            std::env::var("FERRY_TEST_TARGET_URL"),
        ) {
            return Servers {
                source_port: port_of(&src),
                target_port: port_of(&tgt),
                source_url: src,
                target_url: tgt,
                password_file: std::env::var("FERRY_TEST_PASSWORD_FILE")
                    .ok()
                    .map(PathBuf::from),
                ssl_ca: std::env::var("FERRY_TEST_SSL_CA").ok().map(PathBuf::from),
                _dir: None,
            };
        }
        let (dir, vars) = start_sandbox("servers.sh", "ferry-test-");
        let src = vars["FERRY_TEST_SOURCE_URL"].clone();
        let tgt = vars["FERRY_TEST_TARGET_URL"].clone();
        Servers {
            source_port: port_of(&src),
            target_port: port_of(&tgt),
            source_url: src,
            target_url: tgt,
            password_file: vars.get("FERRY_TEST_PASSWORD_FILE").map(PathBuf::from),
            ssl_ca: vars.get("FERRY_TEST_SSL_CA").map(PathBuf::from),
            _dir: Some(dir),
        }
    })
}

/// Runs `scripts/<script> start` in a new temp dir, with a watchdog that stops the sandbox when
/// this process exits; returns the dir and the variables of its `env` file.
fn start_sandbox(
    script: &str,
    prefix: &str,
) -> (tempfile::TempDir, std::collections::HashMap<String, String>) {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    let status = Command::new("bash")
        .arg(repo_root().join("scripts").join(script))
        .args(["start", "--dir"])
        .arg(dir.path())
        .args(["--owner-pid", &std::process::id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("run scripts/{script}: {e}"));
    assert!(status.success(), "scripts/{script} start failed");
    let env = std::fs::read_to_string(dir.path().join("env")).expect("sandbox env file");
    let vars = parse_env_file(&env);
    (dir, vars)
}

/// A server pair of a test's own, for a test that changes global settings or restarts a
/// server (the shared pair would disturb other tests). Stopped when dropped, also when an
/// assertion fails, before its directory goes away.
pub struct PrivateServers {
    pub source_url: String,
    pub target_url: String,
    dir: tempfile::TempDir,
}

impl PrivateServers {
    /// The pair's `scripts/servers.sh` state directory (pid files, option files, `env`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Restarts `which` (`source` or `target`): a clean shutdown, `pause`, the same server
    /// started again; returns once it accepts connections.
    pub async fn restart(&self, which: &str, pause: std::time::Duration) {
        let pid: i32 = std::fs::read_to_string(self.dir().join(format!("{which}.pid")))
            .expect("pid file")
            .trim()
            .parse()
            .expect("pid");
        let killed = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let gone = std::time::Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() {
            assert!(gone.elapsed().as_secs() < 60, "the {which} did not stop");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        tokio::time::sleep(pause).await;
        let mariadbd = ["/usr/sbin/mariadbd", "/usr/local/sbin/mariadbd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mariadbd");
        // Detached (a shell that exits at once), so servers.sh stop finds it by its pid file.
        let started = Command::new("bash")
            .args([
                "-c",
                "\"$0\" --defaults-file=\"$1\" >/dev/null 2>&1 &",
                mariadbd,
            ])
            .arg(self.dir().join(format!("{which}.cnf")))
            .status()
            .expect("start mariadbd");
        assert!(started.success());
        let url = if which == "source" {
            &self.source_url
        } else {
            &self.target_url
        };
        let up = std::time::Instant::now();
        while mysql_async::Conn::from_url(url.as_str()).await.is_err() {
            assert!(up.elapsed().as_secs() < 60, "the {which} did not come back");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}

impl Drop for PrivateServers {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(repo_root().join("scripts/servers.sh"))
            .args(["stop", "--dir"])
            .arg(self.dir.path())
            .status();
    }
}

/// Starts a private server pair with `scripts/servers.sh` (stopped also if this process dies).
pub fn private_servers() -> PrivateServers {
    let dir = tempfile::tempdir().expect("temp dir");
    let ok = Command::new("bash")
        .arg(repo_root().join("scripts/servers.sh"))
        .args(["start", "--dir"])
        .arg(dir.path())
        .args(["--owner-pid", &std::process::id().to_string()])
        .status()
        .expect("run scripts/servers.sh")
        .success();
    assert!(ok, "scripts/servers.sh start failed");
    let env = std::fs::read_to_string(dir.path().join("env")).expect("servers env file");
    let vars = parse_env_file(&env);
    PrivateServers {
        source_url: vars["FERRY_TEST_SOURCE_URL"].clone(),
        target_url: vars["FERRY_TEST_TARGET_URL"].clone(),
        dir,
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("port in URL")
}

pub async fn connect(url: &str) -> mysql_async::Conn {
    let opts = mysql_async::Opts::from_url(url).expect("url");
    let opts = mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false);
    mysql_async::Conn::new(opts).await.expect("connect")
}

pub async fn source() -> mysql_async::Conn {
    connect(&servers().source_url).await
}

pub async fn target() -> mysql_async::Conn {
    connect(&servers().target_url).await
}

/// A self-signed CA certificate (PEM) in `dir` that signed no server's certificate.
pub fn unrelated_ca(dir: &Path) -> PathBuf {
    let ca = dir.join("other-ca.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=other", "-keyout"])
        .arg(dir.join("other-key.pem"))
        .arg("-out")
        .arg(&ca)
        .output()
        .expect("run openssl");
    assert!(made.status.success(), "openssl: {made:?}");
    ca
}

/// A database name no other test uses: `<prefix>_<pid>_<n>`.
pub fn unique_db(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The `ferry` binary under test.
pub fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env_remove("FERRY_SOURCE_PASSWORD")
        .env_remove("FERRY_TARGET_PASSWORD");
    c
}

/// Runs a command, returning stdout; panics with stdout/stderr when it fails.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "command failed ({:?}): {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status,
        cmd
    );
    stdout
}

/// Runs `cmd` (the `ferry` binary itself, not a shell) to completion, sampling its peak RSS
/// (VmHWM) every 20 ms; panics with its output if it fails, and also if no sample could be read
/// (a bound checked on no sample would prove nothing). Returns stdout and the peak in KiB.
pub fn run_ok_measuring_rss(cmd: &mut Command) -> (String, u64) {
    use std::sync::atomic::AtomicU64;
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let status_file = format!("/proc/{}/status", child.id());
    let peak = std::sync::Arc::new(AtomicU64::new(0));
    let samples = std::sync::Arc::new(AtomicU64::new(0));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, samples, done) = (peak.clone(), samples.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let status = std::fs::read_to_string(&status_file).unwrap_or_default();
                let hwm = status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
                if let Some(kb) = hwm {
                    peak.fetch_max(kb, Ordering::Relaxed);
                    samples.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };
    let out = child.wait_with_output().expect("wait");
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("RSS sampler");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "command failed ({:?}): {cmd:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (peak, samples) = (
        peak.load(Ordering::Relaxed),
        samples.load(Ordering::Relaxed),
    );
    assert!(
        samples > 0 && peak > 0,
        "no RSS sample of {cmd:?} was read ({samples} samples): its peak is unknown"
    );
    (stdout, peak)
}

/// Chunks an unfinished local dump in `dump_dir` records as done: the chunks its completion
/// markers list (a marker holds a batch of chunks, or one in dumps of earlier versions).
pub fn chunks_marked(dump_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dump_dir.join(".ferry-dump/done")) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .filter_map(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|v| v.as_array().map_or(1, |a| a.len()))
        .sum()
}

/// Data files a running local dump in `dump_dir` has begun (chunk files are written in place,
/// so all but the newest of each worker are complete; their markers may come later, in batches).
pub fn data_files_begun(dump_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dump_dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("-schema") && !n.starts_with('.') && n.matches('.').count() >= 3)
        .count()
}

/// `ferry dump --source <source> --progress off --to <to>`; add options with `.args(..)`.
pub fn dump_command(source: &str, to: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = ferry();
    c.args(["dump", "--source", source, "--progress", "off", "--to"])
        .arg(to);
    c
}

/// `ferry catchup --source <source> --target <target>`; add the start (`--from`, `--start-*`),
/// `--until` and other options with `.args(..)`.
pub fn catchup_command(source: &str, target: &str) -> Command {
    let mut c = ferry();
    c.args(["catchup", "--source", source, "--target", target]);
    c
}

/// Runs `ferry dump` from the test source to `to` with `args`; panics if it fails.
pub fn dump(to: &Path, args: &[&str]) -> String {
    run_ok(dump_command(&servers().source_url, to).args(args))
}

/// The plain `mariadb` client on a test server.
pub fn mariadb_client(port: u16) -> Command {
    let mut c = Command::new("mariadb");
    c.args([
        "-h127.0.0.1",
        &format!("-P{port}"),
        "-uroot",
        "--default-character-set=binary",
    ]);
    c
}

/// Replays SQL files into the target with the plain client, in order.
pub fn replay_sql_files(files: &[PathBuf], db: Option<&str>) {
    for f in files {
        let mut c = mariadb_client(servers().target_port);
        if let Some(d) = db {
            c.arg(d);
        }
        let data = read_maybe_compressed(f);
        let mut child = c
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("mariadb client");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(&data).expect("write sql");
        }
        let out = child.wait_with_output().expect("mariadb client");
        assert!(
            out.status.success(),
            "replaying {} failed: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

pub fn read_maybe_compressed(f: &Path) -> Vec<u8> {
    let raw = std::fs::read(f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
    let name = f.to_string_lossy();
    if name.ends_with(".zst") {
        zstd::decode_all(&raw[..]).expect("zstd")
    } else if name.ends_with(".gz") {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .expect("gzip");
        out
    } else {
        raw
    }
}

/// Files in `dir` whose names satisfy `pred`, sorted.
pub fn files_matching(dir: &Path, pred: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&pred))
        .collect();
    v.sort();
    v
}

pub async fn checksum_table(conn: &mut mysql_async::Conn, db: &str, table: &str) -> Option<u64> {
    let q = format!(
        "CHECKSUM TABLE `{}`.`{}`",
        db.replace('`', "``"),
        table.replace('`', "``")
    );
    let row: Option<(String, Option<u64>)> = conn.query_first(q).await.expect("checksum");
    row.and_then(|r| r.1)
}

pub async fn exec(conn: &mut mysql_async::Conn, sql: &str) {
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

pub fn shared_dir() -> PathBuf {
    ferry_shared::conformance::shared_root()
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    let data = std::fs::read(dir.join("ferry-manifest.json")).expect("manifest");
    serde_json::from_slice(&data).expect("manifest json")
}

/// `ferry load --from <from> --target <test target> --progress off`; add options with `.args(..)`.
pub fn load_command(from: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = ferry();
    c.args([
        "load",
        "--progress",
        "off",
        "--target",
        &servers().target_url,
        "--from",
    ])
    .arg(from);
    c
}

/// Runs `ferry load --output json` from `from` with `args`; panics if it fails; returns the
/// summary.
pub fn load(from: &Path, args: &[&str]) -> serde_json::Value {
    let out = run_ok(load_command(from).args(["--output", "json"]).args(args));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("load summary: {e}: {out}"))
}

/// Drops database `db` on the target (and the checkpoint tasks that loaded into it are left:
/// each test uses its own dump directory, so its own task).
pub async fn drop_target_db(db: &str) {
    let mut tgt = target().await;
    exec(
        &mut tgt,
        &format!("DROP DATABASE IF EXISTS `{}`", db.replace('`', "``")),
    )
    .await;
}

/// The tests' S3-protocol server (the pinned moto of `scripts/s3.sh`, on 127.0.0.1).
pub struct S3Server {
    /// `http://127.0.0.1:PORT` (path-style addressing).
    pub endpoint: String,
    pub bucket: String,
    /// The server's request log: one line per request with its method, path and status.
    pub log: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

/// The S3 server `scripts/test.sh` started (`FERRY_TEST_S3_*` in the environment), or, when a
/// test binary runs alone, one this harness starts with `scripts/s3.sh` in a temp dir (stopped
/// when the test process exits).
pub fn s3() -> &'static S3Server {
    static S: OnceLock<S3Server> = OnceLock::new();
    S.get_or_init(|| {
        if let Ok(endpoint) = std::env::var("FERRY_TEST_S3_ENDPOINT") {
            let bucket = std::env::var("FERRY_TEST_S3_BUCKET").expect("FERRY_TEST_S3_BUCKET");
            let log = std::env::var("FERRY_TEST_S3_LOG")
                .expect("FERRY_TEST_S3_LOG (restart the server with scripts/s3.sh start)");
            return S3Server {
                endpoint,
                bucket,
                log: PathBuf::from(log),
                _dir: None,
            };
        }
        let (dir, vars) = start_sandbox("s3.sh", "ferry-s3-");
        // The SDK in this process and the ferry children read the test credentials from the
        // environment; this runs once, before any S3 client exists.
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"] {
            std::env::set_var(key, &vars[key]);
        }
        S3Server {
            endpoint: vars["FERRY_TEST_S3_ENDPOINT"].clone(),
            bucket: vars["FERRY_TEST_S3_BUCKET"].clone(),
            log: PathBuf::from(&vars["FERRY_TEST_S3_LOG"]),
            _dir: Some(dir),
        }
    })
}

impl S3Server {
    /// `s3://BUCKET/prefix`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The storage at `s3://BUCKET/prefix`, as ferry opens it.
    pub async fn storage(
        &self,
        prefix: &str,
    ) -> std::sync::Arc<dyn ferry_shared::storage::Storage> {
        let opts = ferry_shared::storage::S3Options {
            endpoint: Some(self.endpoint.clone()),
            ..Default::default()
        };
        ferry_shared::storage::open(&self.url(prefix), &opts)
            .await
            .expect("open S3 storage")
    }

    /// The server's logged requests for the object `prefix/name` (and its sub-resources), as
    /// `(method, query, status)`.
    pub fn requests_for(&self, prefix: &str, name: &str) -> Vec<(String, String, u16)> {
        let log = std::fs::read_to_string(&self.log).expect("S3 server log");
        let path = format!("/{}/{prefix}/{name}", self.bucket);
        log.lines()
            .filter_map(|l| {
                // 127.0.0.1 - - [date] "GET /bucket/key?query HTTP/1.1" 206 -, with terminal
                // colours around the request when the status is not 200.
                let l = strip_colours(l);
                let (_, rest) = l.split_once('"')?;
                let (request, status) = rest.split_once('"')?;
                let mut words = request.split(' ');
                let (method, target) = (words.next()?, words.next()?);
                let (p, query) = target.split_once('?').unwrap_or((target, ""));
                let status = status.trim().split(' ').next()?.parse().ok()?;
                (p == path).then(|| (method.to_string(), query.to_string(), status))
            })
            .collect()
    }
}

/// `line` without ANSI colour sequences (`ESC [ ... m`).
fn strip_colours(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find('\x1b') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        rest = rest.find('m').map_or("", |m| &rest[m + 1..]);
    }
    out.push_str(rest);
    out
}
