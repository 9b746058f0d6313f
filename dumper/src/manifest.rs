//! The dump's last writes: Dumpling's `metadata` text and `ferry-manifest.json`, built from
//! the plan and the chunks' completion markers. The manifest is written last: its presence
//! means "dump complete"; then the run's state files are removed.

use crate::config::{DumpConfig, FileType};
use crate::error::DumpError;
use crate::markers::ChunkDone;
use crate::plan::{DumpPlan, STATE_DIR};
use bytes::Bytes;
use ferry_shared::checksum;
use ferry_shared::manifest::*;
use ferry_shared::storage::Storage;
use std::collections::BTreeMap;

/// `metadata` and the manifest (written last: its presence means "dump complete"), then the
/// run's state files are removed.
pub(crate) async fn write_outputs(
    storage: &dyn Storage,
    plan: &DumpPlan,
    manifest: &Manifest,
) -> Result<(), DumpError> {
    storage
        .put("metadata", Bytes::from(metadata_text(plan, manifest)))
        .await?;
    storage
        .put(MANIFEST_NAME, Bytes::from(manifest.to_json()))
        .await?;
    let state_files = storage.list(&format!("{STATE_DIR}/")).await?;
    for part in state_files.chunks(64) {
        futures::future::join_all(part.iter().map(|obj| storage.delete(&obj.name))).await;
    }
    Ok(())
}

/// `point_without_chunks`: the Location of a dump that read no chunk (its only Location).
pub(crate) fn build_manifest(
    plan: &DumpPlan,
    done: &BTreeMap<(usize, u32), ChunkDone>,
    point_without_chunks: Option<DumpLocation>,
    cfg: &DumpConfig,
    strategy: &str,
) -> Result<Manifest, DumpError> {
    let mut locations: Vec<DumpLocation> = Vec::new();
    let mut tables = Vec::new();
    let mut totals = Totals::default();
    for (ti, tp) in plan.tables.iter().enumerate() {
        let mut chunks = Vec::new();
        let (mut rows, mut bytes) = (0u64, 0u64);
        let mut sum = Some("0".to_string());
        for c in &tp.chunks {
            let d = done.get(&(ti, c.index)).ok_or_else(|| {
                DumpError::Definite(format!(
                    "internal: chunk {} of {} has no completion record",
                    c.index,
                    tp.info.display()
                ))
            })?;
            let loc_index = d.location.as_ref().map(|l| {
                locations
                    .iter()
                    .position(|x| &x.location == l)
                    .unwrap_or_else(|| {
                        locations.push(DumpLocation {
                            location: l.clone(),
                            taken_at: d.taken_at.clone(),
                        });
                        locations.len() - 1
                    })
            });
            rows += d.rows;
            let fbytes: u64 = d.files.iter().map(|f| f.bytes).sum();
            bytes += fbytes;
            totals.files += d.files.len() as u64;
            sum = match (&sum, &d.checksum) {
                (Some(s), Some(cs)) => checksum::add_sums(s, &cs.sum),
                _ => None,
            };
            chunks.push(ChunkEntry {
                index: c.index,
                lower: c.lower.clone(),
                upper: c.upper.clone(),
                location: loc_index,
                rows: d.rows,
                files: d.files.clone(),
                checksum: d.checksum.clone(),
            });
        }
        totals.rows += rows;
        totals.bytes += bytes;
        let data_cols: Vec<String> = tp.info.data_columns().map(|c| c.name.clone()).collect();
        tables.push(TableEntry {
            database: tp.info.db.clone(),
            name: tp.info.name.clone(),
            schema_file: tp.schema_file.clone(),
            columns: tp
                .info
                .columns
                .iter()
                .map(|c| ColumnEntry {
                    name: c.name.clone(),
                    column_type: c.column_type.clone(),
                    nullable: c.nullable,
                    generated: c.generated,
                })
                .collect(),
            chunk_key: tp.info.chunk_key.clone(),
            rows,
            bytes,
            chunks,
            checksum: if cfg.checksum && !cfg.no_data {
                sum.map(|s| TableChecksum {
                    algorithm: checksum::ALGORITHM.to_string(),
                    row_expression: checksum::row_expression(&data_cols),
                    rows,
                    sum: s,
                })
            } else {
                None
            },
        });
    }
    totals.tables = tables.len() as u64;
    if locations.is_empty() {
        locations.extend(point_without_chunks);
    }
    Ok(Manifest {
        format: "ferry-dump".into(),
        version: MANIFEST_VERSION,
        tool: format!("ferry {}", env!("CARGO_PKG_VERSION")),
        started_at: plan.started_at.clone(),
        finished_at: chrono::Local::now().format("%Y-%m-%d %H:%M:%S").to_string(),
        source: plan.server.clone(),
        consistency: strategy.to_string(),
        locations,
        output: OutputFormat {
            filetype: match cfg.filetype {
                FileType::Sql => "sql".into(),
                FileType::Csv => "csv".into(),
            },
            compression: cfg.compression.name().into(),
            csv: (cfg.filetype == FileType::Csv).then(|| cfg.csv.clone()),
            charset: "binary".into(),
            time_zone: "+00:00".into(),
            escape_backslash: cfg.sql.escape_backslash,
        },
        databases: plan.databases.clone(),
        tables,
        views: plan.views.clone(),
        totals,
    })
}

/// Dumpling's `metadata` text. With several Locations (a resumed dump) the earliest is shown:
/// it is where replication must start.
fn metadata_text(plan: &DumpPlan, m: &Manifest) -> String {
    let mut s = format!("Started dump at: {}\n", plan.started_at);
    if let Some((earliest, _)) = m.location_bounds() {
        s.push_str("SHOW MASTER STATUS:\n");
        s.push_str(&format!(
            "\tLog: {}\n\tPos: {}\n\tGTID:{}\n",
            earliest.pos.file,
            earliest.pos.pos,
            earliest
                .gtid
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default()
        ));
    }
    s.push('\n');
    s.push_str(&format!("Finished dump at: {}\n", m.finished_at));
    s
}
