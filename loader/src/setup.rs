//! Table setup, once per task under its setup lock: create databases and tables, defer the
//! secondary indexes of big tables, and register every data file in `ferry_meta`.
//!
//! The cost per table is what decides a dump of many small tables, so the setup reads the
//! task's table states, the existing tables and the target columns with one query each
//! (whatever the number of tables), creates tables over several connections at once, and
//! registers files and table states in one transaction with many rows a statement.
//!
//! Indexes are deferred only for tables whose files hold at least [`DEFER_MIN_BYTES`]: a small
//! table builds its index while loading for less than the two `ALTER TABLE`s (each a DDL with
//! its own file operations) that deferring costs.
//!
//! Crash safety: a deferred table's index definitions are recorded (state 0) before its indexes
//! are dropped, so a crash in between keeps them; the rerun finishes that table's setup. A table
//! created without a state row (a crash before the registration's commit) is found empty on the
//! rerun and loaded as an existing table.

use crate::checkpoint::{self, FileRow, META_DB};
use crate::config::{LoadConfig, OnExisting};
use crate::context::{dump_identity, TableCtx};
use crate::discover::{DataKind, DumpLayout, TablePlan};
use crate::error::{from_driver, LoadError};
use crate::input;
use crate::schema;
use crate::transcode::TableShape;
use ferry_shared::csv::CsvDialect;
use ferry_shared::ident::{qualified, quote_ident};
use ferry_shared::introspect::Column;
use ferry_shared::storage::Storage;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// Tables whose data files hold fewer bytes (as stored) keep their indexes while loading.
pub const DEFER_MIN_BYTES: u64 = 256 << 10;

/// What the setup does to one table that has no finished setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// Create it (and maybe defer its indexes).
    Create,
    /// Empty the existing table first (`--on-existing truncate`).
    Truncate,
    /// Load into it as it is.
    Keep,
}

/// Creates databases and tables and registers the files; returns the tables to load, how many
/// were skipped (`--on-existing skip`) and the task's chunk size.
pub(crate) async fn setup_tables(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    layout: &DumpLayout,
    task: &str,
    ctl: &mut Conn,
) -> Result<(Vec<TableCtx>, usize, u64), LoadError> {
    let chunk_size =
        checkpoint::register_task(ctl, task, &dump_identity(storage), cfg.chunk_size).await?;
    ctl.query_drop("SET SESSION foreign_key_checks = 0")
        .await
        .map_err(|e| from_driver(e, "session setup"))?;
    if !cfg.no_schema {
        for (db, file) in &layout.databases {
            let text = match file {
                Some(f) => Some((
                    read_schema_text(cfg, storage, f).await?,
                    storage.describe(f),
                )),
                None => None,
            };
            schema::create_database(ctl, db, text.as_ref().map(|(t, f)| (&t[..], f.as_str())))
                .await?;
        }
    }
    let schemas = table_schemas(layout);
    let mut states = checkpoint::table_states(ctl, task).await?;
    let existing = schema::existing_tables(ctl, &schemas).await?;
    // Existing data first: one report for all tables.
    let mut occupied = HashSet::new();
    for t in &layout.tables {
        let key = (t.db.clone(), t.name.clone());
        if !states.contains_key(&key)
            && existing.contains(&key)
            && schema::table_has_rows(ctl, &t.db, &t.name).await?
        {
            occupied.insert(key);
        }
    }
    report_existing(cfg, layout, &states, &existing, &occupied)?;

    let mut files: Vec<FileRow> = Vec::new();
    let mut table_rows: Vec<(String, String, u8)> = Vec::new();
    let mut work: VecDeque<(&TablePlan, Action)> = VecDeque::new();
    let mut skipped = 0;
    let mut loading = Vec::new();
    for t in &layout.tables {
        let key = (t.db.clone(), t.name.clone());
        let register = match states.remove(&key) {
            None if occupied.contains(&key) && cfg.on_existing == OnExisting::Skip => {
                tracing::info!(table = %qualified(&t.db, &t.name), "target table holds rows: skipped (--on-existing skip)");
                table_rows.push((t.db.clone(), t.name.clone(), checkpoint::TABLE_FINISHED));
                skipped += 1;
                continue;
            }
            None => {
                let action = if !existing.contains(&key) {
                    Action::Create
                } else if occupied.contains(&key) && cfg.on_existing == OnExisting::Truncate {
                    Action::Truncate
                } else {
                    Action::Keep
                };
                work.push_back((t, action));
                true
            }
            // A crash between deferring indexes and registering files: finish the setup.
            Some((0, _)) => true,
            Some(_) => false,
        };
        if register {
            files.extend(
                t.files
                    .iter()
                    .map(|f| (f.name.clone(), t.db.clone(), t.name.clone(), f.size)),
            );
            table_rows.push((t.db.clone(), t.name.clone(), checkpoint::TABLE_LOADING));
        }
        loading.push(t);
    }
    prepare_tables(cfg, storage, task, ctl, work).await?;
    checkpoint::register(ctl, task, &files, &table_rows).await?;

    let loading_names: Vec<(String, String)> = loading
        .iter()
        .map(|t| (t.db.clone(), t.name.clone()))
        .collect();
    let mut columns = schema::target_columns_of(ctl, &loading_names).await?;
    let mut out = Vec::with_capacity(loading.len());
    for t in loading {
        let target = columns
            .remove(&(t.db.clone(), t.name.clone()))
            .unwrap_or_default();
        out.push(table_ctx(cfg, storage, layout, t, target, ctl).await?);
    }
    Ok((out, skipped, chunk_size))
}

