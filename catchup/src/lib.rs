//! `ferry catchup`: binlog replication from the dump's Location to cutover.
//!
//! Built bottom-up: [`binlog`] frames events (from a file or a stream) and checks their
//! checksums; [`events`] reads position and transaction events (GTIDs, ROTATE, QUERY, XID,
//! compressed payloads); [`rows`] decodes TABLE_MAP and row images, using [`value`] for packed
//! temporal and decimal columns, [`json`] for MySQL's binary JSON and [`jsondiff`] for the JSON
//! diffs of partial updates; [`apply`] turns the changes into statements for the target.
//! [`locate`] turns a GTID set or a time into a start position and holds the `--until` bounds.

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
mod progress;
pub mod route;
pub mod rows;
pub mod run;
mod schema_tracker;
pub mod source;
pub mod value;
