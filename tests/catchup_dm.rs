//! The DM (TiDB Data Migration) live-server workloads of `../shared/conformance/dm`, end to end
//! through ferry: a case's prepare files run on the source, `ferry dump` → `ferry load` copy it
//! to the target, `ferry catchup` (a child process, no `--until`) streams while the increment
//! files run on the source, and the target must then equal the source — table list, column and
//! index definitions, `CHECKSUM TABLE`, and every row compared as hex in key order (that covers
//! JSON, floats, BIT and generated columns). It is compared after the load, while catchup still
//! runs (polled until equal), and after catchup is stopped (SIGTERM) and run again with
//! `--until caught-up`. The spot checks of `CASES.md` follow.
//!
//! How DM's `run.sh` maps onto one source server:
//! - DM's `db1`/`db2`/`db3` files belong to separate upstream servers (shards) whose prepare
//!   files drop and recreate the same database. Here each shard is a pass of its own (prepare →
//!   dump → load → catchup → increments → compare), one after another for the same database
//!   (a lock per database; the cases' databases differ, so cases run in parallel), and no file
//!   is rewritten. ferry has no shard merging: DM's routes (`dup_event` → `dup_event1`,
//!   `safe_mode_test.t*` → `safe_mode_target.t_target`) are not reproduced; every pass
//!   replicates its databases as they are.
//! - Each file runs on a fresh connection, as `run_sql_file` runs the `mysql` client once per
//!   file, with the session settings `run.sh` sets globally on that upstream (SQL mode, time
//!   zone). Global settings of the shared test servers are never changed.
//! - Order per case follows `run.sh`: all_mode `increment0` before `increment` (with `flush
//!   logs` and a comparison between), `increment3` on a fresh prepare (its own DM sub-test);
//!   `regexpr` files join the full phase (DM tests its regex router with them; ferry copies
//!   those databases as they are); safe_mode `increment` then `increment2`; binlog_parse
//!   `increment` then `increment1`.
//! - Statements MariaDB cannot run (MySQL 8 / TiDB syntax) are waived in
//!   `tests/catchup_dm_waivers.json`: the statement as written must still fail with the listed
//!   error (a waiver that stops being needed is stale and fails the test), then `instead` runs.
//!   A `/*!5xxxx-9xxxx */` version comment (MySQL 5.7+ only: MariaDB skips it) must be listed
//!   too, so nothing is skipped silently.
//! - `incremental_mode` runs catchup as the file's limited `dm_incremental` user (no SELECT, no
//!   RELOAD); DM's binlog-only start (from before the prepare) is
//!   `incremental_mode_from_binlog_position`, which dumps the empty database first.
//! - `full_mode` is dump and load only, dumped as its limited `dm_full` user.
//! - `safe_mode` and `duplicate_event`: catchup is SIGKILLed mid-stream and restarted; after
//!   convergence the whole stream is replayed once more from the dump's position under a new
//!   task id (DM's forced re-read): safe-mode replay must change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;
use mysql_async::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------ waivers

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WaiverFile {
    #[allow(dead_code)]
    about: String,
    waived: Vec<Waiver>,
}

/// A statement of a DM file that MariaDB cannot run as written.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Waiver {
    case: String,
    file: String,
    /// The statement as `split_sql` gives it (comments dropped, whitespace outside quotes
    /// collapsed).
    statement: String,
    /// The server error the statement as written must still give; `null`: it must run as a
    /// no-op (a MySQL-only version comment that MariaDB skips).
    error: Option<u16>,
    /// What runs instead (the MariaDB spelling); absent: nothing runs.
    instead: Option<String>,
    reason: String,
}

fn waivers() -> &'static [Waiver] {
    static W: OnceLock<WaiverFile> = OnceLock::new();
    let file = W.get_or_init(|| {
        let path = repo_root().join("tests/catchup_dm_waivers.json");
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    });
    for w in &file.waived {
        assert!(
            !w.reason.trim().is_empty(),
            "waiver without a reason: {w:?}"
        );
    }
    &file.waived
}

// --------------------------------------------------------------------------------- SQL files

