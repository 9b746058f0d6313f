//! Acceptance: the TiDB Lightning conformance cases (`../shared/conformance/lightning/`, read-only)
//! loaded by `ferry load` into the MariaDB test target, with every `checks.json` assertion run
//! through the plain `mariadb -E -e` client, as the cases' `run.sh` did with `mysql`.
//!
//! Each case loads with its CSV dialect (`dialect` in checks.json) and the options of its
//! Lightning config (`character-set`, `sql-mode`); cases whose tables a `setup_sql` creates load
//! with `--no-schema`. Cases with several data directories or configs run once per variant, each
//! from a clean state: the case's databases are dropped first and every load has its own
//! `--task-id`. The cases share one server-wide state (fixed database names, a case that sets
//! GLOBAL variables), so they run one at a time.
//!
//! TiDB-only items and documented server differences are listed in
//! `tests/load_conformance_waivers.json`, and are still run: a waived table must make ferry fail
//! with the server's error (never load wrong data), and a waived check must not pass (a waiver
//! that starts passing is stale). Cases that need routing or Parquet are pending there and skipped
//! with a printed note.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The cases share database names and server-wide settings: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn lightning_dir() -> PathBuf {
    shared_dir().join("conformance/lightning")
}

fn read_json(path: &Path) -> Value {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

fn checks_json() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| read_json(&lightning_dir().join("checks.json")))
}

fn waiver_file() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| read_json(&repo_root().join("tests/load_conformance_waivers.json")))
}

fn cases() -> &'static [Value] {
    checks_json()["cases"]
        .as_array()
        .expect("checks.json: cases")
}

fn case_entry(name: &str) -> &'static Value {
    cases()
        .iter()
        .find(|c| c["case"] == name)
        .unwrap_or_else(|| panic!("checks.json has no case {name}"))
}

fn waivers_for(case: &str) -> Vec<&'static Value> {
    waiver_file()["waived"]
        .as_array()
        .expect("waivers: waived")
        .iter()
        .filter(|w| w["case"] == case)
        .collect()
}

fn pending_reason(case: &str) -> Option<&'static str> {
    waiver_file()["pending"]
        .as_array()
        .expect("waivers: pending")
        .iter()
        .find(|p| p["case"] == case)
        .map(|p| p["reason"].as_str().expect("pending reason"))
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// One string or an array of strings.
fn one_or_many(v: &Value) -> Vec<String> {
    match v.as_str() {
        Some(s) => vec![s.to_string()],
        None => strs(v),
    }
}

// ---------------------------------------------------------------------------------------------
// Lightning configs: the few keys that map to ferry options (a minimal TOML reader).

/// `key` of `[section]` in a Lightning TOML config, unquoted.
fn toml_get(text: &str, section: &str, key: &str) -> Option<String> {
    let mut current = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.starts_with('[') {
            current = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            continue;
        }
        if current != section {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        if k.trim() != key {
            continue;
        }
        let v = v.trim();
        return Some(if let Some(s) = v.strip_prefix('\'') {
            s.trim_end_matches('\'').to_string()
        } else if let Some(s) = v.strip_prefix('"') {
            s.trim_end_matches('"')
                .replace("\\\"", "\"")
                .replace("\\\\", "\\")
        } else {
            v.to_string()
        });
    }
    None
}

/// Whether a config needs routing or Parquet (file-routing rules).
fn needs_routing(config_text: &str) -> bool {
    config_text.contains("[[routes]]") || config_text.contains("[[mydumper.files]]")
}

// ---------------------------------------------------------------------------------------------
// Variants: one load each.

struct Variant {
    label: String,
    dir: PathBuf,
    config: Option<PathBuf>,
    checks: Vec<Value>,
    setup_sql: Option<String>,
    /// Renamed files (symlinks to the read-only data) live here.
    _links: Option<tempfile::TempDir>,
}

