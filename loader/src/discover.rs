//! Finding what a dump holds: ferry dumps (with `ferry-manifest.json`), Dumpling and mydumper
//! layouts (file names only). Database and table names always come from file names
//! (percent-decoded), never from the CREATE text inside.

use crate::error::LoadError;
use crate::input::Compression;
use ferry_shared::filter::TableFilter;
use ferry_shared::ident::decode_file_name;
use ferry_shared::manifest::{Manifest, TableEntry, MANIFEST_NAME};
use ferry_shared::storage::{ObjectInfo, Storage};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    Sql,
    Csv,
    /// mydumper `--load-data`: delimited rows whose dialect and columns are in a companion
    /// `.sql` file holding a `LOAD DATA` statement.
    Dat,
}

#[derive(Debug, Clone)]
pub struct DataFile {
    pub name: String,
    /// Stored size (compressed).
    pub size: u64,
    pub kind: DataKind,
    /// Rows the manifest lists for this file.
    pub expected_rows: Option<u64>,
    /// For `.dat` files: the `.sql` file with their `LOAD DATA` statement.
    pub control: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TablePlan {
    pub db: String,
    pub name: String,
    pub schema_file: Option<String>,
    pub files: Vec<DataFile>,
    /// The manifest's entry (ferry dumps).
    pub manifest: Option<TableEntry>,
}

impl TablePlan {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

#[derive(Debug, Clone)]
pub struct ViewPlan {
    pub db: String,
    pub name: String,
    pub file: String,
}

#[derive(Debug, Clone, Default)]
pub struct DumpLayout {
    pub manifest: Option<Manifest>,
    /// Databases and their `-schema-create.sql` files.
    pub databases: BTreeMap<String, Option<String>>,
    pub tables: Vec<TablePlan>,
    pub views: Vec<ViewPlan>,
    /// `-schema-triggers.sql` and `-schema-post.sql` files, run after the data.
    pub post: Vec<(String, String)>,
    /// Format the files say they are in (`ferry`, `dumpling/mydumper`).
    pub format: &'static str,
}

/// What a file name says it is.
#[derive(Debug, PartialEq, Eq)]
enum Named {
    Database(String),
    Table(String, String),
    View(String, String),
    Post(String),
    Data(String, String, DataKind),
    Other,
}

fn decode(part: &str) -> String {
    decode_file_name(part).unwrap_or_else(|| part.to_string())
}

fn classify_name(name: &str) -> Named {
    // Only top-level files; sub-directories hold other things (Parquet, logs).
    if name.contains('/') {
        return Named::Other;
    }
    let (_, plain) = Compression::from_name(name);
    let lower = plain.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix("-schema-create.sql") {
        return Named::Database(decode(&plain[..stem.len()]));
    }
    for (suffix, view) in [("-schema-view.sql", true), ("-schema.sql", false)] {
        if let Some(stem) = lower.strip_suffix(suffix) {
            let stem = &plain[..stem.len()];
            return match stem.split_once('.') {
                Some((d, t)) if view => Named::View(decode(d), decode(t)),
                Some((d, t)) => Named::Table(decode(d), decode(t)),
                None => Named::Other,
            };
        }
    }
    if let Some(stem) = lower.strip_suffix("-schema-triggers.sql") {
        return match plain[..stem.len()].split_once('.') {
            Some((d, _)) => Named::Post(decode(d)),
            None => Named::Other,
        };
    }
    if let Some(stem) = lower.strip_suffix("-schema-post.sql") {
        return Named::Post(decode(&plain[..stem.len()]));
    }
    let (kind, stem_len) = if lower.ends_with(".sql") {
        (DataKind::Sql, plain.len() - 4)
    } else if lower.ends_with(".csv") {
        (DataKind::Csv, plain.len() - 4)
    } else if lower.ends_with(".dat") {
        (DataKind::Dat, plain.len() - 4)
    } else {
        return Named::Other;
    };
    let stem = &plain[..stem_len];
    let Some((db, rest)) = stem.split_once('.') else {
        return Named::Other;
    };
    // `db.tbl`, `db.tbl.000000001`, `db.tbl.0`, `db.tbl.00000.00001` (mydumper sub-chunks).
    let mut table = rest;
    while let Some((t, idx)) = table.rsplit_once('.') {
        if !idx.is_empty() && idx.bytes().all(|b| b.is_ascii_digit()) {
            table = t;
        } else {
            break;
        }
    }
    if db.is_empty() || table.is_empty() {
        return Named::Other;
    }
    Named::Data(decode(db), decode(table), kind)
}

/// Lists the dump at `storage` and plans what to load, keeping the tables `filter` accepts.
pub async fn discover(
    storage: &Arc<dyn Storage>,
    filter: &TableFilter,
) -> Result<DumpLayout, LoadError> {
    let objects = storage.list("").await?;
    let by_name: BTreeMap<&str, &ObjectInfo> =
        objects.iter().map(|o| (o.name.as_str(), o)).collect();
    if by_name.contains_key(MANIFEST_NAME) {
        let data = storage.read(MANIFEST_NAME).await?;
        let m = Manifest::from_json(&storage.describe(MANIFEST_NAME), &data)
            .map_err(|e| LoadError::Dump(e.to_string()))?;
        return from_manifest(storage, m, &by_name, filter);
    }
    let mut layout = DumpLayout {
        format: "dumpling/mydumper",
        ..Default::default()
    };
    let mut tables: BTreeMap<(String, String), TablePlan> = BTreeMap::new();
    let mut views: BTreeMap<(String, String), String> = BTreeMap::new();
    for o in &objects {
        match classify_name(&o.name) {
            Named::Database(d) => {
                if filter.matches_schema(&d) {
                    layout.databases.insert(d, Some(o.name.clone()));
                }
            }
            Named::Table(d, t) => {
                if filter.matches_table(&d, &t) {
                    table_entry(&mut tables, &d, &t).schema_file = Some(o.name.clone());
                }
            }
            Named::View(d, t) => {
                if filter.matches_table(&d, &t) {
                    views.insert((d, t), o.name.clone());
                }
            }
            Named::Post(d) => {
                if filter.matches_schema(&d) {
                    layout.post.push((d, o.name.clone()));
                }
            }
            Named::Data(d, t, kind) => {
                if filter.matches_table(&d, &t) {
                    table_entry(&mut tables, &d, &t).files.push(DataFile {
                        name: o.name.clone(),
                        size: o.size,
                        kind,
                        expected_rows: None,
                        control: None,
                    });
                }
            }
            Named::Other => {
                tracing::debug!(file = %o.name, "not a file of a known dump layout; ignored");
            }
        }
    }
    for ((d, t), file) in views {
        // A view's `-schema.sql` is a placeholder table: the view replaces it.
        tables.remove(&(d.clone(), t.clone()));
        layout.databases.entry(d.clone()).or_insert(None);
        layout.views.push(ViewPlan {
            db: d,
            name: t,
            file,
        });
    }
    for ((d, _), mut plan) in tables {
        pair_load_data_files(&mut plan);
        layout.databases.entry(d).or_insert(None);
        layout.tables.push(plan);
    }
    Ok(layout)
}

/// Gives each `.dat` file its `LOAD DATA` control file (`x.dat[.gz]` ↔ `x.sql[.gz]`), which is
/// then not a data file of its own.
fn pair_load_data_files(plan: &mut TablePlan) {
    let stem = |name: &str| -> String {
        let (_, plain) = Compression::from_name(name);
        plain[..plain.len().saturating_sub(4)].to_string()
    };
    let dat_stems: Vec<(usize, String)> = plan
        .files
        .iter()
        .enumerate()
        .filter(|(_, f)| f.kind == DataKind::Dat)
        .map(|(i, f)| (i, stem(&f.name)))
        .collect();
    let mut controls = Vec::new();
    for (i, st) in dat_stems {
        if let Some(c) = plan
            .files
            .iter()
            .position(|f| f.kind == DataKind::Sql && stem(&f.name) == st)
        {
            plan.files[i].control = Some(plan.files[c].name.clone());
            controls.push(c);
        }
    }
    controls.sort_unstable();
    for c in controls.into_iter().rev() {
        plan.files.remove(c);
    }
}

fn table_entry<'a>(
    tables: &'a mut BTreeMap<(String, String), TablePlan>,
    d: &str,
    t: &str,
) -> &'a mut TablePlan {
    tables
        .entry((d.to_string(), t.to_string()))
        .or_insert_with(|| TablePlan {
            db: d.to_string(),
            name: t.to_string(),
            schema_file: None,
            files: Vec::new(),
            manifest: None,
        })
}