/// Splits a SQL script into statements as the `mysql` client does for these files: `;` ends a
/// statement outside quotes and comments; `--`, `#` and `/* */` comments are dropped, `/*! */`
/// version comments kept; whitespace outside quotes collapses to one space (string contents,
/// newlines included, stay as written).
fn split_sql(text: &str, backslash_escapes: bool) -> Vec<String> {
    fn space(cur: &mut String) {
        if !cur.is_empty() && !cur.ends_with(' ') {
            cur.push(' ');
        }
    }
    fn finish(cur: &mut String, out: &mut Vec<String>) {
        let s = cur.trim();
        if !s.is_empty() {
            out.push(s.to_string());
        }
        cur.clear();
    }
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_version_comment = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                cur.push(c);
                i += 1;
                while i < b.len() {
                    let d = b[i];
                    cur.push(d);
                    i += 1;
                    if d == '\\' && backslash_escapes && c != '`' && i < b.len() {
                        cur.push(b[i]);
                        i += 1;
                    } else if d == c {
                        if b.get(i) == Some(&c) {
                            cur.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
                continue;
            }
            '-' if next == Some('-') && b.get(i + 2).is_none_or(|x| x.is_whitespace()) => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
                space(&mut cur);
                continue;
            }
            '#' => {
                while i < b.len() && b[i] != '\n' {
                    i += 1;
                }
                space(&mut cur);
                continue;
            }
            '/' if next == Some('*') && b.get(i + 2) == Some(&'!') => {
                in_version_comment = true;
                cur.push_str("/*!");
                i += 3;
                continue;
            }
            '/' if next == Some('*') => {
                i += 2;
                while i < b.len() && !(b[i] == '*' && b.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
                space(&mut cur);
                continue;
            }
            '*' if in_version_comment && next == Some('/') => {
                in_version_comment = false;
                cur.push_str("*/");
                i += 2;
                continue;
            }
            ';' if !in_version_comment => finish(&mut cur, &mut out),
            c if c.is_whitespace() => space(&mut cur),
            c => cur.push(c),
        }
        i += 1;
    }
    finish(&mut cur, &mut out);
    out
}

/// `/*!NNNNN ... */` with a MySQL 5.7+ version: MariaDB skips it.
fn is_mysql_only_version_comment(stmt: &str) -> bool {
    stmt.strip_prefix("/*!")
        .and_then(|r| r.get(..5))
        .and_then(|v| v.parse::<u32>().ok())
        .is_some_and(|v| (50700..100000).contains(&v))
        && stmt.ends_with("*/")
}

fn case_dir(case: &str) -> PathBuf {
    shared_dir().join("conformance/dm").join(case).join("data")
}

/// Session settings that `run.sh` sets globally on a shard's upstream before running files.
#[derive(Clone, Copy, Default)]
struct Session {
    sql_mode: Option<&'static str>,
    time_zone: Option<&'static str>,
}

impl Session {
    fn backslash_escapes(&self) -> bool {
        !self
            .sql_mode
            .is_some_and(|m| m.to_ascii_uppercase().contains("NO_BACKSLASH_ESCAPES"))
    }

    async fn open(&self) -> mysql_async::Conn {
        let mut c = source().await;
        if let Some(m) = self.sql_mode {
            exec(&mut c, &format!("SET SESSION sql_mode = '{m}'")).await;
        }
        if let Some(tz) = self.time_zone {
            exec(&mut c, &format!("SET SESSION time_zone = '{tz}'")).await;
        }
        c
    }
}

/// Runs one DM file on the source, statement by statement, applying its waivers; SIGKILLs
/// and restarts `catchup` after the statements numbered in `kill_after` (1-based).
async fn run_file(
    case: &str,
    file: &str,
    session: Session,
    kill_after: &[usize],
    mut catchup: Option<&mut Catchup>,
) {
    let path = case_dir(case).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mine: Vec<&Waiver> = waivers()
        .iter()
        .filter(|w| w.case == case && w.file == file)
        .collect();
    let mut used = HashSet::new();
    let mut conn = session.open().await;
    for (i, stmt) in split_sql(&text, session.backslash_escapes())
        .into_iter()
        .enumerate()
    {
        if kill_after.contains(&i) {
            catchup
                .as_deref_mut()
                .expect("a running catchup to kill")
                .kill_and_restart(&format!("{case}/{file}: before statement {}", i + 1));
        }
        let Some((n, w)) = mine.iter().enumerate().find(|(_, w)| w.statement == stmt) else {
            assert!(
                !is_mysql_only_version_comment(&stmt),
                "{case}/{file}: `{stmt}` is a MySQL-only version comment that MariaDB skips: \
                 list it in tests/catchup_dm_waivers.json"
            );
            if let Err(e) = conn.query_drop(&stmt).await {
                panic!(
                    "{case}/{file}: `{stmt}` failed on the source: {e}\n(a MySQL/TiDB-only \
                     statement needs a waiver in tests/catchup_dm_waivers.json)"
                );
            }
            continue;
        };
        used.insert(n);
        match (conn.query_drop(&stmt).await, w.error) {
            (Ok(()), None) => {}
            (Err(mysql_async::Error::Server(e)), Some(code)) if e.code == code => {}
            (got, want) => panic!(
                "{case}/{file}: waived `{stmt}` should give error {want:?} on MariaDB but gave \
                 {got:?}: the waiver is stale, remove or fix it"
            ),
        }
        if let Some(instead) = &w.instead {
            if let Err(e) = conn.query_drop(instead).await {
                panic!("{case}/{file}: the waiver's replacement `{instead}` failed: {e}");
            }
        }
    }
    for (n, w) in mine.iter().enumerate() {
        assert!(
            used.contains(&n),
            "{case}/{file}: waived statement not found in the file (stale waiver): `{}`",
            w.statement
        );
    }
}

// ------------------------------------------------------------------------------- comparison