/// A directory of symlinks to `dir`'s files under the names `rename` gives (run.sh renames at
/// run time; the shared data stays untouched).
fn renamed_dir(dir: &Path, rename: &serde_json::Map<String, Value>) -> tempfile::TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("ferry-lconf-")
        .tempdir()
        .expect("temp dir");
    for e in std::fs::read_dir(dir).expect("read data dir") {
        let e = e.expect("dir entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let to = rename
            .get(&name)
            .and_then(|v| v.as_str())
            .unwrap_or(&name)
            .to_string();
        std::os::unix::fs::symlink(e.path(), tmp.path().join(&to)).expect("symlink");
    }
    tmp
}

fn variants(case: &Value) -> Vec<Variant> {
    let name = case["case"].as_str().expect("case name");
    let case_dir = lightning_dir().join(name);
    let checks: Vec<Value> = case["checks"].as_array().expect("checks").clone();
    let setup = case["setup_sql"].as_str().map(str::to_string);
    if checks.iter().any(|c| c.get("dir").is_some()) {
        // Checks name their data directory and configs (`a.toml|b.toml`): one load per pair.
        let mut out: Vec<Variant> = Vec::new();
        for c in &checks {
            let dir = c["dir"].as_str().expect("check dir");
            for cfg in c["config"].as_str().expect("check config").split('|') {
                let label = format!("{dir} + {cfg}");
                match out.iter_mut().find(|v| v.label == label) {
                    Some(v) => v.checks.push(c.clone()),
                    None => out.push(Variant {
                        label,
                        dir: case_dir.join(dir),
                        config: Some(case_dir.join(cfg)),
                        checks: vec![c.clone()],
                        setup_sql: c["setup_sql"]
                            .as_str()
                            .map(str::to_string)
                            .or(setup.clone()),
                        _links: None,
                    }),
                }
            }
        }
        return out;
    }
    let config = case["config"].as_str().map(|c| case_dir.join(c));
    one_or_many(&case["data"])
        .into_iter()
        .map(|d| {
            let data = case_dir.join(&d);
            let links = case["rename"].as_object().map(|r| renamed_dir(&data, r));
            Variant {
                label: d,
                dir: links.as_ref().map_or(data, |l| l.path().to_path_buf()),
                config: config.clone(),
                checks: checks.clone(),
                setup_sql: setup.clone(),
                _links: links,
            }
        })
        .collect()
}

/// Databases a dump directory's file names hold (`db-schema-create.sql`, `db.tbl...`).
fn dump_databases(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).expect("read data dir") {
        let name = e
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let mut plain = name.as_str();
        for suffix in [".gz", ".gzip", ".zst", ".zstd", ".snappy"] {
            plain = plain.strip_suffix(suffix).unwrap_or(plain);
        }
        let lower = plain.to_ascii_lowercase();
        if !(lower.ends_with(".sql") || lower.ends_with(".csv")) {
            continue;
        }
        if let Some(db) = plain.strip_suffix("-schema-create.sql") {
            out.insert(db.to_string());
        } else if let Some((db, _)) = plain.split_once('.') {
            out.insert(db.to_string());
        }
    }
    out
}

/// `db.table` as a table-filter rule naming exactly that table.
fn filter_rule(table: &str) -> String {
    let (db, t) = table.split_once('.').expect("db.table");
    format!("`{}`.`{}`", db.replace('`', "``"), t.replace('`', "``"))
}

