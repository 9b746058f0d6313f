//! From framed events to changes: the one decode path that both the binlog stream and the
//! binlog-file reader use.
//!
//! A [`Decoder`] keeps what later events need from earlier ones: the table maps by table id
//! and the format. TRANSACTION_PAYLOAD events are decompressed and their inner events decoded
//! in place, so a compressed transaction yields the same changes as a plain one.

use crate::binlog::{self, BinlogError, Event, EventHeader, Format};
use crate::events;
use crate::rows::{self, RowsEvent, TableMap};
use std::collections::HashMap;
use std::sync::Arc;

/// One thing that happened on the source, in binlog order.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Format(Format),
    /// The stream continues in `file` at `pos`. `artificial`: the server's fake ROTATE at the
    /// start of a stream, whose name can carry stray trailing bytes (mysql_async issue 189).
    Rotate {
        file: String,
        pos: u64,
        artificial: bool,
    },
    /// A transaction's GTID: MySQL `uuid:gno` (`uuid:tag:gno` when tagged) or MariaDB
    /// `domain-server-seq`.
    Gtid(String),
    /// MariaDB's binlog state at the start of a file.
    GtidList(String),
    /// A statement (DDL, `BEGIN`, `COMMIT` of non-transactional changes).
    Query {
        db: String,
        sql: Vec<u8>,
        /// The statement's `@@sql_mode` bits and `character_set_client` (collation id),
        /// when the event records them.
        sql_mode: Option<u64>,
        charset_client: Option<u16>,
    },
    Rows {
        table: Arc<TableMap>,
        event: RowsEvent,
    },
    /// The end of a transaction (XID event).
    Commit {
        xid: u64,
    },
    /// An event that changes nothing ferry applies (heartbeats, checkpoints, previous GTIDs).
    Other(&'static str),
}

#[derive(Debug, Default)]
pub struct Decoder {
    maps: HashMap<u64, Arc<TableMap>>,
    /// The source is MariaDB (from the FORMAT_DESCRIPTION's server version, or from the
    /// MariaDB-only events seen).
    mariadb: bool,
}

fn malformed(h: &EventHeader, offset: u64, what: String) -> BinlogError {
    BinlogError::Malformed {
        offset,
        event: binlog::type_name(h.type_code),
        what,
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::default()
    }

    /// The server version of the FORMAT_DESCRIPTION event that starts each binlog file.
    pub fn set_server_version(&mut self, version: &str) {
        self.mariadb = version.contains("MariaDB");
    }

    /// Decodes one framed event (its body without the CRC trailer).
    pub fn event(&mut self, ev: &Event<'_>) -> Result<Vec<Change>, BinlogError> {
        let mut out = Vec::new();
        self.decode(&ev.header, ev.body, ev.offset, &mut out, 0)?;
        Ok(out)
    }

    fn decode(
        &mut self,
        h: &EventHeader,
        body: &[u8],
        offset: u64,
        out: &mut Vec<Change>,
        depth: u8,
    ) -> Result<(), BinlogError> {
        let bad = |what: String| malformed(h, offset, what);
        match h.type_code {
            4 => {
                let (pos, file) = events::rotate(body).map_err(bad)?;
                out.push(Change::Rotate {
                    file,
                    pos,
                    // LOG_EVENT_ARTIFICIAL_F
                    artificial: h.flags & 0x20 != 0,
                });
            }
            2 | 165 => {
                let q = events::query_any(h.type_code, body).map_err(bad)?;
                out.push(Change::Query {
                    db: q.db,
                    sql: q.sql,
                    sql_mode: q.sql_mode,
                    charset_client: q.charset_client,
                });
            }
            16 => out.push(Change::Commit {
                xid: events::xid(body).map_err(bad)?,
            }),
            19 => {
                let tm = rows::parse_table_map(body, self.mariadb).map_err(bad)?;
                self.maps.insert(tm.table_id, Arc::new(tm));
            }
            33 | 34 => {
                let g = events::MysqlGtid::parse(body).map_err(bad)?;
                out.push(Change::Gtid(g.gtid()));
            }
            42 => {
                let g = events::MysqlGtid::parse_tagged(body).map_err(bad)?;
                out.push(Change::Gtid(g.gtid()));
            }
            162 => {
                let g = events::MariadbGtid::parse(body).map_err(bad)?;
                out.push(Change::Gtid(g.gtid(h.server_id)));
            }
            163 => out.push(Change::GtidList(
                events::mariadb_gtid_list(body).map_err(bad)?,
            )),
            40 => {
                if depth > 0 {
                    return Err(bad("a payload inside a payload".into()));
                }
                let inner = events::transaction_payload(body).map_err(bad)?;
                for (_, bytes) in events::inner_events(&inner).map_err(bad)? {
                    let ih = EventHeader::parse(bytes).ok_or_else(|| bad("inner header".into()))?;
                    self.decode(&ih, &bytes[binlog::HEADER_LEN..], offset, out, depth + 1)?;
                }
            }
            t if rows::rows_kind(t).is_some() => {
                let id = rows::rows_table_id(body).ok_or_else(|| bad("no table id".into()))?;
                let table =
                    self.maps.get(&id).cloned().ok_or_else(|| {
                        bad(format!("rows for table id {id} without its TABLE_MAP"))
                    })?;
                let event = rows::parse_rows(t, body, &table).map_err(bad)?;
                out.push(Change::Rows { table, event });
            }
            // Row changes ferry cannot decode must stop catch-up, never be skipped.
            20..=22 => {
                return Err(bad(
                    "pre-GA row events (MySQL 5.1.0-5.1.15) are not supported".into(),
                ))
            }
            t => out.push(Change::Other(binlog::type_name(t))),
        }
        Ok(())
    }
}