type Rows = Vec<Vec<Option<String>>>;

fn cell(v: &Value) -> Option<String> {
    match v {
        Value::NULL => None,
        Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        other => Some(other.as_sql(true)),
    }
}

async fn query_rows(conn: &mut mysql_async::Conn, sql: &str) -> Rows {
    let rows: Vec<mysql_async::Row> = conn
        .query(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|r| r.unwrap().iter().map(cell).collect())
        .collect()
}

fn quote_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

fn quote_ident(s: &str) -> String {
    format!("`{}`", s.replace('`', "``"))
}

/// The first difference between the two servers' copies of `dbs`, if any.
async fn diff_databases(dbs: &[&str]) -> Result<(), String> {
    let mut src = source().await;
    let mut tgt = target().await;
    for c in [&mut src, &mut tgt] {
        exec(c, "SET SESSION time_zone = '+00:00'").await;
    }
    for db in dbs {
        let q = quote_str(db);
        let meta = [
            (
                "tables",
                format!(
                    "SELECT TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
                     WHERE TABLE_SCHEMA = {q} ORDER BY TABLE_NAME"
                ),
            ),
            (
                "column definitions",
                format!(
                    "SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
                     EXTRA, GENERATION_EXPRESSION, CHARACTER_SET_NAME, COLLATION_NAME \
                     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {q} \
                     ORDER BY TABLE_NAME, ORDINAL_POSITION"
                ),
            ),
            (
                "indexes",
                format!(
                    "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, \
                     SUB_PART FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {q} \
                     ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX"
                ),
            ),
            (
                "views",
                format!(
                    "SELECT TABLE_NAME, VIEW_DEFINITION FROM information_schema.VIEWS \
                     WHERE TABLE_SCHEMA = {q} ORDER BY TABLE_NAME"
                ),
            ),
        ];
        for (what, sql) in &meta {
            let a = query_rows(&mut src, sql).await;
            let b = query_rows(&mut tgt, sql).await;
            if a != b {
                return Err(format!("{db}: {what} differ\nsource: {a:?}\ntarget: {b:?}"));
            }
        }
        let tables = query_rows(
            &mut src,
            &format!(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q} \
                 AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME"
            ),
        )
        .await;
        for t in tables.into_iter().filter_map(|r| r[0].clone()) {
            let a = checksum_table(&mut src, db, &t).await;
            let b = checksum_table(&mut tgt, db, &t).await;
            if a.is_none() || a != b {
                return Err(format!(
                    "{db}.{t}: CHECKSUM TABLE differs: source {a:?}, target {b:?}"
                ));
            }
            let cols = query_rows(
                &mut src,
                &format!(
                    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {q} \
                     AND TABLE_NAME = {} ORDER BY ORDINAL_POSITION",
                    quote_str(&t)
                ),
            )
            .await;
            let exprs: Vec<String> = cols
                .iter()
                .filter_map(|r| r[0].as_deref())
                .map(|c| format!("HEX(CAST({} AS BINARY))", quote_ident(c)))
                .collect();
            let order: Vec<String> = (1..=exprs.len()).map(|n| n.to_string()).collect();
            let sql = format!(
                "SELECT {} FROM {}.{} ORDER BY {}",
                exprs.join(", "),
                quote_ident(db),
                quote_ident(&t),
                order.join(", ")
            );
            let a = query_rows(&mut src, &sql).await;
            let b = query_rows(&mut tgt, &sql).await;
            if a != b {
                let first = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                return Err(format!(
                    "{db}.{t}: rows differ ({} on the source, {} on the target); first \
                     difference at row {first} (hex per column):\nsource: {:?}\ntarget: {:?}",
                    a.len(),
                    b.len(),
                    a.get(first),
                    b.get(first)
                ));
            }
        }
    }
    Ok(())
}

// --------------------------------------------------------------------------------- pipeline