/// ferry options for a variant: the CSV dialect, the config's character set and SQL mode,
/// `--no-schema` when the setup creates the tables.
fn base_args(case: &Value, v: &Variant) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |k: &str, val: &str| {
        a.push(k.to_string());
        a.push(val.to_string());
    };
    if let Some(d) = case.get("dialect") {
        // Lightning's defaults for the keys a case leaves out.
        let s = |k: &str, def: &str| d[k].as_str().unwrap_or(def).to_string();
        let b = |k: &str, def: bool| d[k].as_bool().unwrap_or(def);
        assert!(
            !b("not_null", false) && !b("trim_last_separator", false),
            "{}: dialect options ferry has no flag for: {d}",
            case["case"]
        );
        push("--csv-separator", &s("separator", ","));
        push("--csv-delimiter", &s("delimiter", "\""));
        push("--csv-header", &b("header", true).to_string());
        push(
            "--csv-backslash-escape",
            &b("backslash_escape", true).to_string(),
        );
        push("--csv-null-value", &s("null", "\\N"));
    }
    let mut no_schema = false;
    if let Some(cfg) = &v.config {
        let text = std::fs::read_to_string(cfg).expect("read config");
        if let Some(cs) = toml_get(&text, "mydumper", "character-set") {
            push("--character-set", &cs);
        }
        if let Some(m) = toml_get(&text, "tidb", "sql-mode") {
            push("--sql-mode", &m);
        }
        no_schema |= toml_get(&text, "mydumper", "no-schema").as_deref() == Some("true");
    }
    no_schema |= v
        .setup_sql
        .as_deref()
        .is_some_and(|s| s.to_ascii_lowercase().contains("create table"));
    if no_schema {
        a.push("--no-schema".into());
    }
    a
}

// ---------------------------------------------------------------------------------------------
// Running ferry and the client.

struct LoadRun {
    command: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl LoadRun {
    /// The command, its exit code and the end of its log, for failure messages.
    fn describe(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        let tail = lines[lines.len().saturating_sub(8)..].join("\n    ");
        format!(
            "  command: {}\n  exit code: {:?}\n  stderr (end):\n    {tail}",
            self.command, self.code
        )
    }

    fn error_line(&self) -> Option<&str> {
        self.stderr.lines().find(|l| l.starts_with("error: "))
    }
}

fn ferry_load(dir: &Path, args: &[String]) -> LoadRun {
    let task = unique_db("lconf");
    let mut c = load_command(dir);
    c.args(["--output", "json", "--task-id", &task]).args(args);
    let command = format!("{c:?}");
    let out = c.output().expect("spawn ferry");
    let run = LoadRun {
        command,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    println!(
        "  $ {}\n    -> exit {:?}{}",
        run.command,
        run.code,
        run.error_line()
            .map(|l| format!(": {l}"))
            .unwrap_or_default()
    );
    run
}

/// `mariadb -E -e <sql>` on the target (utf8mb4, as the cases' `mysql` client used); returns
/// success, stdout and stderr.
fn client(sql: &str, flags: &[String]) -> (bool, String, String) {
    let mut c = mariadb_client(servers().target_port);
    c.arg("--default-character-set=utf8mb4")
        .args(flags)
        .args(["-E", "-e", sql]);
    let out = c.output().expect("spawn mariadb client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

/// Runs a check's SQL; `Err` says what was expected and what came back.
fn eval_check(check: &Value, contains: &[String]) -> Result<(), String> {
    let sql = check["sql"].as_str().expect("check sql");
    let (ok, out, err) = client(sql, &strs(&check["mysql_flags"]));
    if !ok {
        return Err(format!("`{sql}`: the client failed: {err}"));
    }
    let missing: Vec<&String> = contains.iter().filter(|s| !out.contains(*s)).collect();
    let present: Vec<String> = strs(&check["not_contains"])
        .into_iter()
        .filter(|s| out.contains(s))
        .collect();
    if missing.is_empty() && present.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`{sql}`: expected {:?} present and {:?} absent; missing {missing:?}, present {present:?}; got:\n{}",
        contains,
        strs(&check["not_contains"]),
        out.trim_end()
    ))
}

/// Restores GLOBAL variables a setup changes, even when the test fails.
struct GlobalsGuard(Vec<(String, String)>);

impl GlobalsGuard {
    async fn capture(setups: &[&str]) -> Self {
        let mut names: Vec<String> = Vec::new();
        for s in setups {
            let mut rest = *s;
            while let Some(at) = rest.to_ascii_uppercase().find("GLOBAL ") {
                rest = &rest[at + 7..];
                let n: String = rest
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !n.is_empty() && !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        let mut tgt = target().await;
        let mut saved = Vec::new();
        for n in names {
            let v: Result<Option<String>, _> = mysql_async::prelude::Queryable::query_first(
                &mut tgt,
                format!("SELECT CAST(@@GLOBAL.{n} AS CHAR)"),
            )
            .await;
            if let Ok(Some(v)) = v {
                saved.push((n, v));
            }
        }
        GlobalsGuard(saved)
    }
}

impl Drop for GlobalsGuard {
    fn drop(&mut self) {
        for (n, v) in &self.0 {
            let value = if v.parse::<i64>().is_ok() {
                v.clone()
            } else {
                format!("'{}'", v.replace('\'', "''"))
            };
            let (ok, _, err) = client(&format!("SET GLOBAL {n} = {value}"), &[]);
            if !ok {
                eprintln!("could not restore GLOBAL {n} = {value}: {err}");
            }
        }
    }
}

async fn drop_databases(dbs: &BTreeSet<String>) {
    for d in dbs {
        drop_target_db(d).await;
    }
}

/// Runs setup SQL with the plain client; `Err` holds the client's message.
fn run_setup(sql: &str) -> Result<(), String> {
    let (ok, _, err) = client(sql, &[]);
    if ok {
        Ok(())
    } else {
        Err(err)
    }
}

// ---------------------------------------------------------------------------------------------
// A case.

fn waived_check<'a>(waivers: &[&'a Value], sql: &str) -> Option<&'a Value> {
    waivers
        .iter()
        .find(|w| strs(&w["checks"]).iter().any(|s| s == sql))
        .copied()
}

/// A load that must fail with exit code 1 and an `error:` line holding every string of `expect`.
fn expect_failed_load(run: &LoadRun, expect: &[String], what: &str) -> Result<(), String> {
    let line = run.error_line().unwrap_or("");
    // The server's message may span lines: look at everything from the `error:` line on.
    let message = run
        .stderr
        .find("\nerror: ")
        .map_or(run.stderr.as_str(), |at| &run.stderr[at..]);
    let missing: Vec<&String> = expect.iter().filter(|s| !message.contains(*s)).collect();
    if run.code == Some(1) && !line.is_empty() && missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{what}: expected ferry to fail (exit code 1) with an error naming {expect:?}; missing {missing:?}\n{}",
        run.describe()
    ))
}