/// Decodes a whole binlog file's bytes (the binlog-file reader mode).
pub fn decode_file(data: &[u8]) -> Result<Vec<Change>, BinlogError> {
    let mut reader = binlog::FileReader::new(data)?;
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    while let Some(ev) = reader.next() {
        let ev = ev?;
        if ev.header.type_code == 15 {
            if let Some(f) = reader.format() {
                dec.set_server_version(&f.server_version);
                out.push(Change::Format(f.clone()));
            }
            continue;
        }
        out.extend(dec.event(&ev)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::rows::Cell;

    fn dir() -> std::path::PathBuf {
        ferry_shared::conformance::shared_root().join("conformance/binlog")
    }

    fn oracle_text(file: &str) -> String {
        std::fs::read_to_string(
            dir()
                .join("decoded_by_mysql_common_0.37.3")
                .join(format!("{file}.txt")),
        )
        .unwrap()
    }

    /// Row images per file as the independent decoder printed them (`before=` lines).
    fn oracle_rows(file: &str) -> usize {
        oracle_text(file)
            .lines()
            .map(|l| l.trim_start().trim_start_matches("[payload] "))
            .filter(|t| t.starts_with("before="))
            .count()
    }

    #[test]
    fn every_fixture_decodes_to_the_oracles_row_count() {
        ferry_shared::conformance_or_skip!();
        let summary: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir().join("SUMMARY.json")).unwrap()).unwrap();
        for entry in summary.as_array().unwrap() {
            let file = entry["file"].as_str().unwrap();
            let data = std::fs::read(dir().join("rust_mysql_common").join(file)).unwrap();
            let changes = decode_file(&data).unwrap_or_else(|e| panic!("{file}: {e}"));
            let rows: usize = changes
                .iter()
                .map(|c| match c {
                    Change::Rows { event, .. } => event.rows.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(rows, oracle_rows(file), "{file}");
            let gtids = changes
                .iter()
                .filter(|c| matches!(c, Change::Gtid(_)))
                .count() as u64;
            let t = &entry["event_types"];
            let expected = t["GTID"].as_u64().unwrap_or(0)
                + t["ANONYMOUS_GTID"].as_u64().unwrap_or(0)
                + t["GTID_TAGGED"].as_u64().unwrap_or(0)
                + t["MARIA_GTID"].as_u64().unwrap_or(0);
            assert_eq!(gtids, expected, "{file}");
        }
    }

    #[test]
    fn compressed_transactions_decode_like_plain_ones() {
        ferry_shared::conformance_or_skip!();
        let data =
            std::fs::read(dir().join("rust_mysql_common/transaction_compression.000001")).unwrap();
        let changes = decode_file(&data).unwrap();
        let rows: Vec<&Change> = changes
            .iter()
            .filter(|c| matches!(c, Change::Rows { .. }))
            .collect();
        assert_eq!(rows.len(), 1);
        if let Change::Rows { table, event } = rows[0] {
            assert_eq!((table.db.as_str(), table.table.as_str()), ("test", "tb1"));
            assert_eq!(
                event.rows[0].1.as_ref().unwrap()[0],
                Some(crate::rows::Cell::Int(1))
            );
        }
        assert!(changes.contains(&Change::Commit { xid: 462 }));
    }

    #[test]
    fn mariadb_gtids_use_the_header_server_id() {
        ferry_shared::conformance_or_skip!();
        let data = std::fs::read(dir().join("rust_mysql_common/mariadb-bin.000001")).unwrap();
        let changes = decode_file(&data).unwrap();
        let gtids: Vec<&String> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Gtid(g) => Some(g),
                _ => None,
            })
            .collect();
        assert!(!gtids.is_empty());
        for g in gtids {
            assert_eq!(g.split('-').count(), 3, "{g}");
        }
        assert!(changes.iter().any(|c| matches!(c, Change::GtidList(_))));
    }

    /// MySQL 9.6 GTID_TAGGED (type 42): the transaction's GTID is `uuid:tag:gno`.
    #[test]
    fn tagged_gtids_decode_to_uuid_tag_gno() {
        ferry_shared::conformance_or_skip!();
        let data =
            std::fs::read(dir().join("rust_mysql_common/binlog_transaction_with_GTID_TAG.000001"))
                .unwrap();
        let changes = decode_file(&data).unwrap();
        let gtids: Vec<&Change> = changes
            .iter()
            .filter(|c| matches!(c, Change::Gtid(_)))
            .collect();
        assert_eq!(
            gtids,
            [&Change::Gtid(
                "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3".into()
            )]
        );
        assert!(!changes.contains(&Change::Other("GTID_TAGGED")));
    }

    /// A GTID_TAGGED event cut at every byte is an error; with any byte overwritten it is an
    /// error or a GTID, never a panic.
    #[test]
    fn cut_or_corrupt_tagged_gtids_fail_cleanly() {
        ferry_shared::conformance_or_skip!();
        let data =
            std::fs::read(dir().join("rust_mysql_common/binlog_transaction_with_GTID_TAG.000001"))
                .unwrap();
        let ev = binlog::FileReader::new(&data)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.header.type_code == 42)
            .unwrap();
        let mut dec = Decoder::new();
        assert!(matches!(&dec.event(&ev).unwrap()[..], [Change::Gtid(_)]));
        for cut in 0..ev.body.len() {
            let cut_ev = Event {
                body: &ev.body[..cut],
                ..ev.clone()
            };
            match dec.event(&cut_ev) {
                Err(BinlogError::Malformed { event, .. }) => assert_eq!(event, "GTID_TAGGED"),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        for at in 0..ev.body.len() {
            for x in [0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff] {
                let mut body = ev.body.to_vec();
                body[at] = x;
                match dec.event(&Event {
                    body: &body,
                    ..ev.clone()
                }) {
                    Ok(changes) => assert!(matches!(&changes[..], [Change::Gtid(_)])),
                    Err(BinlogError::Malformed { .. }) => {}
                    Err(other) => panic!("byte {at} = {x:#x}: {other}"),
                }
            }
        }
    }

    /// Splits `a, b(c, d), "e, f"` at its top-level commas.
    fn top_level(s: &str) -> Vec<String> {
        let (mut out, mut cur, mut depth, mut quoted, mut escaped) =
            (Vec::new(), String::new(), 0, false, false);
        for ch in s.chars() {
            match ch {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                '(' | '[' | '{' if !quoted => depth += 1,
                ')' | ']' | '}' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    out.push(cur.trim().to_string());
                    cur.clear();
                    continue;
                }
                _ => {}
            }
            cur.push(ch);
        }
        if !cur.trim().is_empty() {
            out.push(cur.trim().to_string());
        }
        out
    }

    fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
        let from = s.find(open).unwrap() + open.len();
        let to = s[from..].find(close).unwrap();
        &s[from..from + to]
    }

    /// Checks one of our cells against the oracle's rendering of it (the forms
    /// json.binlog.000001 holds).
    fn assert_cell(ours: &Cell, col: &crate::rows::Column, oracle: &str) {
        use crate::jsondiff::JsonDiffOp;
        let json = |t: &str| -> serde_json::Value {
            serde_json::from_str(t).unwrap_or_else(|e| panic!("{t}: {e}"))
        };
        match ours {
            Cell::Int(v) => assert_eq!(format!("Int({v})"), oracle),
            Cell::Bytes(b) if col.type_code == crate::rows::ty::JSON => {
                let text = oracle.strip_prefix("JSON ").expect(oracle);
                assert_eq!(json(&crate::json::to_text(b).unwrap()), json(text));
            }
            Cell::Bytes(b) => {
                assert_eq!(format!("Bytes({:?})", String::from_utf8_lossy(b)), oracle)
            }
            Cell::JsonDiff(diffs) => {
                let list = oracle.strip_prefix("JSONDIFF [").expect(oracle);
                let list = list.strip_suffix(']').unwrap();
                let theirs = top_level(list);
                assert_eq!(diffs.len(), theirs.len(), "{oracle}");
                for (d, t) in diffs.iter().zip(&theirs) {
                    assert_eq!(d.path, between(t, "value: \"", "\""), "{t}");
                    let op = match d.op {
                        JsonDiffOp::Replace => "REPLACE",
                        JsonDiffOp::Insert => "INSERT",
                        JsonDiffOp::Remove => "REMOVE",
                    };
                    assert_eq!(op, between(t, "operation: Const(", ","), "{t}");
                    match &d.value {
                        None => assert!(t.contains("value: None"), "{t}"),
                        Some(v) => {
                            let at = t.rfind("value: Some(").unwrap() + "value: Some(".len();
                            let end = t.rfind(')').unwrap();
                            assert_eq!(json(v), json(&t[at..end]), "{t}");
                        }
                    }
                }
            }
            other => panic!("the oracle comparison does not know {other:?} ({oracle})"),
        }
    }

    /// json.binlog.000001 decodes to the independent decoder's values: JSON documents, a full
    /// update, then PARTIAL_UPDATE_ROWS rows whose before image holds only the key and whose
    /// after image holds a JSON diff (`REPLACE $.age`) and the generated columns.
    #[test]
    fn json_partial_updates_decode_to_the_oracles_values() {
        ferry_shared::conformance_or_skip!();
        let file = "json.binlog.000001";
        let data = std::fs::read(dir().join("rust_mysql_common").join(file)).unwrap();
        let ours: Vec<(Arc<TableMap>, Option<crate::rows::Image>)> = decode_file(&data)
            .unwrap()
            .into_iter()
            .flat_map(|c| match c {
                Change::Rows { table, event } => event
                    .rows
                    .into_iter()
                    .flat_map(|(b, a)| [(table.clone(), b), (table.clone(), a)])
                    .collect(),
                _ => Vec::new(),
            })
            .collect();
        let text = oracle_text(file);
        let theirs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("before="))
            .flat_map(|l| {
                let (b, a) = l.split_once(" after=").unwrap();
                [b, a]
            })
            .collect();
        assert_eq!(ours.len(), theirs.len());
        let mut diffs = 0;
        for ((tm, image), oracle) in ours.iter().zip(&theirs) {
            let Some(image) = image else {
                assert_eq!(*oracle, "-");
                continue;
            };
            let list = oracle.strip_prefix('[').unwrap().strip_suffix(']').unwrap();
            let cells: Vec<(&Cell, &crate::rows::Column)> = image
                .iter()
                .zip(&tm.columns)
                .filter_map(|(c, col)| c.as_ref().map(|c| (c, col)))
                .collect();
            let oracle_cells = top_level(list);
            assert_eq!(cells.len(), oracle_cells.len(), "{oracle}");
            for ((cell, col), o) in cells.into_iter().zip(&oracle_cells) {
                diffs += usize::from(matches!(cell, Cell::JsonDiff(_)));
                assert_cell(cell, col, o);
            }
        }
        assert_eq!(diffs, 6);
    }

    /// A PARTIAL_UPDATE_ROWS event cut at every byte, or with any byte overwritten, is an error
    /// or decodes to a prefix of its rows (a cut at a row boundary): never a panic.
    #[test]
    fn cut_or_corrupt_partial_updates_fail_cleanly() {
        ferry_shared::conformance_or_skip!();
        let data = std::fs::read(dir().join("rust_mysql_common/json.binlog.000001")).unwrap();
        let mut dec = Decoder::new();
        let mut partial = None;
        for ev in binlog::FileReader::new(&data).unwrap() {
            let ev = ev.unwrap();
            if ev.header.type_code == rows::PARTIAL_UPDATE_ROWS {
                partial = Some(ev);
                break;
            }
            if ev.header.type_code != 15 {
                dec.event(&ev).unwrap();
            }
        }
        let ev = partial.unwrap();
        let full = match &dec.event(&ev).unwrap()[..] {
            [Change::Rows { event, .. }] => event.rows.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(full.len(), 6);
        for cut in 0..ev.body.len() {
            let cut_ev = Event {
                body: &ev.body[..cut],
                ..ev.clone()
            };
            match dec.event(&cut_ev) {
                Err(_) => {}
                Ok(changes) => match &changes[..] {
                    [Change::Rows { event, .. }] => {
                        assert!(event.rows.len() < full.len(), "cut at {cut}");
                        assert_eq!(event.rows[..], full[..event.rows.len()], "cut at {cut}");
                    }
                    other => panic!("cut at {cut}: {other:?}"),
                },
            }
        }
        for at in 0..ev.body.len() {
            for x in [0x00, 0x7f, 0xff] {
                let mut body = ev.body.to_vec();
                body[at] = x;
                let _ = dec.event(&Event {
                    body: &body,
                    ..ev.clone()
                });
            }
        }
    }
}