/// A step run on the source (or, for the checks, against the target).
#[derive(Clone, Copy)]
enum Step {
    /// A file of the case's `data/` directory.
    File(&'static str),
    /// A file, SIGKILLing and restarting catchup after the given statements (1-based).
    FileKilling(&'static str, &'static [usize]),
    /// A statement that the case's `run.sh` runs itself.
    Sql(&'static str),
    /// SIGKILL the running catchup, then start it again with the same task.
    KillCatchup,
    /// Wait until the target equals the source while catchup runs (`check_sync_diff`).
    Converged,
    /// A spot check: the first value of the query on the target.
    Expect(&'static str, &'static str),
}

/// One shard of a case: prepare, dump, load, catch up while increments run, compare.
struct Pass {
    case: &'static str,
    /// Short name, part of the task id.
    name: &'static str,
    session: Session,
    /// Run before the dump.
    prepare: Vec<Step>,
    /// Dumped and compared (DM's block-allow-list).
    databases: &'static [&'static str],
    /// Run while catchup streams; empty: full mode (dump and load only).
    increments: Vec<Step>,
    /// Source user of `ferry dump` instead of the test user: (name, password).
    dump_user: Option<(&'static str, &'static str)>,
    /// Source user of `ferry catchup` instead of the test user.
    catchup_user: Option<(&'static str, &'static str)>,
    /// Replay everything again from the dump's position under a new task at the end.
    replay_from_dump: bool,
}

/// A finished pass: its dump and catchup task, for more increments.
struct PassRun {
    dir: tempfile::TempDir,
    task: String,
}

/// One lock per source database: passes of the same database run one after another.
fn db_lock(db: &str) -> &'static tokio::sync::Mutex<()> {
    type Locks = Vec<(String, &'static tokio::sync::Mutex<()>)>;
    static LOCKS: OnceLock<std::sync::Mutex<Locks>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap();
    if let Some((_, l)) = locks.iter().find(|(n, _)| n == db) {
        return l;
    }
    let l: &'static tokio::sync::Mutex<()> = Box::leak(Box::new(tokio::sync::Mutex::new(())));
    locks.push((db.to_string(), l));
    l
}

fn source_url(user: Option<(&str, &str)>) -> String {
    match user {
        None => servers().source_url.clone(),
        Some((u, _)) => format!("mysql://{u}@127.0.0.1:{}", servers().source_port),
    }
}

/// A `ferry catchup` child process without `--until`; SIGKILLed when dropped.
struct Catchup {
    child: Option<Child>,
    dir: PathBuf,
    task: String,
    user: Option<(&'static str, &'static str)>,
    /// stderr of every run of the task, appended.
    log: tempfile::NamedTempFile,
}

impl Catchup {
    fn command(dir: &Path, task: &str, user: Option<(&str, &str)>) -> std::process::Command {
        let s = servers();
        let mut c = catchup_command(&source_url(user), &s.target_url);
        c.args(["--task-id", task, "--from"]).arg(dir);
        if let Some((_, password)) = user {
            c.env("FERRY_SOURCE_PASSWORD", password);
        }
        c
    }

