//! `ferry load`: parallel, resumable, verifiable import of a dump into a MySQL-protocol target.
//!
//! The run, in order:
//! 1. Discover the dump's files ([`discover`]) and check the target (precheck report).
//! 2. Under the task's setup lock, create databases and tables, defer indexes, and register
//!    every data file in `ferry_meta` ([`checkpoint`]).
//! 3. Claim files one by one (several processes may share a task); split each into chunks at
//!    row boundaries ([`split`]); workers transcode chunks to `LOAD DATA` streams
//!    ([`transcode`]) and commit each chunk together with its checkpoint row ([`worker`]).
//! 4. When a table's last file is done: restore deferred indexes, rebase AUTO_INCREMENT.
//! 5. Views, triggers and routines; then verify row counts and checksums against the dump.
//!
//! This file only declares the modules and re-exports the API the binary uses: the config
//! (`config.rs`), [`run`] (`run.rs`) and its summary (`summary.rs`). What the steps of a run
//! share is in `context.rs`; views and post statements in `views.rs`.

pub mod checkpoint;
mod config;
mod context;
pub mod discover;
pub mod error;
pub mod input;
mod run;
pub mod scan;
pub mod schema;
mod setup;
pub mod split;
pub mod sql;
mod summary;
pub mod transcode;
mod verify;
mod views;
mod worker;

pub use config::{DefinerPolicy, LoadConfig, MethodChoice, OnDuplicate, OnExisting};
pub use run::run;
pub use summary::{LoadSummary, TableCheck};
