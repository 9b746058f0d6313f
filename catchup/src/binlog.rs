//! Binlog event framing: the 19-byte v4 header, the FORMAT_DESCRIPTION event that says whether
//! events carry a CRC32 trailer, and a reader over a binlog file's bytes.
//!
//! Invariants: an event is only handed out when all of its bytes are present and, when the
//! stream has checksums, its CRC32 matches; anything else is an error naming the byte offset —
//! never a panic, never a silent skip.

/// Header length of binlog v4 events.
pub const HEADER_LEN: usize = 19;
/// The magic bytes at the start of a binlog file.
pub const MAGIC: &[u8; 4] = b"\xfebin";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BinlogError {
    #[error("at byte {offset}: not a binlog file (the first 4 bytes are not \\xfebin)")]
    NotBinlog { offset: u64 },
    #[error("at byte {offset}: the event is cut short ({have} of {need} bytes): truncated file or stream")]
    Truncated {
        offset: u64,
        have: usize,
        need: usize,
    },
    #[error("at byte {offset}: event length {len} is impossible (corrupt data)")]
    BadLength { offset: u64, len: u32 },
    #[error("at byte {offset}: CRC32 mismatch in a {event} event (stored {stored:08x}, computed {computed:08x}): corrupt data")]
    Checksum {
        offset: u64,
        event: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("at byte {offset}: malformed {event} event: {what}")]
    Malformed {
        offset: u64,
        event: &'static str,
        what: String,
    },
}

/// The common header of every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventHeader {
    pub timestamp: u32,
    pub type_code: u8,
    pub server_id: u32,
    pub event_size: u32,
    /// Position of the next event in the source's binlog (0 inside transaction payloads).
    pub log_pos: u32,
    pub flags: u16,
}

impl EventHeader {
    pub fn parse(b: &[u8]) -> Option<EventHeader> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(EventHeader {
            timestamp: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            type_code: b[4],
            server_id: u32::from_le_bytes([b[5], b[6], b[7], b[8]]),
            event_size: u32::from_le_bytes([b[9], b[10], b[11], b[12]]),
            log_pos: u32::from_le_bytes([b[13], b[14], b[15], b[16]]),
            flags: u16::from_le_bytes([b[17], b[18]]),
        })
    }
}

/// Name of an event type code, as MySQL and MariaDB call them.
pub fn type_name(code: u8) -> &'static str {
    match code {
        1 => "START_V3",
        2 => "QUERY",
        3 => "STOP",
        4 => "ROTATE",
        5 => "INTVAR",
        13 => "RAND",
        14 => "USER_VAR",
        15 => "FORMAT_DESCRIPTION",
        16 => "XID",
        17 => "BEGIN_LOAD_QUERY",
        18 => "EXECUTE_LOAD_QUERY",
        19 => "TABLE_MAP",
        23 => "WRITE_ROWS_V1",
        24 => "UPDATE_ROWS_V1",
        25 => "DELETE_ROWS_V1",
        26 => "INCIDENT",
        27 => "HEARTBEAT",
        28 => "IGNORABLE",
        29 => "ROWS_QUERY",
        30 => "WRITE_ROWS_V2",
        31 => "UPDATE_ROWS_V2",
        32 => "DELETE_ROWS_V2",
        33 => "GTID",
        34 => "ANONYMOUS_GTID",
        35 => "PREVIOUS_GTIDS",
        36 => "TRANSACTION_CONTEXT",
        37 => "VIEW_CHANGE",
        38 => "XA_PREPARE",
        39 => "PARTIAL_UPDATE_ROWS",
        40 => "TRANSACTION_PAYLOAD",
        41 => "HEARTBEAT_V2",
        42 => "GTID_TAGGED",
        160 => "MARIA_ANNOTATE_ROWS",
        161 => "MARIA_BINLOG_CHECKPOINT",
        162 => "MARIA_GTID",
        163 => "MARIA_GTID_LIST",
        164 => "MARIA_START_ENCRYPTION",
        165 => "MARIA_QUERY_COMPRESSED",
        166 => "MARIA_WRITE_ROWS_COMPRESSED_V1",
        167 => "MARIA_UPDATE_ROWS_COMPRESSED_V1",
        168 => "MARIA_DELETE_ROWS_COMPRESSED_V1",
        169 => "MARIA_WRITE_ROWS_COMPRESSED",
        170 => "MARIA_UPDATE_ROWS_COMPRESSED",
        171 => "MARIA_DELETE_ROWS_COMPRESSED",
        _ => "UNKNOWN",
    }
}