    fn start(dir: &Path, task: &str, user: Option<(&'static str, &'static str)>) -> Catchup {
        let mut c = Catchup {
            child: None,
            dir: dir.to_path_buf(),
            task: task.to_string(),
            user,
            log: tempfile::NamedTempFile::new().unwrap(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.log.path())
            .unwrap();
        let child = Self::command(&self.dir, &self.task, self.user)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn ferry catchup");
        self.child = Some(child);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Panics with catchup's stderr if it has exited.
    fn assert_running(&mut self, when: &str) {
        let child = self.child.as_mut().expect("catchup started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "ferry catchup (task {}) exited {when} with {status}:\n{}",
                self.task,
                self.stderr()
            );
        }
    }

    /// SIGKILL, then the same task again.
    fn kill_and_restart(&mut self, when: &str) {
        self.assert_running(when);
        self.kill();
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (stop after the current transaction); it must exit 0 within 20 s.
    fn stop(&mut self) {
        self.assert_running("before the stop");
        let mut child = self.child.take().expect("catchup started");
        run_ok(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "ferry catchup (task {}) did not stop within 20 s of SIGTERM:\n{}",
                    self.task,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "ferry catchup (task {}) stopped by SIGTERM exited with {status}:\n{}",
            self.task,
            self.stderr()
        );
    }
}

impl Drop for Catchup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `ferry catchup --until caught-up` for `task`; returns its JSON summary.
fn catchup_until_caught_up(
    dir: &Path,
    task: &str,
    user: Option<(&str, &str)>,
) -> serde_json::Value {
    let out = run_ok(Catchup::command(dir, task, user).args([
        "--until",
        "caught-up",
        "--output",
        "json",
    ]));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("catchup summary: {e}: {out}"))
}

/// Polls until the target equals the source for `dbs`, while `catchup` keeps running.
async fn wait_converged(dbs: &[&str], catchup: &mut Catchup, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        catchup.assert_running(what);
        match diff_databases(dbs).await {
            Ok(()) => return,
            Err(e) if Instant::now() >= deadline => panic!(
                "{what}: the target did not converge to the source within 30 s while catchup \
                 ran: {e}\ncatchup stderr:\n{}",
                catchup.stderr()
            ),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn expect_on_target(sql: &str, want: &str) {
    let got = target_rows(sql).await;
    assert_eq!(
        got.first()
            .and_then(|r| r.first())
            .cloned()
            .flatten()
            .as_deref(),
        Some(want),
        "spot check `{sql}` on the target: {got:?}"
    );
}

async fn run_steps(p: &Pass, steps: &[Step], mut catchup: Option<&mut Catchup>) {
    for step in steps {
        let what = format!("{}/{}", p.case, p.name);
        match *step {
            Step::File(f) => run_file(p.case, f, p.session, &[], None).await,
            Step::FileKilling(f, after) => {
                run_file(p.case, f, p.session, after, catchup.as_deref_mut()).await
            }
            Step::Sql(sql) => {
                let mut c = p.session.open().await;
                exec(&mut c, sql).await;
            }
            Step::KillCatchup => catchup
                .as_deref_mut()
                .expect("a running catchup to kill")
                .kill_and_restart(&format!("{what}: before a kill")),
            Step::Converged => {
                let c = catchup.as_deref_mut().expect("a running catchup");
                wait_converged(p.databases, c, &format!("{what}: mid-stream")).await
            }
            Step::Expect(sql, want) => expect_on_target(sql, want).await,
        }
    }
}

/// Runs a pass (see the module doc) and panics at the first difference.
async fn run_pass(p: &Pass) -> PassRun {
    let started = Instant::now();
    let tag = format!("{}/{}", p.case, p.name);
    let mut tgt = target().await;
    for db in p.databases {
        exec(
            &mut tgt,
            &format!("DROP DATABASE IF EXISTS {}", quote_ident(db)),
        )
        .await;
    }
    run_steps(p, &p.prepare, None).await;

    let dir = tempfile::tempdir().unwrap();
    let mut dump = dump_command(&source_url(p.dump_user), dir.path());
    for db in p.databases {
        dump.args(["-B", db]);
    }
    if let Some((_, password)) = p.dump_user {
        dump.env("FERRY_SOURCE_PASSWORD", password);
    }
    run_ok(&mut dump);
    load(dir.path(), &[]);
    if let Err(e) = diff_databases(p.databases).await {
        panic!("{tag}: after dump and load: {e}");
    }
    let task = format!("dm-{}-{}-{}", p.case, p.name, std::process::id());
    if p.increments.is_empty() {
        eprintln!("{tag}: full mode, {:.1}s", started.elapsed().as_secs_f64());
        return PassRun { dir, task };
    }

    let mut catchup = Catchup::start(dir.path(), &task, p.catchup_user);
    run_steps(p, &p.increments, Some(&mut catchup)).await;
    wait_converged(p.databases, &mut catchup, &format!("{tag}: live")).await;
    catchup.stop();
    let summary = catchup_until_caught_up(dir.path(), &task, p.catchup_user);
    if let Err(e) = diff_databases(p.databases).await {
        panic!("{tag}: after --until caught-up ({summary}): {e}");
    }
    if p.replay_from_dump {
        let replay = format!("{task}-replay");
        let summary = catchup_until_caught_up(dir.path(), &replay, p.catchup_user);
        if let Err(e) = diff_databases(p.databases).await {
            panic!("{tag}: after replaying from the dump's position ({summary}): {e}");
        }
    }
    eprintln!("{tag}: converged, {:.1}s", started.elapsed().as_secs_f64());
    PassRun { dir, task }
}

async fn target_rows(sql: &str) -> Rows {
    let mut tgt = target().await;
    query_rows(&mut tgt, sql).await
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

// ------------------------------------------------------------------------------------ cases

/// all_mode's `run.sh` sets these globally on its upstreams.
const ALL_MODE_SQL_MODE: &str = "ANSI_QUOTES,NO_AUTO_VALUE_ON_ZERO";

fn all_mode_session(time_zone: &'static str) -> Session {
    Session {
        sql_mode: Some(ALL_MODE_SQL_MODE),
        time_zone: Some(time_zone),
    }
}

/// all_mode's pass of shard `n` (1 or 2) in `run.sh`'s order: the full phase (`db<n>.prepare.sql`
/// and `db<n>.regexpr.sql`, which makes the regexpr router's database `regexpr_db`), then, while
/// catchup runs, `DROP TABLE IF EXISTS` of the missing table `tb<n>` twice, the steps `then`,
/// `db<n>.increment0.sql`, a mid-stream comparison and `db<n>.increment.sql`.
fn all_mode_shard(n: u8, time_zone: &'static str, regexpr_db: &'static str, then: &[Step]) -> Pass {
    // Steps hold `&'static str`: the few names made here are leaked (once a test).
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let file = |suffix: &str| Step::File(leak(format!("db{n}.{suffix}")));
    let drop_missing = Step::Sql(leak(format!("drop table if exists `all_mode`.`tb{n}`")));
    let mut increments = vec![drop_missing, drop_missing];
    increments.extend_from_slice(then);
    increments.extend([
        file("increment0.sql"),
        Step::Converged,
        file("increment.sql"),
    ]);
    Pass {
        case: "all_mode",
        name: leak(format!("db{n}")),
        session: all_mode_session(time_zone),
        prepare: vec![file("prepare.sql"), file("regexpr.sql")],
        databases: Box::leak(Box::new(["all_mode", regexpr_db])),
        increments,
        dump_user: None,
        catchup_user: None,
        replay_from_dump: false,
    }
}

/// all_mode, shard 1, in `run.sh`'s order: the full phase (with the regexpr router's
/// database), then, while catchup runs, `DROP TABLE IF EXISTS` of a missing table twice,
/// `flush logs`, `db1.increment0.sql`, a mid-stream comparison, `db1.increment.sql` (JSON and
/// generated columns, unique keys on them, DECIMAL, BIT, BIGINT extremes, time zones).
#[tokio::test]
async fn all_mode_db1() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("all_mode").lock().await;
    run_pass(&all_mode_shard(
        1,
        "+01:00",
        "test2animal",
        &[Step::Sql("flush logs")],
    ))
    .await;
    // NO_AUTO_VALUE_ON_ZERO kept id 0; extremes of BIGINT, BIT and DECIMAL.
    assert_eq!(
        target_rows("SELECT name FROM all_mode.t1 WHERE id = 0").await,
        vec![vec![s("lalala")]]
    );
    assert_eq!(
        target_rows(
            "SELECT id, big1, big2, lat, bin + 0 FROM all_mode.t1 WHERE id IN (10, 11, 12) \
             ORDER BY id"
        )
        .await,
        vec![
            vec![s("10"), None, None, s("123.123000"), s("1")],
            vec![
                s("11"),
                s("-9223372036854775808"),
                s("0"),
                s("123.123000"),
                None
            ],
            vec![
                s("12"),
                s("9223372036854775807"),
                s("18446744073709551615"),
                s("123.123000"),
                None
            ],
        ]
    );
}

/// all_mode's `run.sh` also creates a view on shard 1 while the task runs ("should not stop
/// the sync task"). Under the upstream's ANSI_QUOTES the server logs the view's DDL with
/// double-quoted identifiers.
#[tokio::test]
async fn all_mode_db1_create_view_under_ansi_quotes() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("all_mode").lock().await;
    run_pass(&Pass {
        case: "all_mode",
        name: "db1view",
        session: all_mode_session("+01:00"),
        prepare: vec![Step::File("db1.prepare.sql")],
        databases: &["all_mode"],
        increments: vec![
            Step::Sql("create view all_mode.t1_v as select * from all_mode.t1 where id=0"),
            Step::File("db1.increment0.sql"),
        ],
        dump_user: None,
        catchup_user: None,
        replay_from_dump: false,
    })
    .await;
}

/// all_mode, shard 2: `DROP TABLE IF EXISTS` twice, `db2.increment0.sql` (DELETE, JSON array
/// UPDATE), a mid-stream comparison, `db2.increment.sql` (id 0 under NO_AUTO_VALUE_ON_ZERO).
#[tokio::test]
async fn all_mode_db2() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("all_mode").lock().await;
    run_pass(&all_mode_shard(2, "+02:00", "test4s_2022", &[])).await;
    assert_eq!(
        target_rows("SELECT id, name FROM all_mode.t2 ORDER BY id").await,
        vec![vec![s("0"), s("haha")], vec![s("2"), s("Bran")]]
    );
    assert_eq!(
        target_rows("SELECT j FROM all_mode.t3 WHERE id = 1").await,
        vec![vec![s("[10,20,30]")]]
    );
}

/// all_mode's `db3` files (JSON generated columns, then `ADD COLUMN .. AS` of each JSON
/// function; not run by all_mode's own `run.sh`): a third shard, server's default session.
#[tokio::test]
async fn all_mode_db3_generated_json() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("all_mode").lock().await;
    run_pass(&Pass {
        case: "all_mode",
        name: "db3",
        session: Session::default(),
        prepare: vec![Step::File("db3.prepare.sql")],
        databases: &["all_mode"],
        increments: vec![Step::File("db3.increment.sql")],
        dump_user: None,
        catchup_user: None,
        replay_from_dump: false,
    })
    .await;
    assert_eq!(
        target_rows("SELECT COUNT(*), COUNT(alt_j14) FROM all_mode.t_extract").await,
        vec![vec![s("30"), s("30")]]
    );
}

/// all_mode's `increment3` files (`test_fail_job_between_event`): multi-row inserts and an
/// explicit transaction, on a fresh prepare of each shard.
#[tokio::test]
async fn all_mode_increment3() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("all_mode").lock().await;
    for (name, prepare, increment, tz) in [
        ("db1i3", "db1.prepare.sql", "db1.increment3.sql", "+01:00"),
        ("db2i3", "db2.prepare.sql", "db2.increment3.sql", "+02:00"),
    ] {
        run_pass(&Pass {
            case: "all_mode",
            name,
            session: all_mode_session(tz),
            prepare: vec![Step::File(prepare)],
            databases: &["all_mode"],
            increments: vec![Step::File(increment)],
            dump_user: None,
            catchup_user: None,
            replay_from_dump: false,
        })
        .await;
    }
}

