//! `ferry-manifest.json`: the machine-readable description of a complete dump.
//!
//! Written last: its presence means every file it lists is complete. Versioned; readers accept
//! any version up to [`MANIFEST_VERSION`] and refuse newer ones with a clear message.

use crate::conn::ServerInfo;
use crate::csv::CsvDialect;
use crate::location::Location;
use serde::{Deserialize, Serialize};

pub const MANIFEST_NAME: &str = "ferry-manifest.json";
pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{location}: not a ferry manifest: {source}")]
    Parse {
        location: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{location}: manifest version {found} is newer than this ferry understands ({MANIFEST_VERSION}); upgrade ferry")]
    TooNew { location: String, found: u32 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always `"ferry-dump"`.
    pub format: String,
    pub version: u32,
    /// The ferry build that wrote it.
    pub tool: String,
    pub started_at: String,
    pub finished_at: String,
    pub source: ServerInfo,
    /// How the consistent point was taken (`backup-stage`, `flush`, `lock`, `snapshot`, `none`).
    pub consistency: String,
    /// Every Location a chunk was read at; chunks refer to them by index. One for a dump that ran
    /// once; several for a resumed dump or `--consistency snapshot`.
    pub locations: Vec<DumpLocation>,
    pub output: OutputFormat,
    pub databases: Vec<DatabaseEntry>,
    pub tables: Vec<TableEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub views: Vec<ViewEntry>,
    pub totals: Totals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DumpLocation {
    pub location: Location,
    /// When the snapshot was opened (UTC, RFC 3339).
    pub taken_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputFormat {
    /// `sql` or `csv`.
    pub filetype: String,
    /// `none`, `zstd` or `gzip`.
    pub compression: String,
    /// The CSV dialect the data files were written in (`filetype` `csv`); the loader reads
    /// them with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv: Option<CsvDialect>,
    /// Character set of the data bytes (`binary`: the bytes as stored).
    pub charset: String,
    /// Session time zone used to print TIMESTAMP values.
    pub time_zone: String,
    /// SQL files escape with backslashes (false: quotes doubled only, backslashes are data;
    /// read them under NO_BACKSLASH_ESCAPES).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub escape_backslash: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnEntry {
    pub name: String,
    /// `COLUMN_TYPE` as the server reports it, e.g. `decimal(65,30) unsigned`.
    pub column_type: String,
    pub nullable: bool,
    /// Generated columns are not in the data files.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub database: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_file: Option<String>,
    pub columns: Vec<ColumnEntry>,
    /// Columns the chunks are ranged by (empty: the table is one chunk).
    pub chunk_key: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
    pub chunks: Vec<ChunkEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<TableChecksum>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkEntry {
    pub index: u32,
    /// Inclusive lower bound of the chunk key (SQL literals), absent for the first chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lower: Option<Vec<String>>,
    /// Exclusive upper bound, absent for the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<Vec<String>>,
    /// Index into `Manifest::locations` of the snapshot this chunk was read at (absent when the
    /// source has no binary log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<usize>,
    pub rows: u64,
    pub files: Vec<FileEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<ChunkChecksum>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    /// Bytes as stored (after compression).
    pub bytes: u64,
    pub rows: u64,
}

/// Checksum of a chunk's rows as computed by the source inside the chunk's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkChecksum {
    pub rows: u64,
    /// Sum of per-row CRC32s, decimal.
    pub sum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableChecksum {
    /// Name of the checksum algorithm; see [`crate::checksum`].
    pub algorithm: String,
    /// The SQL expression summed per row; run `SELECT COUNT(*), SUM(<expr>) FROM t` on the
    /// target to compare.
    pub row_expression: String,
    pub rows: u64,
    pub sum: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewEntry {
    pub database: String,
    pub name: String,
    pub schema_file: String,
    pub placeholder_file: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Totals {
    pub tables: u64,
    pub rows: u64,
    pub bytes: u64,
    pub files: u64,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).unwrap_or_default();
        v.push(b'\n');
        v
    }

    pub fn from_json(location: &str, data: &[u8]) -> Result<Self, ManifestError> {
        #[derive(Deserialize)]
        struct Peek {
            version: u32,
        }
        if let Ok(p) = serde_json::from_slice::<Peek>(data) {
            if p.version > MANIFEST_VERSION {
                return Err(ManifestError::TooNew {
                    location: location.to_string(),
                    found: p.version,
                });
            }
        }
        serde_json::from_slice(data).map_err(|source| ManifestError::Parse {
            location: location.to_string(),
            source,
        })
    }

    /// The earliest and latest Locations (equal for a single-snapshot dump).
    pub fn location_bounds(&self) -> Option<(&Location, &Location)> {
        let mut it = self.locations.iter().map(|l| &l.location);
        let first = it.next()?;
        let (mut lo, mut hi) = (first, first);
        for l in it {
            if l.partial_cmp(lo) == Some(std::cmp::Ordering::Less) {
                lo = l;
            }
            if l.partial_cmp(hi) == Some(std::cmp::Ordering::Greater) {
                hi = l;
            }
        }
        Some((lo, hi))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-1 manifest as written by ferry 0.1; must keep parsing.
    const V1: &str = r#"{
  "format": "ferry-dump",
  "version": 1,
  "tool": "ferry 0.1.0",
  "started_at": "2026-11-23T18:00:00Z",
  "finished_at": "2026-11-23T18:00:05Z",
  "source": {"flavor": "mariadb", "version": "10.11.19-MariaDB", "numeric": [10, 11, 19]},
  "consistency": "backup-stage",
  "locations": [{"location": {"pos": {"file": "bin.000002", "pos": 342}, "gtid": {"flavor": "mariadb", "set": "0-1-12"}}, "taken_at": "2026-11-23T18:00:00Z"}],
  "output": {"filetype": "sql", "compression": "zstd", "charset": "binary", "time_zone": "+00:00"},
  "databases": [{"name": "shop", "schema_file": "shop-schema-create.sql"}],
  "tables": [{
    "database": "shop", "name": "orders", "schema_file": "shop.orders-schema.sql",
    "columns": [{"name": "id", "column_type": "bigint(20)", "nullable": false}],
    "chunk_key": ["id"], "rows": 3, "bytes": 120,
    "chunks": [{"index": 0, "upper": ["100"], "location": 0, "rows": 3,
                "files": [{"name": "shop.orders.000000000.sql.zst", "bytes": 120, "rows": 3}]}],
    "checksum": {"algorithm": "ferry-crc32-sum-v1", "row_expression": "CRC32(1)", "rows": 3, "sum": "99"}
  }],
  "totals": {"tables": 1, "rows": 3, "bytes": 120, "files": 1}
}"#;

    #[test]
    fn pinned_v1_parses_and_roundtrips() {
        let m = Manifest::from_json("test", V1.as_bytes()).unwrap();
        assert_eq!(m.tables[0].chunks[0].files[0].rows, 3);
        let again = Manifest::from_json("test", &m.to_json()).unwrap();
        assert_eq!(again, m);
        let (lo, hi) = m.location_bounds().unwrap();
        assert_eq!(lo, hi);
    }

    /// The CSV dialect of a version-1 CSV dump, as ferry 0.1 wrote it.
    #[test]
    fn pinned_v1_csv_dialect_parses_and_roundtrips() {
        let csv = V1.replace(
            r#""output": {"filetype": "sql","#,
            r#""output": {"filetype": "csv", "csv": {"separator": ",", "delimiter": "\"", "null_value": "\\N", "header": true, "escape_backslash": true, "line_terminator": "\n"},"#,
        );
        let m = Manifest::from_json("test", csv.as_bytes()).unwrap();
        let d = m.output.csv.clone().unwrap();
        assert_eq!(
            (
                d.separator.as_str(),
                d.delimiter.as_str(),
                d.null_value.as_str()
            ),
            (",", "\"", "\\N")
        );
        assert!(d.header && d.escape_backslash && d.line_terminator == "\n");
        assert_eq!(Manifest::from_json("test", &m.to_json()).unwrap(), m);
    }

    #[test]
    fn newer_versions_are_refused() {
        let newer = V1.replace("\"version\": 1", "\"version\": 99");
        let err = Manifest::from_json("x/ferry-manifest.json", newer.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("upgrade ferry"));
    }
}
