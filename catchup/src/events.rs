//! Bodies of the events that carry positions and transactions: MySQL GTID and
//! PREVIOUS_GTIDS (tagged and untagged), MariaDB GTID and GTID_LIST, ROTATE, QUERY, XID, and
//! TRANSACTION_PAYLOAD (compressed transactions). mysql_common hands some of these back as
//! unknown events; ferry parses them itself. Malformed bodies are errors, never panics.

use crate::cursor::Cursor;

/// A MySQL GTID event (types 33 and 34).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlGtid {
    pub flags: u8,
    pub sid: [u8; 16],
    pub gno: u64,
    pub last_committed: Option<u64>,
    pub sequence_number: Option<u64>,
    pub immediate_commit_timestamp: Option<u64>,
    pub original_commit_timestamp: Option<u64>,
    pub transaction_length: Option<u64>,
    pub immediate_server_version: Option<u32>,
    pub original_server_version: Option<u32>,
}

/// A MariaDB GTID event (type 162); the server id is in the event header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MariadbGtid {
    pub seq_no: u64,
    pub domain_id: u32,
    pub flags: u8,
    pub commit_id: Option<u64>,
}

pub fn uuid_text(sid: &[u8]) -> String {
    let h = hex::encode(sid);
    if h.len() != 32 {
        return h;
    }
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

impl MysqlGtid {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut c = Cursor::new(body);
        let flags = c.le(1)? as u8;
        let mut sid = [0u8; 16];
        sid.copy_from_slice(c.take(16)?);
        let gno = c.le(8)?;
        let mut g = MysqlGtid {
            flags,
            sid,
            gno,
            last_committed: None,
            sequence_number: None,
            immediate_commit_timestamp: None,
            original_commit_timestamp: None,
            transaction_length: None,
            immediate_server_version: None,
            original_server_version: None,
        };
        if c.left() >= 17 && c.le(1)? == 2 {
            g.last_committed = Some(c.le(8)?);
            g.sequence_number = Some(c.le(8)?);
        }
        if c.left() >= 7 {
            let ts = c.le(7)?;
            let has_original = ts & (1 << 55) != 0;
            let immediate = ts & !(1 << 55);
            g.immediate_commit_timestamp = Some(immediate);
            g.original_commit_timestamp = Some(if has_original { c.le(7)? } else { immediate });
            if c.left() > 0 {
                g.transaction_length = Some(c.lenenc()?);
            }
            if c.left() >= 4 {
                let v = c.le(4)? as u32;
                let has_original = v & (1 << 31) != 0;
                let immediate = v & !(1 << 31);
                g.immediate_server_version = Some(immediate);
                g.original_server_version = Some(if has_original {
                    c.le(4)? as u32
                } else {
                    immediate
                });
            }
        }
        Ok(g)
    }

    pub fn gtid(&self) -> String {
        format!("{}:{}", uuid_text(&self.sid), self.gno)
    }
}

impl MariadbGtid {
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut c = Cursor::new(body);
        let seq_no = c.le(8)?;
        let domain_id = c.le(4)? as u32;
        let flags = c.le(1)? as u8;
        // FL_GROUP_COMMIT_ID
        let commit_id = if flags & 2 != 0 { Some(c.le(8)?) } else { None };
        Ok(MariadbGtid {
            seq_no,
            domain_id,
            flags,
            commit_id,
        })
    }

    pub fn gtid(&self, server_id: u32) -> String {
        format!("{}-{}-{}", self.domain_id, server_id, self.seq_no)
    }
}

/// MariaDB GTID_LIST (type 163): the binlog state as `domain-server-seq,...`.
pub fn mariadb_gtid_list(body: &[u8]) -> Result<String, String> {
    let mut c = Cursor::new(body);
    let count = (c.le(4)? & 0x0fff_ffff) as usize;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let d = c.le(4)?;
        let s = c.le(4)?;
        let q = c.le(8)?;
        out.push(format!("{d}-{s}-{q}"));
    }
    Ok(out.join(","))
}