/// incremental_mode's increments (DML, `flush logs` between them, `ADD COLUMN .. AS`, unique
/// key on a generated column) streamed by catchup running as the limited `dm_incremental`
/// user of `db*.prepare.user.sql` (no SELECT, no RELOAD).
#[tokio::test]
async fn incremental_mode() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("incremental_mode").lock().await;
    for (name, user_file, prepare, increment) in [
        (
            "db1",
            "db1.prepare.user.sql",
            "db1.prepare.sql",
            "db1.increment.sql",
        ),
        (
            "db2",
            "db2.prepare.user.sql",
            "db2.prepare.sql",
            "db2.increment.sql",
        ),
    ] {
        run_pass(&Pass {
            case: "incremental_mode",
            name,
            session: Session::default(),
            prepare: vec![Step::File(prepare), Step::File(user_file)],
            databases: &["incremental_mode"],
            increments: vec![Step::File(increment)],
            dump_user: None,
            catchup_user: Some(("dm_incremental", "123456")),
            replay_from_dump: false,
        })
        .await;
    }
}

/// incremental_mode as DM runs it (`task-mode: incremental` from the binlog's start): the dump
/// is of the empty database, so `db*.prepare.sql` (DROP/CREATE DATABASE, CREATE TABLE, rows)
/// reaches the target through the binlog only.
#[tokio::test]
async fn incremental_mode_from_binlog_position() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("incremental_mode").lock().await;
    for (name, user_file, prepare, increment) in [
        (
            "db1b",
            "db1.prepare.user.sql",
            "db1.prepare.sql",
            "db1.increment.sql",
        ),
        (
            "db2b",
            "db2.prepare.user.sql",
            "db2.prepare.sql",
            "db2.increment.sql",
        ),
    ] {
        run_pass(&Pass {
            case: "incremental_mode",
            name,
            session: Session::default(),
            prepare: vec![
                Step::File(user_file),
                Step::Sql("DROP DATABASE IF EXISTS incremental_mode"),
                Step::Sql("CREATE DATABASE incremental_mode"),
            ],
            databases: &["incremental_mode"],
            increments: vec![Step::File(prepare), Step::File(increment)],
            dump_user: None,
            catchup_user: Some(("dm_incremental", "123456")),
            replay_from_dump: false,
        })
        .await;
    }
}