/// What the FORMAT_DESCRIPTION event says about the events after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub binlog_version: u16,
    pub server_version: String,
    /// Events end with a 4-byte CRC32.
    pub checksum: bool,
}

/// Parses a FORMAT_DESCRIPTION event (whole, header included).
pub fn parse_format(ev: &[u8], offset: u64) -> Result<Format, BinlogError> {
    let bad = |what: &str| BinlogError::Malformed {
        offset,
        event: "FORMAT_DESCRIPTION",
        what: what.to_string(),
    };
    let body = ev.get(HEADER_LEN..).ok_or_else(|| bad("no body"))?;
    if body.len() < 2 + 50 + 4 + 1 {
        return Err(bad("body shorter than its fixed part"));
    }
    let binlog_version = u16::from_le_bytes([body[0], body[1]]);
    let raw = &body[2..52];
    let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
    let server_version = String::from_utf8_lossy(&raw[..end]).into_owned();
    // Servers from 5.6.1 (MySQL) / 5.3 (MariaDB) append the checksum algorithm byte and, when
    // it is CRC32 (1), a CRC of the event itself.
    let checksum = if has_checksum_byte(&server_version) && ev.len() >= HEADER_LEN + 57 + 5 {
        let alg = ev[ev.len() - 5];
        match alg {
            0 => false,
            1 => {
                verify_crc(ev, offset, "FORMAT_DESCRIPTION")?;
                true
            }
            _ => return Err(bad(&format!("unknown checksum algorithm {alg}"))),
        }
    } else {
        false
    };
    Ok(Format {
        binlog_version,
        server_version,
        checksum,
    })
}

fn has_checksum_byte(version: &str) -> bool {
    let nums: Vec<u32> = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .take(3)
        .filter_map(|s| s.parse().ok())
        .collect();
    let v = (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
        nums.get(2).copied().unwrap_or(0),
    );
    if version.to_ascii_lowercase().contains("mariadb") {
        v >= (5, 3, 0)
    } else {
        v >= (5, 6, 1)
    }
}

fn verify_crc(ev: &[u8], offset: u64, event: &'static str) -> Result<(), BinlogError> {
    let n = ev.len();
    let stored = u32::from_le_bytes([ev[n - 4], ev[n - 3], ev[n - 2], ev[n - 1]]);
    let computed = if ev[4] == 15 && ev[17] & 1 != 0 {
        // The server sets LOG_EVENT_BINLOG_IN_USE_F in a FORMAT_DESCRIPTION event while the
        // file is open, after computing its checksum without it.
        let mut h = crc32fast::Hasher::new();
        h.update(&ev[..17]);
        h.update(&[ev[17] & !1]);
        h.update(&ev[18..n - 4]);
        h.finalize()
    } else {
        crc32fast::hash(&ev[..n - 4])
    };
    if stored != computed {
        return Err(BinlogError::Checksum {
            offset,
            event,
            stored,
            computed,
        });
    }
    Ok(())
}

/// One framed event: its header, its body (without the CRC trailer) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    pub offset: u64,
    pub header: EventHeader,
    pub body: &'a [u8],
}

impl Event<'_> {
    pub fn type_name(&self) -> &'static str {
        type_name(self.header.type_code)
    }
}

/// Iterates the events of a binlog file's bytes. After an error it stops.
pub struct FileReader<'a> {
    data: &'a [u8],
    at: usize,
    format: Option<Format>,
    failed: bool,
}

impl<'a> FileReader<'a> {
    pub fn new(data: &'a [u8]) -> Result<Self, BinlogError> {
        if data.len() < 4 || &data[..4] != MAGIC {
            return Err(BinlogError::NotBinlog { offset: 0 });
        }
        Ok(FileReader {
            data,
            at: 4,
            format: None,
            failed: false,
        })
    }

    /// The format the file's FORMAT_DESCRIPTION event declared, once read.
    pub fn format(&self) -> Option<&Format> {
        self.format.as_ref()
    }