fn from_manifest(
    storage: &Arc<dyn Storage>,
    m: Manifest,
    objects: &BTreeMap<&str, &ObjectInfo>,
    filter: &TableFilter,
) -> Result<DumpLayout, LoadError> {
    let mut layout = DumpLayout {
        format: "ferry",
        ..Default::default()
    };
    if let Some(problem) = m.output.csv.as_ref().and_then(|d| d.read_problem()) {
        return Err(LoadError::Dump(format!(
            "{}: {problem}: dump again with a --csv-delimiter of one character or ''",
            storage.describe(MANIFEST_NAME)
        )));
    }
    let kind = if m.output.filetype == "csv" {
        DataKind::Csv
    } else {
        DataKind::Sql
    };
    let mut problems = Vec::new();
    for t in &m.tables {
        if !filter.matches_table(&t.database, &t.name) {
            continue;
        }
        let mut files = Vec::new();
        for c in &t.chunks {
            for f in &c.files {
                match objects.get(f.name.as_str()) {
                    None => problems.push(format!(
                        "{}: listed in the manifest for `{}`.`{}` but missing",
                        storage.describe(&f.name),
                        t.database,
                        t.name
                    )),
                    Some(o) if o.size != f.bytes => problems.push(format!(
                        "{}: {} bytes, the manifest says {}: the file was changed or cut short",
                        storage.describe(&f.name),
                        o.size,
                        f.bytes
                    )),
                    Some(o) => files.push(DataFile {
                        name: f.name.clone(),
                        size: o.size,
                        kind,
                        expected_rows: Some(f.rows),
                        control: None,
                    }),
                }
            }
        }
        layout.tables.push(TablePlan {
            db: t.database.clone(),
            name: t.name.clone(),
            schema_file: t.schema_file.clone(),
            files,
            manifest: Some(t.clone()),
        });
    }
    if let Some(s) = t_schema_missing(&layout, objects, storage) {
        problems.push(s);
    }
    if !problems.is_empty() {
        let n = problems.len();
        problems.truncate(10);
        return Err(LoadError::Dump(format!(
            "the dump at {} is incomplete ({n} problem{}):\n  {}",
            storage.describe(""),
            if n == 1 { "" } else { "s" },
            problems.join("\n  ")
        )));
    }
    for d in &m.databases {
        if filter.matches_schema(&d.name) {
            layout
                .databases
                .insert(d.name.clone(), d.schema_file.clone());
        }
    }
    for v in &m.views {
        if filter.matches_table(&v.database, &v.name) {
            layout.views.push(ViewPlan {
                db: v.database.clone(),
                name: v.name.clone(),
                file: v.schema_file.clone(),
            });
        }
    }
    for o in objects.values() {
        if let Named::Post(d) = classify_name(&o.name) {
            if filter.matches_schema(&d) {
                layout.post.push((d, o.name.clone()));
            }
        }
    }
    layout.manifest = Some(m);
    Ok(layout)
}

