//! The plan of a dump: its tables with their schema files and chunks, persisted as
//! `.ferry-dump/plan.json` with a fingerprint of the options before any data is read. A re-run
//! with the same options resumes this plan; other options are refused rather than mixing two
//! dumps. Planning writes the schema files, tables spread over a few connections.

use crate::chunk::{self, ChunkPlan};
use crate::config::DumpConfig;
use crate::error::DumpError;
use crate::schema::{self, TableInfo, ViewInfo};
use bytes::Bytes;
use ferry_shared::conn::ServerInfo;
use ferry_shared::ident::encode_file_name;
use ferry_shared::manifest::{DatabaseEntry, ViewEntry};
use ferry_shared::storage::Storage;
use mysql_async::prelude::Queryable;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Mutex;

pub(crate) const STATE_DIR: &str = ".ferry-dump";
const PLAN_NAME: &str = ".ferry-dump/plan.json";
const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TablePlan {
    pub(crate) info: TableInfo,
    pub(crate) chunks: Vec<ChunkPlan>,
    pub(crate) schema_file: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DumpPlan {
    pub(crate) version: u32,
    pub(crate) fingerprint: String,
    pub(crate) started_at: String,
    pub(crate) server: ServerInfo,
    pub(crate) databases: Vec<DatabaseEntry>,
    pub(crate) tables: Vec<TablePlan>,
    pub(crate) views: Vec<ViewEntry>,
}

pub(crate) fn json<T: Serialize>(v: &T) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())
}

/// The plan of an interrupted dump with the same options (resumed), or a new one.
pub(crate) async fn plan_or_resume(
    cfg: &DumpConfig,
    ctl: &mut mysql_async::Conn,
    server: &ServerInfo,
    storage: &dyn Storage,
) -> Result<(DumpPlan, bool), DumpError> {
    let found = match load_plan(storage).await? {
        Some(plan) => {
            if plan.fingerprint != cfg.fingerprint() {
                return Err(DumpError::Definite(format!(
                    "{} holds an unfinished dump made with other options ({}); re-run with the same options to resume, or choose an empty --to",
                    storage.describe(""),
                    plan.fingerprint
                )));
            }
            let n = storage.clean_incomplete().await.unwrap_or(0);
            tracing::info!(leftovers_removed = n, "resuming an interrupted dump");
            (plan, true)
        }
        None => {
            let plan = make_plan(cfg, ctl, server, storage).await?;
            // The plan is the commit point of the schema files (written deferred).
            storage.sync().await?;
            storage.put(PLAN_NAME, json(&plan)).await?;
            (plan, false)
        }
    };
    Ok(found)
}

async fn load_plan(storage: &dyn Storage) -> Result<Option<DumpPlan>, DumpError> {
    if !storage.exists(PLAN_NAME).await? {
        return Ok(None);
    }
    let data = storage.read(PLAN_NAME).await?;
    let plan: DumpPlan = serde_json::from_slice(&data).map_err(|e| {
        DumpError::Definite(format!(
            "{}: unreadable dump state ({e}); remove the {STATE_DIR} directory to start over",
            storage.describe(PLAN_NAME)
        ))
    })?;
    if plan.version != STATE_VERSION {
        return Err(DumpError::Definite(format!(
            "{}: dump state version {} is not {STATE_VERSION}; finish it with the ferry that started it, or start over",
            storage.describe(PLAN_NAME),
            plan.version
        )));
    }
    Ok(Some(plan))
}