async fn run_variant(case: &Value, v: &Variant, waivers: &[&Value], failures: &mut Vec<String>) {
    let name = case["case"].as_str().expect("case name");
    let tag = format!("[{name} / {}]", v.label);
    println!("{tag}");
    let dbs = dump_databases(&v.dir);
    let args = base_args(case, v);

    // Waived tables, each on its own: the server refuses them and ferry says so.
    let mut excluded: Vec<String> = Vec::new();
    for w in waivers.iter().filter(|w| w.get("tables").is_some()) {
        let workaround = w["workaround_setup_sql"].as_str();
        for t in strs(&w["tables"]) {
            drop_databases(&dbs).await;
            let mut a = args.clone();
            a.extend(["-f".to_string(), filter_rule(&t)]);
            let run = ferry_load(&v.dir, &a);
            let mut expect = strs(&w["expect_error"]);
            expect.push(t.clone());
            if let Err(e) = expect_failed_load(&run, &expect, &format!("waived table {t}")) {
                failures.push(format!("{tag} {e}"));
            }
            if workaround.is_none() {
                excluded.push(t);
            }
        }
    }

    drop_databases(&dbs).await;
    let setups: Vec<&str> = v
        .setup_sql
        .iter()
        .map(String::as_str)
        .chain(
            waivers
                .iter()
                .filter_map(|w| w["setup_sql"]["instead"].as_str()),
        )
        .collect();
    let _globals = GlobalsGuard::capture(&setups).await;
    if let Some(setup) = &v.setup_sql {
        let replaced = waivers.iter().find(|w| w["setup_sql"].is_object());
        let result = match replaced {
            Some(w) => {
                let want = w["setup_sql"]["expect_error"]
                    .as_str()
                    .expect("expect_error");
                match run_setup(setup) {
                    Ok(()) => Err(format!(
                        "the setup `{setup}` runs on this target now: the waiver replacing it is stale"
                    )),
                    Err(e) if !e.contains(want) => Err(format!(
                        "the setup `{setup}` failed with `{e}`, the waiver expects `{want}`"
                    )),
                    Err(_) => run_setup(w["setup_sql"]["instead"].as_str().expect("instead")),
                }
            }
            None => run_setup(setup),
        };
        if let Err(e) = result {
            failures.push(format!("{tag} setup failed: {e}"));
            return;
        }
    }
    for w in waivers {
        if let Some(s) = w["workaround_setup_sql"].as_str() {
            if let Err(e) = run_setup(s) {
                failures.push(format!("{tag} workaround setup `{s}` failed: {e}"));
                return;
            }
        }
    }

    let mut a = args.clone();
    if !excluded.is_empty() {
        a.extend(["-f".to_string(), "*.*".to_string()]);
        for t in &excluded {
            a.extend(["-f".to_string(), format!("!{}", filter_rule(t))]);
        }
    }
    let expect_fail: Vec<bool> = v
        .checks
        .iter()
        .map(|c| c["expect_import"] == "fail")
        .collect();
    assert!(
        expect_fail.iter().all(|f| *f) || !expect_fail.iter().any(|f| *f),
        "{tag}: checks mix expected failures and results"
    );
    let run = ferry_load(&v.dir, &a);
    if expect_fail.first() == Some(&true) {
        // A clear message: exit code 1 and an `error:` line naming a file of the dump.
        let dir = v.dir.display().to_string();
        if let Err(e) = expect_failed_load(&run, &[dir], "expect_import: fail") {
            failures.push(format!("{tag} {e}"));
        }
        return;
    }
    let loaded = run.code == Some(0);
    if !loaded {
        failures.push(format!("{tag} ferry load failed:\n{}", run.describe()));
    } else {
        match serde_json::from_str::<Value>(run.stdout.trim()) {
            Ok(s) if s["mismatches"] == 0 => {}
            Ok(s) => failures.push(format!(
                "{tag} ferry's own verification reports mismatches: {s}\n{}",
                run.describe()
            )),
            Err(e) => failures.push(format!(
                "{tag} cannot read ferry's summary ({e}): {}",
                run.stdout
            )),
        }
    }

    for check in &v.checks {
        let sql = check["sql"].as_str().expect("check sql");
        let contains = strs(&check["contains"]);
        match waived_check(waivers, sql) {
            Some(w) if w.get("instead_contains").is_some() => {
                if let Err(e) = eval_check(check, &strs(&w["instead_contains"])) {
                    failures.push(format!(
                        "{tag} waived check with the MySQL/MariaDB result: {e}"
                    ));
                }
            }
            Some(_) => match eval_check(check, &contains) {
                Ok(()) => failures.push(format!(
                    "{tag} the waived check `{sql}` passes now: remove its waiver"
                )),
                Err(e) => println!("  waived (fails as expected): {e}"),
            },
            None => {
                if let Err(e) = eval_check(check, &contains) {
                    let why = if loaded { "" } else { " (the load failed)" };
                    failures.push(format!("{tag} check failed{why}: {e}"));
                }
            }
        }
    }
}