/// A tag (empty: untagged) and its `[start, end)` intervals.
type TaggedIntervals = (String, Vec<(u64, u64)>);

/// MySQL PREVIOUS_GTIDS (type 35), both the classic and the tagged (8.3+) encodings, as a
/// GTID set text: `uuid:1-3:tag:1,uuid2:5`.
pub fn previous_gtids(body: &[u8]) -> Result<String, String> {
    let mut c = Cursor::new(body);
    let head = c.take(8)?;
    let tagged = head[7] == 1 && head[0] == 1;
    let n_sids = if tagged {
        head[1..7]
            .iter()
            .rev()
            .fold(0u64, |a, x| (a << 8) | u64::from(*x))
    } else {
        head.iter()
            .rev()
            .fold(0u64, |a, x| (a << 8) | u64::from(*x))
    };
    if n_sids > (body.len() as u64) {
        return Err(format!("{n_sids} SIDs cannot fit in {} bytes", body.len()));
    }
    // uuid -> [(tag, intervals)] in order of appearance.
    let mut groups: Vec<(String, Vec<TaggedIntervals>)> = Vec::new();
    for _ in 0..n_sids {
        let uuid = uuid_text(c.take(16)?);
        let tag = if tagged {
            let len = (c.le(1)? >> 1) as usize;
            String::from_utf8_lossy(c.take(len)?).into_owned()
        } else {
            String::new()
        };
        let n = c.le(8)?;
        if n > (body.len() as u64) {
            return Err(format!("{n} intervals cannot fit in {} bytes", body.len()));
        }
        let mut iv = Vec::new();
        for _ in 0..n {
            iv.push((c.le(8)?, c.le(8)?));
        }
        match groups.iter_mut().find(|(u, _)| *u == uuid) {
            Some((_, tags)) => tags.push((tag, iv)),
            None => groups.push((uuid, vec![(tag, iv)])),
        }
    }
    let fmt_iv = |iv: &[(u64, u64)]| -> String {
        iv.iter()
            .map(|(a, b)| {
                if b.saturating_sub(1) == *a {
                    a.to_string()
                } else {
                    format!("{a}-{}", b.saturating_sub(1))
                }
            })
            .collect::<Vec<_>>()
            .join(":")
    };
    Ok(groups
        .into_iter()
        .map(|(uuid, tags)| {
            let mut s = uuid;
            for (tag, iv) in tags {
                s.push(':');
                if !tag.is_empty() {
                    s.push_str(&tag);
                    s.push(':');
                }
                s.push_str(&fmt_iv(&iv));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// ROTATE (type 4): the next file's position and name. The first, fake ROTATE of a stream may
/// carry trailing bytes after the name (mysql_async issue 189): callers must not trust it blindly.
pub fn rotate(body: &[u8]) -> Result<(u64, String), String> {
    let mut c = Cursor::new(body);
    let pos = c.le(8)?;
    let name = c.take(c.left())?;
    Ok((pos, String::from_utf8_lossy(name).into_owned()))
}

/// QUERY (type 2) and MariaDB's QUERY_COMPRESSED (165): the default schema and the text.
pub fn query_any(type_code: u8, body: &[u8]) -> Result<Query, String> {
    let mut q = query(body)?;
    if type_code == 165 {
        q.sql = crate::rows::mariadb_uncompress(&q.sql)?;
    }
    Ok(q)
}

/// A QUERY event: the default schema, the statement, and the session state it ran with
/// (when the status block carries it).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub db: String,
    pub sql: Vec<u8>,
    /// `@@sql_mode` as the server's bit set.
    pub sql_mode: Option<u64>,
    /// The statement's `character_set_client` (a collation id).
    pub charset_client: Option<u16>,
}

/// QUERY (type 2): the default schema and the statement text.
pub fn query(body: &[u8]) -> Result<Query, String> {
    let mut c = Cursor::new(body);
    let _thread = c.le(4)?;
    let _exec_time = c.le(4)?;
    let db_len = c.le(1)? as usize;
    let _error = c.le(2)?;
    let status_len = c.le(2)? as usize;
    let (sql_mode, charset_client) = status_vars(c.take(status_len)?);
    let db = String::from_utf8_lossy(c.take(db_len)?).into_owned();
    c.take(1)?;
    Ok(Query {
        db,
        sql: c.take(c.left())?.to_vec(),
        sql_mode,
        charset_client,
    })
}

/// `sql_mode` and `character_set_client` from a QUERY's status variables. The walk stops at
/// a code it does not know (each has its own length), keeping what it found before.
fn status_vars(b: &[u8]) -> (Option<u64>, Option<u16>) {
    let mut c = Cursor::new(b);
    let (mut mode, mut charset) = (None, None);
    while let Ok(code) = c.u8() {
        let step: Result<(), String> = (|| {
            match code {
                0 | 10 => {
                    c.take(4)?;
                }
                1 => mode = Some(c.le(8)?),
                2 => {
                    let n = c.u8()? as usize;
                    c.take(n + 1)?;
                }
                3 => {
                    c.take(4)?;
                }
                4 => {
                    charset = Some(c.le(2)? as u16);
                    c.take(4)?;
                }
                5 | 6 => {
                    let n = c.u8()? as usize;
                    c.take(n)?;
                }
                7 | 8 | 18 => {
                    c.take(2)?;
                }
                9 | 17 | 129 => {
                    c.take(8)?;
                }
                11 => {
                    for _ in 0..2 {
                        let n = c.u8()? as usize;
                        c.take(n)?;
                    }
                }
                12 => {
                    let n = c.u8()?;
                    if n != 254 {
                        for _ in 0..n {
                            while c.u8()? != 0 {}
                        }
                    }
                }
                13 | 128 => {
                    c.take(3)?;
                }
                16 | 19 | 20 | 130 => {
                    c.take(1)?;
                }
                _ => return Err(String::new()),
            }
            Ok(())
        })();
        if step.is_err() {
            break;
        }
    }
    (mode, charset)
}

/// XID (type 16).
pub fn xid(body: &[u8]) -> Result<u64, String> {
    Cursor::new(body).le(8)
}

/// A TRANSACTION_PAYLOAD (type 40): the inner events' bytes, decompressed.
pub fn transaction_payload(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut c = Cursor::new(body);
    let (mut compression, mut size, mut uncompressed) = (None, None, None);
    loop {
        let field = c.lenenc()?;
        if field == 0 {
            break;
        }
        let len = c.lenenc()? as usize;
        let mut v = Cursor::new(c.take(len)?);
        match field {
            1 => size = Some(v.lenenc()?),
            2 => compression = Some(v.lenenc()?),
            3 => uncompressed = Some(v.lenenc()?),
            _ => {}
        }
    }
    let payload = c.take(c.left())?;
    if let Some(s) = size {
        if s as usize != payload.len() {
            return Err(format!(
                "payload is {} bytes, its header says {s}",
                payload.len()
            ));
        }
    }
    decompress_payload(payload, compression.unwrap_or(0), uncompressed)
}

/// Decompresses a payload (`compression` 0 = zstd, 255 = none).
pub fn decompress_payload(
    payload: &[u8],
    compression: u64,
    uncompressed: Option<u64>,
) -> Result<Vec<u8>, String> {
    let out = match compression {
        0 => zstd::decode_all(payload).map_err(|e| format!("zstd: {e}"))?,
        255 => payload.to_vec(),
        other => return Err(format!("unknown payload compression {other}")),
    };
    if let Some(u) = uncompressed {
        if u as usize != out.len() {
            return Err(format!(
                "payload decompressed to {} bytes, its header says {u}",
                out.len()
            ));
        }
    }
    Ok(out)
}

/// Splits decompressed payload bytes into inner events: (type code, whole event bytes).
pub fn inner_events(mut data: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let h = crate::binlog::EventHeader::parse(data)
            .ok_or_else(|| "an inner event header is cut short".to_string())?;
        let size = h.event_size as usize;
        if size < crate::binlog::HEADER_LEN || size > data.len() {
            return Err(format!(
                "inner event of {size} bytes in {} left",
                data.len()
            ));
        }
        out.push((h.type_code, &data[..size]));
        data = &data[size..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vectors() -> serde_json::Value {
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/conformance/binlog/vectors/go-mysql-vectors.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    #[test]
    fn mysql_gtid_bodies() {
        for c in vectors()["gtid_event_body"].as_array().unwrap() {
            let g = MysqlGtid::parse(&bytes(&c["hex"])).unwrap();
            assert_eq!(g.gtid(), c["expectGTID"].as_str().unwrap());
            assert_eq!(g.last_committed, c["expectLastCommitted"].as_u64());
            assert_eq!(g.sequence_number, c["expectSequenceNumber"].as_u64());
            let zero_none = |v: Option<u64>| v.unwrap_or(0);
            assert_eq!(
                zero_none(g.immediate_commit_timestamp),
                c["expectImmediateCommitTimestamp"].as_u64().unwrap(),
                "{c}"
            );
            assert_eq!(
                zero_none(g.transaction_length),
                c["expectTransactionLength"].as_u64().unwrap(),
                "{c}"
            );
            assert_eq!(
                u64::from(g.immediate_server_version.unwrap_or(0)),
                c["expectImmediateServerVersion"].as_u64().unwrap(),
                "{c}"
            );
        }
    }

    #[test]
    fn mariadb_gtid_and_gtid_list() {
        let v = vectors();
        let c = &v["mariadb_gtid_event_body"][0];
        let g = MariadbGtid::parse(&bytes(&c["hex"])).unwrap();
        assert_eq!(g.seq_no, c["expected"]["seq_no"].as_u64().unwrap());
        assert_eq!(
            u64::from(g.domain_id),
            c["expected"]["domain_id"].as_u64().unwrap()
        );
        assert_eq!(g.commit_id, c["expected"]["commit_id"].as_u64());
        assert_eq!(g.gtid(0), c["expected"]["gtid_string"].as_str().unwrap());
        for c in v["mariadb_gtid_list_event_body"].as_array().unwrap() {
            assert_eq!(
                mariadb_gtid_list(&bytes(&c["hex"])).unwrap(),
                c["expected"].as_str().unwrap()
            );
        }
    }

    #[test]
    fn previous_gtids_tagged_and_not() {
        for c in vectors()["previous_gtids_event_body"].as_array().unwrap() {
            let got = previous_gtids(&bytes(&c["hex"])).unwrap();
            let want = c["expected"].as_str().unwrap();
            assert_eq!(got, want);
        }
        assert!(previous_gtids(&[5, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn compressed_transaction_payload() {
        let v = vectors();
        let c = &v["transaction_payload_zstd"][0];
        let raw = bytes(&c["payload_hex"]);
        let out = decompress_payload(&raw, 0, None).unwrap();
        assert_eq!(
            out.len() as u64,
            c["actual_uncompressed_bytes"].as_u64().unwrap()
        );
        let types: Vec<&str> = inner_events(&out)
            .unwrap()
            .iter()
            .map(|(t, _)| crate::binlog::type_name(*t))
            .collect();
        let want: Vec<&str> = c["expected_inner_event_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert_eq!(types, want);
        // From the fixture file: QUERY, TABLE_MAP, WRITE_ROWS, XID inside one payload.
        let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(
            "../../shared/conformance/binlog/rust_mysql_common/transaction_compression.000001",
        );
        let data = std::fs::read(p).unwrap();
        let ev = crate::binlog::FileReader::new(&data)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.header.type_code == 40)
            .unwrap();
        let out = transaction_payload(ev.body).unwrap();
        let types: Vec<&str> = inner_events(&out)
            .unwrap()
            .iter()
            .map(|(t, _)| crate::binlog::type_name(*t))
            .collect();
        assert_eq!(types, ["QUERY", "TABLE_MAP", "WRITE_ROWS_V2", "XID"]);
        assert!(transaction_payload(&ev.body[..ev.body.len() - 3]).is_err());
    }
}