/// duplicate_event: three explicit 5-row transactions; catchup is SIGKILLed and restarted
/// after the first and second COMMIT and after the file, then the whole stream is replayed
/// from the dump's position (DM's forced re-read): no row lost or doubled.
#[tokio::test]
async fn duplicate_event() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("dup_event").lock().await;
    run_pass(&Pass {
        case: "duplicate_event",
        name: "db1",
        session: Session::default(),
        prepare: vec![Step::File("db1.prepare.sql")],
        databases: &["dup_event"],
        increments: vec![
            Step::FileKilling("db1.increment.sql", &[8, 15]),
            Step::KillCatchup,
        ],
        dump_user: None,
        catchup_user: None,
        replay_from_dump: true,
    })
    .await;
    let ids = target_rows("SELECT id FROM dup_event.t1 ORDER BY id").await;
    let want: Rows = [1, 2]
        .into_iter()
        .chain(11..=15)
        .chain(21..=25)
        .chain(31..=35)
        .map(|i| vec![Some(i.to_string())])
        .collect();
    assert_eq!(ids, want);
}

/// safe_mode: INSERTs interleaved with `ADD COLUMN`, UPDATEs; catchup is SIGKILLed and
/// restarted inside and between the increment files, then the whole stream is replayed from
/// the dump's position (INSERT → REPLACE, UPDATE → DELETE + REPLACE, DDL already in effect):
/// the target must stay equal to the source.
#[tokio::test]
async fn safe_mode() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("safe_mode_test").lock().await;
    for (name, prepare, inc, inc2) in [
        (
            "db1",
            "db1.prepare.sql",
            "db1.increment.sql",
            "db1.increment2.sql",
        ),
        (
            "db2",
            "db2.prepare.sql",
            "db2.increment.sql",
            "db2.increment2.sql",
        ),
    ] {
        run_pass(&Pass {
            case: "safe_mode",
            name,
            session: Session::default(),
            prepare: vec![Step::File(prepare)],
            databases: &["safe_mode_test"],
            increments: vec![
                Step::FileKilling(inc, &[4]),
                Step::KillCatchup,
                Step::FileKilling(inc2, &[5]),
                Step::KillCatchup,
            ],
            dump_user: None,
            catchup_user: None,
            replay_from_dump: true,
        })
        .await;
    }
}

/// binlog_parse: TIMESTAMP and TIMESTAMP(3) columns; t1 has 4 rows after `db1.increment.sql`
/// (checked while catchup runs), 6 after `db1.increment1.sql`, caught up by the same task.
#[tokio::test]
async fn binlog_parse() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("binlog_parse").lock().await;
    let run = run_pass(&Pass {
        case: "binlog_parse",
        name: "db1",
        session: Session::default(),
        prepare: vec![Step::File("db1.prepare.sql")],
        databases: &["binlog_parse"],
        increments: vec![
            Step::File("db1.increment.sql"),
            Step::Converged,
            Step::Expect("SELECT COUNT(1) FROM binlog_parse.t1", "4"),
        ],
        dump_user: None,
        catchup_user: None,
        replay_from_dump: false,
    })
    .await;
    run_file(
        "binlog_parse",
        "db1.increment1.sql",
        Session::default(),
        &[],
        None,
    )
    .await;
    catchup_until_caught_up(run.dir.path(), &run.task, None);
    if let Err(e) = diff_databases(&["binlog_parse"]).await {
        panic!("binlog_parse: after db1.increment1.sql: {e}");
    }
    expect_on_target("SELECT COUNT(1) FROM binlog_parse.t1", "6").await;
    expect_on_target(
        "SELECT CAST(created_time AS CHAR) FROM binlog_parse.t2 WHERE id = 6",
        "2022-01-06 00:00:01.000",
    )
    .await;
}