async fn run_case(name: &str) {
    let _serial = SERIAL.lock().await;
    assert!(
        pending_reason(name).is_none(),
        "{name} is pending: it has no test"
    );
    let case = case_entry(name);
    let waivers = waivers_for(name);
    let mut failures = Vec::new();
    for v in variants(case) {
        run_variant(case, &v, &waivers, &mut failures).await;
    }
    if name == "lightning_csv" {
        // run.sh: errData/ must fail with a syntax error at byte 22 of db.test.1.csv (an
        // unterminated quoted field).
        let dir = lightning_dir().join(name).join("errData");
        println!("[{name} / errData]");
        drop_databases(&dump_databases(&dir)).await;
        let v = Variant {
            label: "errData".into(),
            dir: dir.clone(),
            config: None,
            checks: Vec::new(),
            setup_sql: None,
            _links: None,
        };
        let run = ferry_load(&dir, &base_args(case, &v));
        let expect = ["db.test.1.csv".to_string(), "byte 22".to_string()];
        if let Err(e) = expect_failed_load(&run, &expect, "errData") {
            failures.push(format!("[{name} / errData] {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problem(s) in {name}:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

macro_rules! cases {
    ($($test:ident => $case:literal,)*) => {
        /// Cases with a test of their own.
        const COVERED: &[&str] = &[$($case),*];
        $(
            #[tokio::test]
            async fn $test() {
                ferry_shared::conformance_or_skip!();
                run_case($case).await;
            }
        )*
    };
}

cases! {
    lightning_csv => "lightning_csv",
    lightning_compress => "lightning_compress",
    lightning_too_many_columns => "lightning_too_many_columns",
    lightning_issue_410 => "lightning_issue_410",
    lightning_generated_columns => "lightning_generated_columns",
    lightning_character_sets => "lightning_character_sets",
    lightning_issue_282 => "lightning_issue_282",
    lightning_view => "lightning_view",
    lightning_tool_135 => "lightning_tool_135",
    lightning_default_columns => "lightning_default-columns",
    lightning_exotic_filenames => "lightning_exotic_filenames",
    lightning_tool_1472 => "lightning_tool_1472",
    lightning_tool_241 => "lightning_tool_241",
    lightning_row_format_v2 => "lightning_row-format-v2",
    lightning_partitioned_table => "lightning_partitioned-table",
    lightning_no_schema => "lightning_no_schema",
}

#[test]
fn pending_cases_are_skipped_with_a_note() {
    ferry_shared::conformance_or_skip!();
    for p in waiver_file()["pending"].as_array().expect("pending") {
        let case = p["case"].as_str().expect("pending case");
        println!(
            "SKIPPED (pending) {case}: {}",
            p["reason"].as_str().expect("reason")
        );
    }
}

/// Every case is tested or pending; every waiver names a real case, check and table.
#[test]
fn waivers_and_pending_items_match_the_cases() {
    ferry_shared::conformance_or_skip!();
    for c in cases() {
        let name = c["case"].as_str().expect("case");
        let pending = pending_reason(name);
        assert!(
            COVERED.contains(&name) != pending.is_some(),
            "{name} must be either tested or pending (not both, not neither)"
        );
        let case_dir = lightning_dir().join(name);
        let routed = one_or_many(&c["config"]).iter().any(|cfg| {
            std::fs::read_to_string(case_dir.join(cfg)).is_ok_and(|t| needs_routing(&t))
        });
        assert_eq!(
            routed,
            pending.is_some(),
            "{name}: pending exactly when its config needs routing/Parquet"
        );
        if let Some(r) = pending {
            assert!(
                r.contains("needs routing/parquet support (later issue)"),
                "{name}: {r}"
            );
        }
    }
    for w in waiver_file()["waived"].as_array().expect("waived") {
        let name = w["case"].as_str().expect("waiver case");
        let case = case_entry(name);
        assert!(
            w["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{w}: needs a reason"
        );
        let sqls: Vec<&str> = case["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .filter_map(|c| c["sql"].as_str())
            .collect();
        for s in strs(&w["checks"]) {
            assert!(sqls.contains(&s.as_str()), "{name}: no check `{s}`");
        }
        let tables = strs(&w["tables"]);
        assert!(
            tables.is_empty() || !strs(&w["expect_error"]).is_empty(),
            "{w}: waived tables need expect_error"
        );
        for t in tables {
            let found = variants(case).iter().any(|v| {
                std::fs::read_dir(&v.dir).expect("data dir").any(|e| {
                    let n = e.expect("entry").file_name().to_string_lossy().into_owned();
                    n.strip_prefix(&t)
                        .is_some_and(|rest| rest.starts_with('-') || rest.starts_with('.'))
                })
            });
            assert!(found, "{name}: no files of the waived table {t}");
        }
    }
}