    fn next_event(&mut self) -> Result<Option<Event<'a>>, BinlogError> {
        let rest = &self.data[self.at..];
        if rest.is_empty() {
            return Ok(None);
        }
        let offset = self.at as u64;
        let header = EventHeader::parse(rest).ok_or(BinlogError::Truncated {
            offset,
            have: rest.len(),
            need: HEADER_LEN,
        })?;
        let size = header.event_size as usize;
        if size < HEADER_LEN {
            return Err(BinlogError::BadLength {
                offset,
                len: header.event_size,
            });
        }
        if rest.len() < size {
            return Err(BinlogError::Truncated {
                offset,
                have: rest.len(),
                need: size,
            });
        }
        let ev = &rest[..size];
        let name = type_name(header.type_code);
        let mut body_end = size;
        if header.type_code == 15 {
            let f = parse_format(ev, offset)?;
            if f.checksum {
                body_end -= 4;
            }
            self.format = Some(f);
        } else if self.format.as_ref().is_some_and(|f| f.checksum) {
            if size < HEADER_LEN + 4 {
                return Err(BinlogError::BadLength {
                    offset,
                    len: header.event_size,
                });
            }
            verify_crc(ev, offset, name)?;
            body_end -= 4;
        }
        self.at += size;
        Ok(Some(Event {
            offset,
            header,
            body: &ev[HEADER_LEN..body_end],
        }))
    }
}

impl<'a> Iterator for FileReader<'a> {
    type Item = Result<Event<'a>, BinlogError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_event() {
            Ok(Some(e)) => Some(Ok(e)),
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        ferry_shared::conformance::shared_root().join("conformance/binlog")
    }

    /// Every fixture file frames into exactly the events SUMMARY.json lists, checksums and all.
    #[test]
    fn fixture_files_match_the_summary() {
        ferry_shared::conformance_or_skip!();
        let summary: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("SUMMARY.json")).expect("SUMMARY.json"),
        )
        .unwrap();
        let mut checked = 0;
        for entry in summary.as_array().unwrap() {
            let file = entry["file"].as_str().unwrap();
            let data = std::fs::read(fixtures().join("rust_mysql_common").join(file)).unwrap();
            let mut reader = FileReader::new(&data).unwrap();
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            let mut n = 0;
            for ev in reader.by_ref() {
                let ev = ev.unwrap_or_else(|e| panic!("{file}: {e}"));
                *counts.entry(ev.type_name().to_string()).or_default() += 1;
                n += 1;
            }
            assert_eq!(n, entry["events"].as_u64().unwrap(), "{file}");
            let expected: BTreeMap<String, u64> = entry["event_types"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect();
            assert_eq!(counts, expected, "{file}");
            let f = reader.format().unwrap();
            assert_eq!(
                f.server_version,
                entry["server_version"].as_str().unwrap(),
                "{file}"
            );
            assert_eq!(f.checksum, entry["checksum"] == "CRC32", "{file}");
            checked += 1;
        }
        assert_eq!(checked, 16);
    }

    /// Cut or flipped bytes are errors naming the offset, never a panic.
    #[test]
    fn truncated_and_corrupt_input_is_an_error() {
        ferry_shared::conformance_or_skip!();
        let data =
            std::fs::read(fixtures().join("rust_mysql_common/mysql_type_bit.000001")).unwrap();
        for cut in (0..data.len()).step_by(7) {
            let part = &data[..cut];
            match FileReader::new(part) {
                Err(e) => assert!(matches!(e, BinlogError::NotBinlog { .. })),
                Ok(r) => {
                    let results: Vec<_> = r.collect();
                    let errors = results.iter().filter(|r| r.is_err()).count();
                    let complete = results.iter().filter(|r| r.is_ok()).count();
                    // Either it ends exactly between events, or the last item is the error.
                    assert!(errors <= 1, "cut at {cut}");
                    if errors == 1 {
                        assert!(results.last().unwrap().is_err());
                    }
                    assert!(complete <= 11);
                }
            }
        }
        let mut flipped = data.clone();
        let last = flipped.len() - 10;
        flipped[last] ^= 0x55;
        let err = FileReader::new(&flipped)
            .unwrap()
            .find_map(|r| r.err())
            .expect("a checksum error");
        assert!(matches!(err, BinlogError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("at byte"));
    }
}
