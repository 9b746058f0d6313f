//! `ferry catchup`: binlog replication from the dump's Location to cutover.
//!
//! Built bottom-up: [`binlog`] frames events (from a file or a stream) and checks their
//! checksums; [`value`] decodes the packed column formats of row images.

pub mod binlog;
pub mod events;
pub mod rows;
pub mod value;
