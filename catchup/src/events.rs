//! Bodies of the events that carry positions and transactions: MySQL GTID and
//! PREVIOUS_GTIDS (tagged and untagged), MariaDB GTID and GTID_LIST, ROTATE, QUERY, XID, and
//! TRANSACTION_PAYLOAD (compressed transactions). mysql_common hands some of these back as
//! unknown events; ferry parses them itself. Malformed bodies are errors, never panics.

use crate::cursor::Cursor;

/// A MySQL GTID event (types 33 and 34, and the tagged type 42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MysqlGtid {
    pub flags: u8,
    pub sid: [u8; 16],
    /// The tag of a tagged GTID (type 42, MySQL 8.4+); never empty.
    pub tag: Option<String>,
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
    /// A GTID with only its identity known (the optional fields unset).
    fn new(flags: u8, sid: [u8; 16], gno: u64) -> Self {
        MysqlGtid {
            flags,
            sid,
            tag: None,
            gno,
            last_committed: None,
            sequence_number: None,
            immediate_commit_timestamp: None,
            original_commit_timestamp: None,
            transaction_length: None,
            immediate_server_version: None,
            original_server_version: None,
        }
    }

    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let mut c = Cursor::new(body);
        let flags = c.le(1)? as u8;
        let mut sid = [0u8; 16];
        sid.copy_from_slice(c.take(16)?);
        let gno = c.le(8)?;
        let mut g = MysqlGtid::new(flags, sid, gno);
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

    /// GTID_TAGGED (type 42, MySQL 8.4+). The body is a message of MySQL's serialization
    /// library (`libs/mysql/serialization`), not the fixed layout of type 33:
    ///
    /// ```text
    /// format version   varlen, 1
    /// message size     varlen, in bytes from the start of the body (version included)
    /// last needed id   varlen, 1 + the id of the last field a reader must understand
    /// fields           { field id varlen, value }, ids increasing, optional ones left out
    /// ```
    ///
    /// The fields (`Gtid_event::define_fields` in `control_events.h`): 0 flags, 1 UUID
    /// (16 varlen bytes), 2 gno (signed), 3 tag (varlen length + bytes, at most 32),
    /// 4 last_committed (signed), 5 sequence_number (signed), 6 immediate commit timestamp,
    /// 7 original commit timestamp (absent: the immediate one), 8 transaction length,
    /// 9 immediate server version, 10 original server version (absent: the immediate one),
    /// 11 commit group ticket. Fields after 11 are newer than this reader: they are skipped
    /// when the message says they may be, an error otherwise.
    pub fn parse_tagged(body: &[u8]) -> Result<Self, String> {
        let mut c = Cursor::new(body);
        let version = varlen(&mut c)?;
        if version != 1 {
            return Err(format!(
                "serialization format version {version}, this reader knows version 1"
            ));
        }
        let size = varlen(&mut c)?;
        let needed = varlen(&mut c)?;
        let header = body.len() - c.left();
        let size = usize::try_from(size)
            .ok()
            .filter(|s| (header..=body.len()).contains(s))
            .ok_or_else(|| {
                format!(
                    "message size {size} outside the {header}..={} bytes the body allows",
                    body.len()
                )
            })?;
        if needed > 12 {
            return Err(format!(
                "field {} must be understood, this reader knows fields 0 to 11",
                needed - 1
            ));
        }
        let mut f = Cursor::new(&body[header..size]);
        let mut g = MysqlGtid::new(0, [0; 16], 0);
        let (mut has_sid, mut has_tag) = (false, false);
        let mut previous: Option<u64> = None;
        while f.left() > 0 {
            let id = varlen(&mut f)?;
            if let Some(p) = previous.filter(|p| id <= *p) {
                return Err(format!("field {id} after field {p}"));
            }
            previous = Some(id);
            match id {
                0 => g.flags = varlen_narrow(&mut f, "flags", u8::MAX.into())? as u8,
                1 => {
                    for b in g.sid.iter_mut() {
                        *b = varlen_narrow(&mut f, "a UUID byte", u8::MAX.into())? as u8;
                    }
                    has_sid = true;
                }
                2 => {
                    let gno = varlen_signed(&mut f)?;
                    g.gno = u64::try_from(gno)
                        .ok()
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| format!("gno {gno}, a GTID's is 1 or more"))?;
                }
                3 => {
                    g.tag = tag(&mut f)?;
                    has_tag = true;
                }
                4 => g.last_committed = Some(varlen_unsigned(&mut f, "last_committed")?),
                5 => g.sequence_number = Some(varlen_unsigned(&mut f, "sequence_number")?),
                6 => g.immediate_commit_timestamp = Some(varlen(&mut f)?),
                7 => g.original_commit_timestamp = Some(varlen(&mut f)?),
                8 => g.transaction_length = Some(varlen(&mut f)?),
                9 => {
                    g.immediate_server_version =
                        Some(varlen_narrow(&mut f, "server version", u32::MAX.into())? as u32)
                }
                10 => {
                    g.original_server_version =
                        Some(varlen_narrow(&mut f, "server version", u32::MAX.into())? as u32)
                }
                11 => {
                    varlen(&mut f)?; // commit group ticket
                }
                // A newer, ignorable field: its size is unknown, so the rest of the message
                // is skipped (as MySQL does).
                _ => break,
            }
        }
        // MySQL always writes these three; without them there is no GTID.
        if !has_sid {
            return Err("no UUID field".into());
        }
        if !has_tag {
            return Err("no tag field".into());
        }
        if g.gno == 0 {
            return Err("no gno field".into());
        }
        g.original_commit_timestamp = g.original_commit_timestamp.or(g.immediate_commit_timestamp);
        g.original_server_version = g.original_server_version.or(g.immediate_server_version);
        Ok(g)
    }

    /// `uuid:gno`, or `uuid:tag:gno` for a tagged GTID (the form MySQL prints).
    pub fn gtid(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}:{tag}:{}", uuid_text(&self.sid), self.gno),
            None => format!("{}:{}", uuid_text(&self.sid), self.gno),
        }
    }
}

