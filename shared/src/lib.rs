//! Pieces shared by ferry's steps: positions, storage, manifest, CSV dialect, table filters,
//! connections, checksums and the progress counters the steps fill (the binary draws them).

pub mod checksum;
pub mod conformance;
pub mod conn;
pub mod csv;
pub mod failure;
pub mod filter;
pub mod ident;
pub mod introspect;
pub mod location;
pub mod manifest;
pub mod meta;
pub mod progress;
pub mod storage;
pub mod wire;

pub use location::{BinlogPos, Flavor, GtidSet, Location};