async fn make_plan(
    cfg: &DumpConfig,
    ctl: &mut mysql_async::Conn,
    server: &ServerInfo,
    storage: &dyn Storage,
) -> Result<DumpPlan, DumpError> {
    ctl.query_drop("SET NAMES binary")
        .await
        .map_err(|e| DumpError::query("SET NAMES binary", e))?;
    let (dbs, table_names, views) = schema::discover(ctl, &cfg.filter, !cfg.no_views).await?;
    // A database the filter names that has no tables yet is still dumped (its schema file), so
    // it can be loaded and caught up into; only a filter that matches nothing is an error.
    if table_names.is_empty() && views.is_empty() && dbs.is_empty() {
        return Err(DumpError::Definite(format!(
            "no table matches the filter ({}); check -f/--filter rules and the user's privileges",
            cfg.filter
        )));
    }
    let mut databases = Vec::new();
    for db in &dbs {
        let mut entry = DatabaseEntry {
            name: db.clone(),
            schema_file: None,
        };
        if !cfg.no_schemas {
            let name = format!("{}-schema-create.sql", encode_file_name(db));
            storage
                .put(&name, Bytes::from(schema::database_schema(ctl, db).await?))
                .await?;
            entry.schema_file = Some(name);
            if cfg.routines {
                if let Some(text) = schema::routines_schema(ctl, db).await? {
                    storage
                        .put(
                            &format!("{}-schema-post.sql", encode_file_name(db)),
                            Bytes::from(text),
                        )
                        .await?;
                }
            }
        }
        databases.push(entry);
    }
    // Schema files and chunk plans, tables spread over a few connections.
    let infos = schema::describe_tables(ctl, &table_names).await?;
    let queue = Mutex::new(infos.into_iter().enumerate().collect::<VecDeque<_>>());
    let helpers = cfg
        .threads
        .clamp(1, 8)
        .min(table_names.len())
        .saturating_sub(1);
    let mut extra = Vec::with_capacity(helpers);
    for _ in 0..helpers {
        let mut c = cfg.source.connect().await?;
        c.query_drop("SET NAMES binary")
            .await
            .map_err(|e| DumpError::query("SET NAMES binary", e))?;
        extra.push(c);
    }
    let mut planners = vec![plan_tables_from(ctl, &queue, cfg, storage)];
    for c in extra.iter_mut() {
        planners.push(plan_tables_from(c, &queue, cfg, storage));
    }
    let mut planned = Vec::new();
    for r in futures::future::join_all(planners).await {
        planned.extend(r?);
    }
    for c in extra {
        let _ = c.disconnect().await;
    }
    planned.sort_by_key(|(i, _)| *i);
    let tables: Vec<TablePlan> = planned.into_iter().map(|(_, t)| t).collect();
    let mut view_entries = Vec::new();
    if !cfg.no_schemas {
        for v in &views {
            let (placeholder, view) = schema::view_schema(ctl, v).await?;
            let base = format!("{}.{}", encode_file_name(&v.db), encode_file_name(&v.name));
            let placeholder_file = format!("{base}-schema.sql");
            let schema_file = format!("{base}-schema-view.sql");
            storage
                .put(&placeholder_file, Bytes::from(placeholder))
                .await?;
            storage.put(&schema_file, Bytes::from(view)).await?;
            let ViewInfo { db, name } = v.clone();
            view_entries.push(ViewEntry {
                database: db,
                name,
                schema_file,
                placeholder_file,
            });
        }
    }
    Ok(DumpPlan {
        version: STATE_VERSION,
        fingerprint: cfg.fingerprint(),
        started_at: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        server: server.clone(),
        databases,
        tables,
        views: view_entries,
    })
}

/// Schema files written together by one planner, in one step of the blocking pool. They are
/// written with deferred durability; the plan, written after a `sync`, is their commit point.
const CONCURRENT_SCHEMA_PUTS: usize = 64;

/// Writes the schema files of the tables it takes from `queue` and plans their chunks.
async fn plan_tables_from(
    conn: &mut mysql_async::Conn,
    queue: &Mutex<VecDeque<(usize, TableInfo)>>,
    cfg: &DumpConfig,
    storage: &dyn Storage,
) -> Result<Vec<(usize, TablePlan)>, DumpError> {
    let mut out = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    loop {
        let next = queue.lock().map(|mut q| q.pop_front()).unwrap_or(None);
        let Some((index, info)) = next else {
            put_all(storage, &mut files).await?;
            return Ok(out);
        };
        let mut schema_file = None;
        if !cfg.no_schemas {
            let fname = format!("{}-schema.sql", info.file_base());
            files.push((fname.clone(), schema::table_schema(conn, &info).await?));
            schema_file = Some(fname);
            if cfg.triggers {
                if let Some(text) = schema::triggers_schema(conn, &info).await? {
                    files.push((format!("{}-schema-triggers.sql", info.file_base()), text));
                }
            }
            if files.len() >= CONCURRENT_SCHEMA_PUTS {
                put_all(storage, &mut files).await?;
            }
        }
        let chunks = if cfg.no_data {
            Vec::new()
        } else {
            chunk::plan_table(conn, &info, cfg.rows).await?
        };
        tracing::info!(table = %info.display(), chunks = chunks.len(), key = ?info.chunk_key, est_rows = info.est_rows, "planned");
        out.push((
            index,
            TablePlan {
                info,
                chunks,
                schema_file,
            },
        ));
    }
}

/// Writes `files` (name, text) together and empties the list.
async fn put_all(
    storage: &dyn Storage,
    files: &mut Vec<(String, String)>,
) -> Result<(), DumpError> {
    let objects = files
        .drain(..)
        .map(|(name, text)| (name, Bytes::from(text)))
        .collect();
    Ok(storage.put_many_deferred(objects).await?)
}