/// An unsigned variable-length integer of MySQL's serialization library: the first byte's
/// trailing one bits say how many bytes follow (0 to 8); the value fills the bits after the
/// terminating zero bit, little-endian. Nine bytes (first byte 0xff) hold all 64 bits in
/// the last eight.
fn varlen(c: &mut Cursor<'_>) -> Result<u64, String> {
    let first = c.u8()?;
    let len = first.trailing_ones() as usize + 1;
    if len == 1 {
        return Ok(u64::from(first >> 1));
    }
    let rest = c
        .take(len - 1)?
        .iter()
        .rev()
        .fold(0u64, |a, x| (a << 8) | u64::from(*x));
    Ok(if len == 9 {
        rest
    } else {
        (u64::from(first) >> len) | (rest << (8 - len))
    })
}

/// A signed variable-length integer: the sign in the lowest bit, then the magnitude (minus
/// one when negative).
fn varlen_signed(c: &mut Cursor<'_>) -> Result<i64, String> {
    let v = varlen(c)?;
    Ok(((v >> 1) ^ 0u64.wrapping_sub(v & 1)) as i64)
}

/// A signed field that a valid event never makes negative.
fn varlen_unsigned(c: &mut Cursor<'_>, what: &str) -> Result<u64, String> {
    let v = varlen_signed(c)?;
    u64::try_from(v).map_err(|_| format!("{what} is {v}, below 0"))
}

/// A variable-length integer of a narrower type than 64 bits.
fn varlen_narrow(c: &mut Cursor<'_>, what: &str, max: u64) -> Result<u64, String> {
    let v = varlen(c)?;
    if v > max {
        return Err(format!("{what} is {v}, more than its type's {max}"));
    }
    Ok(v)
}