fn t_schema_missing(
    layout: &DumpLayout,
    objects: &BTreeMap<&str, &ObjectInfo>,
    storage: &Arc<dyn Storage>,
) -> Option<String> {
    layout.tables.iter().find_map(|t| {
        let f = t.schema_file.as_ref()?;
        (!objects.contains_key(f.as_str())).then(|| {
            format!(
                "{}: schema file of `{}`.`{}` listed in the manifest but missing",
                storage.describe(f),
                t.db,
                t.name
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            classify_name("shop-schema-create.sql"),
            Named::Database("shop".into())
        );
        assert_eq!(
            classify_name("shop.orders-schema.sql.zst"),
            Named::Table("shop".into(), "orders".into())
        );
        assert_eq!(
            classify_name("shop.v1-schema-view.sql"),
            Named::View("shop".into(), "v1".into())
        );
        assert_eq!(
            classify_name("shop.orders.000000001.sql.gz"),
            Named::Data("shop".into(), "orders".into(), DataKind::Sql)
        );
        assert_eq!(
            classify_name("csv.threads.CSV"),
            Named::Data("csv".into(), "threads".into(), DataKind::Csv)
        );
        assert_eq!(
            classify_name("sbtest.sbtest1.00000.sql"),
            Named::Data("sbtest".into(), "sbtest1".into(), DataKind::Sql)
        );
        assert_eq!(
            classify_name("a%2Eb.c%60d.0.csv"),
            Named::Data("a.b".into(), "c`d".into(), DataKind::Csv)
        );
        assert_eq!(
            classify_name("db.t.00000.dat.gz"),
            Named::Data("db".into(), "t".into(), DataKind::Dat)
        );
        assert_eq!(classify_name("metadata"), Named::Other);
        assert_eq!(classify_name("x/y.z.sql"), Named::Other);
    }
}