/// The databases of the dump's tables, each once.
fn table_schemas(layout: &DumpLayout) -> Vec<String> {
    let mut v: Vec<String> = layout.tables.iter().map(|t| t.db.clone()).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Logs the target's tables by kind and refuses tables holding rows with `--on-existing error`.
fn report_existing(
    cfg: &LoadConfig,
    layout: &DumpLayout,
    states: &checkpoint::TableStates,
    existing: &HashSet<(String, String)>,
    occupied: &HashSet<(String, String)>,
) -> Result<(), LoadError> {
    let keys: Vec<(String, String)> = layout
        .tables
        .iter()
        .map(|t| (t.db.clone(), t.name.clone()))
        .collect();
    let resumed = keys.iter().filter(|k| states.contains_key(*k)).count();
    let exist = keys
        .iter()
        .filter(|k| !states.contains_key(*k) && existing.contains(*k))
        .count();
    tracing::info!(
        new = keys.len() - resumed - exist,
        existing_empty = exist - occupied.len(),
        holding_rows = occupied.len(),
        resumed,
        "precheck: target tables"
    );
    if !occupied.is_empty() && cfg.on_existing == OnExisting::Error {
        let mut list: Vec<String> = keys
            .iter()
            .filter(|k| occupied.contains(*k))
            .map(|(d, t)| qualified(d, t))
            .collect();
        let n = list.len();
        list.truncate(10);
        return Err(LoadError::Target(format!(
            "precheck: {n} target table(s) already hold rows: {}; use --on-existing append|truncate|skip, or empty them",
            list.join(", ")
        )));
    }
    Ok(())
}

/// Creates, empties or defers the indexes of the tables in `work`, over up to `threads`
/// connections at once (`ctl` and new ones).
async fn prepare_tables(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    task: &str,
    ctl: &mut Conn,
    work: VecDeque<(&TablePlan, Action)>,
) -> Result<(), LoadError> {
    let helpers = cfg.threads.min(work.len()).saturating_sub(1);
    let queue = Mutex::new(work);
    let mut extra = Vec::with_capacity(helpers);
    for _ in 0..helpers {
        let mut c = cfg.target.connect().await?;
        c.query_drop("SET SESSION foreign_key_checks = 0")
            .await
            .map_err(|e| from_driver(e, "session setup"))?;
        extra.push(c);
    }
    let mut tasks = vec![prepare_from(cfg, storage, task, ctl, &queue)];
    for c in extra.iter_mut() {
        tasks.push(prepare_from(cfg, storage, task, c, &queue));
    }
    let results = futures::future::join_all(tasks).await;
    for c in extra {
        let _ = c.disconnect().await;
    }
    results.into_iter().collect()
}

/// One connection's share of [`prepare_tables`]: tables taken from `queue` until it is empty.
async fn prepare_from(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    task: &str,
    conn: &mut Conn,
    queue: &Mutex<VecDeque<(&TablePlan, Action)>>,
) -> Result<(), LoadError> {
    loop {
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some((t, action)) = next else {
            return Ok(());
        };
        let q = qualified(&t.db, &t.name);
        match action {
            Action::Keep => continue,
            Action::Truncate => {
                tracing::info!(table = %q, "emptying the target table (--on-existing truncate)");
                schema::exec(conn, format!("TRUNCATE TABLE {q}").as_bytes(), &q).await?;
                continue;
            }
            Action::Create => {}
        }
        if cfg.no_schema {
            return Err(LoadError::Target(format!(
                "{q} does not exist on the target and --no-schema was given: create it first, or drop --no-schema"
            )));
        }
        let Some(f) = &t.schema_file else {
            return Err(LoadError::Dump(format!(
                "{q}: the dump has no schema file for it and the target has no such table: create it on the target and use --no-schema"
            )));
        };
        let text = read_schema_text(cfg, storage, f).await?;
        schema::create_table(conn, &t.db, &t.name, &text, &storage.describe(f)).await?;
        // Only tables this load created: a user's existing table keeps its indexes.
        if cfg.defer_indexes && t.bytes() >= DEFER_MIN_BYTES {
            defer_indexes(conn, task, t).await?;
        }
    }
}

/// Drops the secondary indexes of a table this load created, after recording how to restore
/// them (state 0), so that a crash in between keeps them.
async fn defer_indexes(conn: &mut Conn, task: &str, t: &TablePlan) -> Result<(), LoadError> {
    let q = qualified(&t.db, &t.name);
    let idx = schema::secondary_indexes(conn, &t.db, &t.name).await?;
    if idx.is_empty() {
        return Ok(());
    }
    let drop: Vec<String> = idx
        .iter()
        .map(|(n, _)| format!("DROP INDEX {}", quote_ident(n)))
        .collect();
    let add: Vec<String> = idx.iter().map(|(_, d)| format!("ADD {d}")).collect();
    let restore_sql = format!("ALTER TABLE {q} {}", add.join(", "));
    checkpoint::set_table_state(conn, task, &t.db, &t.name, 0, Some(&restore_sql)).await?;
    match conn
        .query_drop(format!("ALTER TABLE {q} {}", drop.join(", ")))
        .await
    {
        Ok(()) => {
            tracing::info!(table = %q, indexes = idx.len(), "secondary indexes deferred");
        }
        Err(e) => {
            tracing::warn!(table = %q, error = %e, "cannot defer the indexes (kept)");
            checkpoint::set_table_state(conn, task, &t.db, &t.name, 0, Some("")).await?;
        }
    }
    Ok(())
}

pub(crate) async fn read_schema_text(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    name: &str,
) -> Result<Vec<u8>, LoadError> {
    let raw = input::read_all(storage, name).await?;
    decode_text(cfg, raw, &storage.describe(name))
}

/// Schema text in the connection's character set: GB18030 input is transcoded; with `auto`,
/// text that is not UTF-8 but is valid GB18030 is transcoded too.
fn decode_text(cfg: &LoadConfig, raw: Vec<u8>, file: &str) -> Result<Vec<u8>, LoadError> {
    let gb = || {
        let (text, _, bad) = encoding_rs::GB18030.decode(&raw);
        (!bad).then(|| text.into_owned().into_bytes())
    };
    match cfg.charset.as_str() {
        "gb18030" => gb().ok_or_else(|| LoadError::Input {
            file: file.to_string(),
            offset: 0,
            message: "not valid GB18030 text (--character-set gb18030)".into(),
        }),
        "utf8mb4" => match std::str::from_utf8(&raw) {
            Ok(_) => Ok(raw),
            Err(e) => Err(LoadError::Input {
                file: file.to_string(),
                offset: e.valid_up_to() as u64,
                message: "invalid UTF-8 (--character-set utf8mb4): set the file's --character-set"
                    .into(),
            }),
        },
        "auto" if std::str::from_utf8(&raw).is_err() => match gb() {
            Some(t) => {
                tracing::info!(file, "schema file is not UTF-8; read as GB18030");
                Ok(t)
            }
            None => Ok(raw),
        },
        _ => Ok(raw),
    }
}

async fn table_ctx(
    cfg: &LoadConfig,
    storage: &Arc<dyn Storage>,
    layout: &DumpLayout,
    t: &TablePlan,
    target: Vec<Column>,
    ctl: &mut mysql_async::Conn,
) -> Result<TableCtx, LoadError> {
    let q = qualified(&t.db, &t.name);
    let target_lower: Vec<String> = target.iter().map(|c| c.name.to_lowercase()).collect();
    let dump_columns: Vec<String> = if let Some(m) = &t.manifest {
        m.columns
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.clone())
            .collect()
    } else if let (true, Some(f)) = (
        cfg.no_schema || cfg.on_existing == OnExisting::Append,
        &t.schema_file,
    ) {
        let text = read_schema_text(cfg, storage, f).await?;
        let scratch = format!("scratch_{}", &checkpoint::file_id(&q)[..16]);
        schema::schema_file_columns(ctl, META_DB, &scratch, &text, &storage.describe(f))
            .await?
            .into_iter()
            .filter(|c| !c.generated)
            .map(|c| c.name)
            .collect()
    } else {
        target
            .iter()
            .filter(|c| !c.generated)
            .map(|c| c.name.clone())
            .collect()
    };
    for c in &dump_columns {
        if !target_lower.contains(&c.to_lowercase()) {
            return Err(LoadError::Target(format!(
                "column `{c}` of {q} in the dump does not exist in the target table (it has: {}): add it on the target, or load into a table that has it",
                target.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let csv = t
        .files
        .iter()
        .any(|f| f.kind == DataKind::Csv)
        .then(|| csv_dialect(cfg, layout));
    Ok(TableCtx {
        plan: t.clone(),
        shape: TableShape {
            qualified: q,
            columns: dump_columns,
            bit_columns: target
                .iter()
                .filter(|c| c.data_type == "bit")
                .map(|c| c.name.clone())
                .collect(),
            typed_text_columns: target
                .iter()
                .filter(|c| matches!(c.data_type.as_str(), "inet4" | "inet6" | "uuid"))
                .map(|c| c.name.clone())
                .collect(),
        },
        csv,
        target_columns: target_lower,
        auto_increment: target
            .iter()
            .find(|c| c.auto_increment)
            .map(|c| c.name.clone()),
    })
}

/// The dialect of a table's CSV files: a ferry dump's manifest records the one its files were
/// written in, and that wins (also its NULL marker, empty or not); the `--csv-*` options describe
/// files without a manifest.
fn csv_dialect(cfg: &LoadConfig, layout: &DumpLayout) -> CsvDialect {
    match layout.manifest.as_ref().and_then(|m| m.output.csv.as_ref()) {
        Some(d) => d.clone(),
        None => cfg.csv.clone(),
    }
}
