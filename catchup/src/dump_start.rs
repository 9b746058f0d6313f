//! What catch-up takes from a ferry dump's manifest: where to start, which databases to
//! replicate, and per table the floor and the columns.
//!
//! A dump may have been read at several Locations (a resumed dump, `--consistency snapshot`):
//! catch-up starts at the earliest, and each table whose chunks were all read later gets a
//! *floor*, the earliest Location of its chunks: row changes of transactions that start
//! before it are in the dump already and are skipped (see [`crate::coordinator`]). The
//! columns are the schema tracker's start for binlogs without column names.
//!
//! Definite error: a dump without a binlog Location (the source had no binary log).

use ferry_shared::failure::{Class, Classify, Failure};
use ferry_shared::location::BinlogPos;
use ferry_shared::manifest::{Manifest, MANIFEST_NAME};
use ferry_shared::storage::S3Options;
use std::collections::HashMap;

/// The start of catch-up after a dump.
#[derive(Debug, Clone, PartialEq)]
pub struct DumpStart {
    /// The earliest Location of the dump.
    pub start: BinlogPos,
    /// The dump's databases (only those are replicated by default).
    pub schemas: Vec<String>,
    /// Per table (database, name): the earliest Location its chunks were read at, when later
    /// than `start`.
    pub table_floors: HashMap<(String, String), BinlogPos>,
    /// Per table: the source's column names as the dump read them.
    pub dump_columns: HashMap<(String, String), Vec<String>>,
}

impl DumpStart {
    /// Reads the manifest of the dump at `from` (a directory or `s3://bucket/prefix`); a
    /// storage failure keeps its class (a throttled S3 is transient, a denied one definite).
    pub async fn read(from: &str, s3: &S3Options) -> Result<Self, Failure> {
        let storage = ferry_shared::storage::open(from, s3).await.map_err(|e| {
            Failure::new(format!("opening the dump {from}"), e.to_string(), e.class())
        })?;
        let data = storage.read(MANIFEST_NAME).await.map_err(|e| {
            Failure::new("reading the dump's manifest", e.to_string(), e.class())
                .with_fix("catch-up starts from a ferry dump's manifest; or give --start-position")
        })?;
        let described = storage.describe(MANIFEST_NAME);
        let definite =
            |found: String| Failure::new("reading the dump's manifest", found, Class::Definite);
        let m = Manifest::from_json(&described, &data).map_err(|e| definite(e.to_string()))?;
        Self::from_manifest(&m, &described).map_err(definite)
    }

    /// Reads the start from manifest `m` (`described`: where it was read, for errors).
    pub fn from_manifest(m: &Manifest, described: &str) -> Result<Self, String> {
        let (earliest, _) = m.location_bounds().ok_or_else(|| {
            format!("{described}: the dump has no binlog Location (the source had no binary log)")
        })?;
        let mut table_floors = HashMap::new();
        let mut dump_columns = HashMap::new();
        for t in &m.tables {
            let key = (t.database.clone(), t.name.clone());
            dump_columns.insert(
                key.clone(),
                t.columns.iter().map(|c| c.name.clone()).collect(),
            );
            let lowest = t
                .chunks
                .iter()
                .filter_map(|c| c.location.and_then(|i| m.locations.get(i)))
                .map(|l| l.location.pos.clone())
                .reduce(|a, b| if b < a { b } else { a });
            if let Some(p) = lowest {
                if p > earliest.pos {
                    table_floors.insert(key, p);
                }
            }
        }
        Ok(DumpStart {
            start: earliest.pos.clone(),
            schemas: m.databases.iter().map(|d| d.name.clone()).collect(),
            table_floors,
            dump_columns,
        })
    }
}