/// A GTID tag: up to 32 letters, digits and underscores, not starting with a digit.
/// Empty means untagged.
fn tag(c: &mut Cursor<'_>) -> Result<Option<String>, String> {
    let len = varlen(c)?;
    if len > 32 {
        return Err(format!("a tag of {len} bytes, at most 32 are allowed"));
    }
    let bytes = c.take(len as usize)?;
    let well_formed = bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
        && !bytes.first().is_some_and(u8::is_ascii_digit);
    if !well_formed {
        return Err(format!(
            "tag {:?}: a tag is letters, digits and underscores, not starting with a digit",
            String::from_utf8_lossy(bytes)
        ));
    }
    Ok((!bytes.is_empty()).then(|| String::from_utf8_lossy(bytes).into_owned()))
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
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/vectors/go-mysql-vectors.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    fn bytes(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    #[test]
    fn mysql_gtid_bodies() {
        ferry_shared::conformance_or_skip!();
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

    /// MySQL's `write_varlen_bytes_unsigned`, to test the reader against.
    fn write_varlen(v: u64) -> Vec<u8> {
        let bits = 64 - v.leading_zeros() as usize;
        let len = ((bits * 575) >> 12) + 1;
        let first = ((1u16 << (len - 1)) - 1) as u8 | (v << len) as u8;
        let rest = v >> (8 + ((len + 7) >> 4) - len);
        let mut out = vec![first];
        out.extend_from_slice(&rest.to_le_bytes()[..len - 1]);
        out
    }

    #[test]
    fn varlen_integers() {
        // The examples of MySQL's serialization readme (there written big-endian).
        let read = |b: &[u8]| varlen(&mut Cursor::new(b)).unwrap();
        let read_signed = |b: &[u8]| varlen_signed(&mut Cursor::new(b)).unwrap();
        assert_eq!(read(&[0xfb, 0xff, 0x07]), 65535);
        assert_eq!(read_signed(&[0xf3, 0xff, 0x0f]), 65535);
        assert_eq!(read_signed(&[0xeb, 0xff, 0x0f]), -65535);
        assert_eq!(read_signed(&[0xfb, 0xff, 0x0f]), -65536);
        assert_eq!(read(&[0xff; 9]), u64::MAX);
        for shift in 0..64 {
            for v in [1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1] {
                let bytes = write_varlen(v);
                let mut c = Cursor::new(&bytes);
                assert_eq!(varlen(&mut c).unwrap(), v, "{bytes:02x?}");
                assert_eq!(c.left(), 0, "{v}");
                assert!(varlen(&mut Cursor::new(&bytes[..bytes.len() - 1])).is_err());
            }
        }
        for v in [0i64, 1, -1, 63, -64, i64::MAX, i64::MIN] {
            let zigzag = ((v << 1) ^ (v >> 63)) as u64;
            let bytes = write_varlen(zigzag);
            assert_eq!(varlen_signed(&mut Cursor::new(&bytes)).unwrap(), v);
        }
    }

    fn tagged_fixture_body() -> Vec<u8> {
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common/binlog_transaction_with_GTID_TAG.000001");
        let data = std::fs::read(p).unwrap();
        crate::binlog::FileReader::new(&data)
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.header.type_code == 42)
            .unwrap()
            .body
            .to_vec()
    }

    /// Every field of the MySQL 9.6 fixture, as mysql_common 0.37.3 decoded it.
    #[test]
    fn mysql_tagged_gtid_body() {
        ferry_shared::conformance_or_skip!();
        let g = MysqlGtid::parse_tagged(&tagged_fixture_body()).unwrap();
        assert_eq!(g.gtid(), "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3");
        assert_eq!(g.tag.as_deref(), Some("mytag"));
        assert_eq!((g.flags, g.gno), (0, 3));
        assert_eq!((g.last_committed, g.sequence_number), (Some(0), Some(1)));
        assert_eq!(g.immediate_commit_timestamp, Some(1_770_368_687_207_196));
        assert_eq!(g.original_commit_timestamp, g.immediate_commit_timestamp);
        assert_eq!(g.transaction_length, Some(296));
        assert_eq!(g.immediate_server_version, Some(90600));
        assert_eq!(g.original_server_version, Some(90600));
    }

    /// Hand-built messages: optional fields left out, a newer ignorable field, and the
    /// malformed cases a reader must refuse.
    #[test]
    fn mysql_tagged_gtid_messages() {
        // fields: (id, encoded value)
        let message = |needed: u64, fields: &[(u64, Vec<u8>)]| -> Vec<u8> {
            let mut body: Vec<u8> = Vec::new();
            for (id, v) in fields {
                body.extend(write_varlen(*id));
                body.extend(v);
            }
            let mut head = write_varlen(1);
            head.extend(write_varlen(needed));
            // The size counts itself: one byte while the message stays under 128 bytes.
            let size = head.len() + 1 + body.len();
            let mut out = write_varlen(1);
            out.extend(write_varlen(size as u64));
            out.extend(write_varlen(needed));
            out.extend(body);
            out
        };
        let uuid: Vec<u8> = (1..=16u64).flat_map(write_varlen).collect();
        let tag = |t: &str| {
            let mut v = write_varlen(t.len() as u64);
            v.extend(t.as_bytes());
            v
        };
        let gno = |n: i64| write_varlen(((n << 1) ^ (n >> 63)) as u64);
        let base = || vec![(1, uuid.clone()), (2, gno(7)), (3, tag("t_1"))];
        let want = "01020304-0506-0708-090a-0b0c0d0e0f10:t_1:7";

        let g = MysqlGtid::parse_tagged(&message(4, &base())).unwrap();
        assert_eq!(g.gtid(), want);
        assert_eq!(g.immediate_commit_timestamp, None);

        let mut newer = base();
        newer.push((9, write_varlen(80400)));
        newer.push((40, vec![0xab, 0xcd]));
        let g = MysqlGtid::parse_tagged(&message(10, &newer)).unwrap();
        assert_eq!(
            (g.gtid().as_str(), g.original_server_version),
            (want, Some(80400))
        );

        let refused = |needed: u64, fields: Vec<(u64, Vec<u8>)>| {
            let body = message(needed, &fields);
            let e = MysqlGtid::parse_tagged(&body).unwrap_err();
            assert!(!e.is_empty(), "{fields:?}");
        };
        refused(13, base());
        refused(4, base()[1..].to_vec());
        refused(4, base()[..2].to_vec());
        refused(4, vec![base()[0].clone(), base()[2].clone()]);
        refused(
            4,
            vec![base()[0].clone(), base()[2].clone(), base()[1].clone()],
        );
        refused(4, vec![(1, uuid.clone()), (2, gno(0)), (3, tag("t"))]);
        refused(4, vec![(1, uuid.clone()), (2, gno(-3)), (3, tag("t"))]);
        refused(4, vec![(1, uuid.clone()), (2, gno(7)), (3, tag("9t"))]);
        refused(4, vec![(1, uuid.clone()), (2, gno(7)), (3, tag("t:x"))]);
        refused(
            4,
            vec![(1, uuid.clone()), (2, gno(7)), (3, tag(&"t".repeat(33)))],
        );
        let mut wide = base();
        wide.insert(0, (0, write_varlen(256)));
        refused(4, wide);

        let mut body = message(4, &base());
        body[0] = 0x04; // format version 2
        assert!(MysqlGtid::parse_tagged(&body).is_err());
        let mut body = message(4, &base());
        body[1] = 0x02; // a size smaller than the header
        assert!(MysqlGtid::parse_tagged(&body).is_err());
        let mut body = message(4, &base());
        body.push(0);
        assert_eq!(MysqlGtid::parse_tagged(&body).unwrap().gtid(), want);
    }

    #[test]
    fn mariadb_gtid_and_gtid_list() {
        ferry_shared::conformance_or_skip!();
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
        ferry_shared::conformance_or_skip!();
        for c in vectors()["previous_gtids_event_body"].as_array().unwrap() {
            let got = previous_gtids(&bytes(&c["hex"])).unwrap();
            let want = c["expected"].as_str().unwrap();
            assert_eq!(got, want);
        }
        assert!(previous_gtids(&[5, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn compressed_transaction_payload() {
        ferry_shared::conformance_or_skip!();
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
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/rust_mysql_common/transaction_compression.000001");
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
