//! `ferry dump`: a consistent, parallel snapshot of a MySQL-protocol server to a local directory
//! or S3.
//!
//! The run, and what makes it resumable:
//! 1. Connect, discover tables through the filter, write schema files.
//! 2. Plan chunks (see [`chunk`]) and persist the plan as `.ferry-dump/plan.json` together with a
//!    fingerprint of the options. A re-run with the same options reuses this plan; other options
//!    are refused rather than mixing two dumps.
//! 3. Open N snapshot workers at one consistent point (see [`consistency`]).
//! 4. Workers take chunks from a shared queue and stream them to files. When a chunk's files are
//!    complete, a marker `.ferry-dump/done/<table>.<chunk>.json` records its files, rows, checksum
//!    and the Location of the snapshot it was read at. A chunk without a marker is redone from
//!    scratch on the next run (its leftover files are deleted first), so nothing is duplicated.
//! 5. When every chunk has a marker: write `metadata` and, last, `ferry-manifest.json`; remove the
//!    state directory. A killed and resumed dump reads its remaining chunks at a new consistent
//!    point, so its manifest lists several Locations.
//!
//! This file only declares the modules and re-exports the API the binary uses: the config
//! (`config.rs`), [`run`] (`run.rs`) and its summary (`summary.rs`). The plan is in `plan.rs`,
//! the completion markers in `markers.rs`, the workers that read chunks in `worker.rs`, and
//! the final `metadata` and manifest in `manifest.rs`.

pub mod chunk;
mod config;
pub mod consistency;
pub mod dataconn;
pub mod encode;
pub mod error;
mod manifest;
mod markers;
mod plan;
mod run;
pub mod schema;
mod summary;
mod worker;
pub mod writer;

pub use config::{DumpConfig, FileType};
pub use error::DumpError;
pub use run::run;
pub use summary::DumpSummary;