/// mariadb_source: the full phase gives 2 rows (id 1 alpha); after `ADD COLUMN note`, UPDATE
/// and INSERT the target has 3 rows, `note varchar(32)`, id 2 → beta_updated/updated, id 3 →
/// gamma.
#[tokio::test]
async fn mariadb_source() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("mariadb_source").lock().await;
    run_pass(&Pass {
        case: "mariadb_source",
        name: "db1",
        session: Session::default(),
        prepare: vec![Step::File("db1.prepare.sql")],
        databases: &["mariadb_source"],
        increments: vec![
            Step::Expect("SELECT COUNT(*) FROM mariadb_source.t1", "2"),
            Step::Expect("SELECT name FROM mariadb_source.t1 WHERE id = 1", "alpha"),
            Step::File("db1.increment.sql"),
        ],
        dump_user: None,
        catchup_user: None,
        replay_from_dump: false,
    })
    .await;
    expect_on_target("SELECT COUNT(*) FROM mariadb_source.t1", "3").await;
    let create = target_rows("SHOW CREATE TABLE mariadb_source.t1").await;
    let create = create[0][1].clone().unwrap();
    assert!(create.contains("`note` varchar(32)"), "{create}");
    assert_eq!(
        target_rows("SELECT name, note FROM mariadb_source.t1 WHERE id = 2").await,
        vec![vec![s("beta_updated"), s("updated")]]
    );
    expect_on_target("SELECT name FROM mariadb_source.t1 WHERE id = 3", "gamma").await;
}

/// full_mode: dump and load only, with `run.sh`'s NO_BACKSLASH_ESCAPES and time zones and its
/// table with `"` in the name, dumped as the limited `dm_full` user of `db*.prepare.user.sql`
/// (no REPLICATION CLIENT, SUPER, LOCK TABLES, PROCESS).
#[tokio::test]
async fn full_mode() {
    ferry_shared::conformance_or_skip!();
    let _g = db_lock("full_mode").lock().await;
    for (name, prepare, user_file, tz) in [
        ("db1", "db1.prepare.sql", "db1.prepare.user.sql", "+01:00"),
        ("db2", "db2.prepare.sql", "db2.prepare.user.sql", "+02:00"),
    ] {
        let mut steps = vec![Step::File(prepare)];
        if name == "db1" {
            steps.extend([
                Step::Sql(
                    "create table full_mode.`tb\"1` (id int,name varchar(10), primary key(`id`))",
                ),
                Step::Sql("insert into full_mode.`tb\"1` values(1,'haha')"),
                Step::Sql("insert into full_mode.`tb\"1` values(2,'hihi')"),
            ]);
        }
        steps.push(Step::File(user_file));
        run_pass(&Pass {
            case: "full_mode",
            name,
            session: Session {
                sql_mode: Some("NO_BACKSLASH_ESCAPES"),
                time_zone: Some(tz),
            },
            prepare: steps,
            databases: &["full_mode"],
            increments: vec![],
            dump_user: Some(("dm_full", "123456")),
            catchup_user: None,
            replay_from_dump: false,
        })
        .await;
        if name == "db1" {
            // Backslashes kept as written under NO_BACKSLASH_ESCAPES, a newline in a string.
            assert_eq!(
                target_rows("SELECT name FROM full_mode.t1 WHERE id IN (1, 3) ORDER BY id").await,
                vec![vec![s("Arya S\\\\\\\\tark")], vec![s("Eddard\nStark")]]
            );
        }
    }
}

#[test]
fn split_sql_keeps_strings_and_version_comments() {
    ferry_shared::conformance_or_skip!();
    let sql = "use `a;b`; -- c;\ninsert into t values ('x;\n y', \"q\\\"r\", 'it''s') ; # z;\n\
               /* c; */ /*!80013 alter table t add key ((lower(n))) */;\n\n  select  1";
    assert_eq!(
        split_sql(sql, true),
        vec![
            "use `a;b`",
            "insert into t values ('x;\n y', \"q\\\"r\", 'it''s')",
            "/*!80013 alter table t add key ((lower(n))) */",
            "select 1",
        ]
    );
    assert!(is_mysql_only_version_comment(
        "/*!80013 alter table t add key ((lower(n))) */"
    ));
    assert!(!is_mysql_only_version_comment("/*!40101 SET x = 1 */"));
    // NO_BACKSLASH_ESCAPES: a backslash does not escape the quote.
    assert_eq!(
        split_sql("select 'a\\'; select 2", false),
        ["select 'a\\'", "select 2"]
    );
}
