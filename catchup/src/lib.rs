//! `ferry catchup`: binlog replication from the dump's Location to cutover.
//!
//! Reading, built bottom-up: [`binlog`] frames events (from a file or a stream) and checks
//! their checksums; [`events`] reads position and transaction events (GTIDs, ROTATE, QUERY,
//! XID, compressed payloads); [`rows`] decodes TABLE_MAP and row images, using [`value`] for
//! packed temporal and decimal columns, [`json`] for MySQL's binary JSON and [`jsondiff`] for
//! the JSON diffs of partial updates; [`decode`] turns events into changes and [`source`]
//! streams them from the source (its `open` sets up every replica connection, also for
//! [`locate`], which turns a GTID set or a time into a start position and holds the `--until`
//! bounds). [`dump_start`] reads the start, databases, table floors and columns from a dump.
//!
//! Applying: [`run`] wires one attempt and retries it from the checkpoints. The coordinator
//! (`coordinator.rs`) decides, without I/O, what each change means: transactions, groups,
//! idle commits, DDL barriers, per-worker resume skips, table floors, `--until`. The wiring
//! executes its actions: rows are described by the schema tracker (`schema_tracker.rs`),
//! turned into statements by [`apply`], routed to workers by key ([`route`]) and batched and
//! applied by the worker pool (`pool.rs`); checkpoints (`checkpoint.rs`) and the DDL barrier
//! (`ddl.rs`) keep the target exact across crashes. [`precheck`] checks the source first;
//! [`progress`] measures the progress reports the binary draws; [`error`] splits errors into definite and transient.

pub mod apply;
pub mod binlog;
mod checkpoint;
mod coordinator;
mod cursor;
mod ddl;
pub mod decode;
pub mod dump_start;
pub mod error;
pub mod events;
pub mod json;
pub mod jsondiff;
pub mod locate;
mod pool;
pub mod precheck;
pub mod progress;
pub mod route;
pub mod rows;
pub mod run;
mod schema_tracker;
pub mod source;
pub mod value;
