//! Replication positions: binlog file/offset, GTID sets (MySQL and MariaDB flavours) and the
//! `Location` that pairs them.
//!
//! Invariants:
//! - A position is always a typed value; text forms are parsed at the edge (`FromStr`) and printed
//!   with `Display`, and `parse(display(x)) == x`.
//! - Comparisons answer "not comparable" (`None`) instead of guessing: two binlog files from
//!   different base names, or GTID sets where neither contains the other.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// Error when a textual position cannot be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {what} `{input}`: {reason}")]
pub struct PositionParseError {
    pub what: &'static str,
    pub input: String,
    pub reason: String,
}

fn perr(what: &'static str, input: &str, reason: impl Into<String>) -> PositionParseError {
    PositionParseError {
        what,
        input: input.to_string(),
        reason: reason.into(),
    }
}

/// A binlog file name and byte offset, e.g. `mysql-bin.000042:1337`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BinlogPos {
    pub file: String,
    pub pos: u64,
}

impl BinlogPos {
    pub fn new(file: impl Into<String>, pos: u64) -> Self {
        Self {
            file: file.into(),
            pos,
        }
    }

    /// Splits `base.000123` into (`base`, 123).
    fn split_file(&self) -> Option<(&str, u64)> {
        let (base, seq) = self.file.rsplit_once('.')?;
        if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((base, seq.parse().ok()?))
    }
}

impl PartialOrd for BinlogPos {
    /// Positions in the same binlog sequence compare by file number then offset; files of
    /// different base names are not comparable.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.file == other.file {
            return Some(self.pos.cmp(&other.pos));
        }
        let (a_base, a_seq) = self.split_file()?;
        let (b_base, b_seq) = other.split_file()?;
        if a_base != b_base {
            return None;
        }
        Some(a_seq.cmp(&b_seq).then(self.pos.cmp(&other.pos)))
    }
}

impl fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

impl FromStr for BinlogPos {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (file, pos) = s
            .rsplit_once(':')
            .ok_or_else(|| perr("binlog position", s, "expected FILE:POS"))?;
        if file.is_empty() {
            return Err(perr("binlog position", s, "empty file name"));
        }
        let pos = pos
            .parse()
            .map_err(|_| perr("binlog position", s, "POS is not a non-negative integer"))?;
        Ok(Self::new(file, pos))
    }
}

/// One MariaDB GTID: `domain-server-sequence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MariadbGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariadbGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariadbGtid {
    type Err = PositionParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let bad = || perr("MariaDB GTID", s, "expected DOMAIN-SERVER-SEQUENCE");
        let domain = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let server = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        let seq = parts.next().ok_or_else(bad)?.parse().map_err(|_| bad())?;
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Self {
            domain,
            server,
            seq,
        })
    }
}

/// The key of a MySQL GTID interval list: source UUID plus optional tag (MySQL 8.4+).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MysqlSid {
    pub uuid: String,
    pub tag: Option<String>,
}

/// A GTID set in either flavour.
///
/// MySQL: `uuid:1-5:7,uuid2:1-9` (tags as `uuid:tag:1-3`), kept as sorted, merged, half-open
/// intervals per source. MariaDB: one `domain-server-seq` per replication domain (the binlog
/// state), e.g. `0-1-100,1-2-7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GtidSet {
    Mysql(BTreeMap<MysqlSid, Vec<(u64, u64)>>),
    Mariadb(BTreeMap<u32, MariadbGtid>),
}

impl GtidSet {
    /// Parses a MySQL-flavour set (`@@gtid_executed`, `Executed_Gtid_Set`).
    pub fn parse_mysql(s: &str) -> Result<Self, PositionParseError> {
        let mut map: BTreeMap<MysqlSid, Vec<(u64, u64)>> = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split(':');
            let uuid = fields
                .next()
                .filter(|u| is_uuid(u))
                .ok_or_else(|| perr("MySQL GTID set", s, format!("`{part}` has no valid UUID")))?
                .to_ascii_lowercase();
            let mut tag: Option<String> = None;
            for field in fields {
                let first = field.chars().next().unwrap_or('0');
                if !first.is_ascii_digit() {
                    tag = Some(field.to_ascii_lowercase());
                    continue;
                }
                let (lo, hi) = match field.split_once('-') {
                    Some((a, b)) => (a.parse::<u64>(), b.parse::<u64>()),
                    None => (field.parse::<u64>(), field.parse::<u64>()),
                };
                let (lo, hi) = match (lo, hi) {
                    (Ok(a), Ok(b)) if a >= 1 && a <= b => (a, b),
                    _ => {
                        return Err(perr(
                            "MySQL GTID set",
                            s,
                            format!("bad interval `{field}` in `{part}`"),
                        ))
                    }
                };
                let sid = MysqlSid {
                    uuid: uuid.clone(),
                    tag: tag.clone(),
                };
                map.entry(sid).or_default().push((lo, hi + 1));
            }
        }
        for ivs in map.values_mut() {
            normalize_intervals(ivs);
        }
        Ok(GtidSet::Mysql(map))
    }

    /// Parses a MariaDB-flavour set (`@@gtid_binlog_pos`, `BINLOG_GTID_POS()`).
    pub fn parse_mariadb(s: &str) -> Result<Self, PositionParseError> {
        let mut map = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g: MariadbGtid = part.parse()?;
            if map.insert(g.domain, g).is_some() {
                return Err(perr(
                    "MariaDB GTID set",
                    s,
                    format!("domain {} appears twice", g.domain),
                ));
            }
        }
        Ok(GtidSet::Mariadb(map))
    }

    /// Parses either flavour, deciding by shape (MySQL sets contain `:`).
    pub fn parse_any(s: &str) -> Result<Self, PositionParseError> {
        if s.contains(':') {
            Self::parse_mysql(s)
        } else {
            Self::parse_mariadb(s)
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            GtidSet::Mysql(m) => m.is_empty(),
            GtidSet::Mariadb(m) => m.is_empty(),
        }
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            GtidSet::Mysql(_) => Flavor::Mysql,
            GtidSet::Mariadb(_) => Flavor::Mariadb,
        }
    }

    /// True when every transaction in `other` is also in `self`.
    pub fn contains(&self, other: &GtidSet) -> Option<bool> {
        match (self, other) {
            (GtidSet::Mysql(a), GtidSet::Mysql(b)) => Some(b.iter().all(|(sid, ivs)| {
                let mine = a.get(sid).map(Vec::as_slice).unwrap_or(&[]);
                ivs.iter()
                    .all(|&(lo, hi)| mine.iter().any(|&(mlo, mhi)| mlo <= lo && hi <= mhi))
            })),
            (GtidSet::Mariadb(a), GtidSet::Mariadb(b)) => Some(
                b.values()
                    .all(|g| a.get(&g.domain).is_some_and(|m| m.seq >= g.seq)),
            ),
            _ => None,
        }
    }
}

impl PartialOrd for GtidSet {
    /// Set inclusion: `a < b` when `b` holds everything in `a` and more; `None` when neither
    /// contains the other or the flavours differ.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (self.contains(other)?, other.contains(self)?) {
            (true, true) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Greater),
            (false, true) => Some(Ordering::Less),
            (false, false) => None,
        }
    }
}

/// Serialized form of a GTID set: its flavour and its canonical text.
#[derive(Serialize, Deserialize)]
struct GtidSetText {
    flavor: Flavor,
    set: String,
}

impl Serialize for GtidSet {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        GtidSetText {
            flavor: self.flavor(),
            set: self.to_string(),
        }
        .serialize(ser)
    }
}

impl<'de> Deserialize<'de> for GtidSet {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let t = GtidSetText::deserialize(de)?;
        match t.flavor {
            Flavor::Mysql => GtidSet::parse_mysql(&t.set),
            Flavor::Mariadb => GtidSet::parse_mariadb(&t.set),
            Flavor::Tidb => Err(perr("GTID set", &t.set, "TiDB has no GTID sets")),
        }
        .map_err(serde::de::Error::custom)
    }
}

fn normalize_intervals(ivs: &mut Vec<(u64, u64)>) {
    ivs.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ivs.len());
    for &(lo, hi) in ivs.iter() {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    *ivs = out;
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl fmt::Display for GtidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GtidSet::Mysql(map) => {
                let mut first_uuid = true;
                let mut last_uuid: Option<&str> = None;
                for (sid, ivs) in map {
                    if last_uuid != Some(sid.uuid.as_str()) {
                        if !first_uuid {
                            f.write_str(",")?;
                        }
                        first_uuid = false;
                        f.write_str(&sid.uuid)?;
                        last_uuid = Some(&sid.uuid);
                    }
                    if let Some(tag) = &sid.tag {
                        write!(f, ":{tag}")?;
                    }
                    for &(lo, hi) in ivs {
                        if hi - 1 == lo {
                            write!(f, ":{lo}")?;
                        } else {
                            write!(f, ":{}-{}", lo, hi - 1)?;
                        }
                    }
                }
                Ok(())
            }
            GtidSet::Mariadb(map) => {
                let parts: Vec<String> = map.values().map(ToString::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

/// Server flavour; decides GTID syntax, binlog protocol details and consistency strategies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Mysql,
    Mariadb,
    Tidb,
}

impl fmt::Display for Flavor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Flavor::Mysql => "mysql",
            Flavor::Mariadb => "mariadb",
            Flavor::Tidb => "tidb",
        })
    }
}

/// A point in the source's history: binlog coordinates and, where the server has them, the
/// GTID set executed up to that point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub pos: BinlogPos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<GtidSet>,
}

impl Location {
    pub fn new(pos: BinlogPos, gtid: Option<GtidSet>) -> Self {
        Self { pos, gtid }
    }
}

impl PartialOrd for Location {
    /// GTID sets decide when both sides have one; binlog coordinates otherwise.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        match (&self.gtid, &other.gtid) {
            (Some(a), Some(b)) if !a.is_empty() || !b.is_empty() => a.partial_cmp(b),
            _ => self.pos.partial_cmp(&other.pos),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.pos)?;
        if let Some(g) = &self.gtid {
            write!(f, " (GTID {g})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binlog_pos_roundtrip_and_order() {
        let a: BinlogPos = "mysql-bin.000009:1200".parse().unwrap();
        let b: BinlogPos = "mysql-bin.000010:4".parse().unwrap();
        assert_eq!(a.to_string(), "mysql-bin.000009:1200");
        assert!(a < b);
        let c: BinlogPos = "other.000001:4".parse().unwrap();
        assert_eq!(a.partial_cmp(&c), None);
        assert!("nofile".parse::<BinlogPos>().is_err());
        assert!("f.000001:-3".parse::<BinlogPos>().is_err());
    }

    #[test]
    fn mysql_gtid_sets() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let s = GtidSet::parse_mysql(&format!("{u}:1-5:7:6,{u}:9")).unwrap();
        assert_eq!(s.to_string(), format!("{u}:1-7:9"));
        let smaller = GtidSet::parse_mysql(&format!("{u}:1-3")).unwrap();
        assert!(smaller < s);
        let other = GtidSet::parse_mysql("aaaaaaaa-71ca-11e1-9e33-c80aa9429562:1").unwrap();
        assert_eq!(other.partial_cmp(&s), None);
        let tagged = GtidSet::parse_mysql(&format!("{u}:1-4:mytag:1-3")).unwrap();
        assert_eq!(tagged.to_string(), format!("{u}:1-4:mytag:1-3"));
        assert!(GtidSet::parse_mysql("nonsense:1").is_err());
        assert!(GtidSet::parse_mysql(&format!("{u}:5-2")).is_err());
    }

    #[test]
    fn mariadb_gtid_sets() {
        let s = GtidSet::parse_mariadb("0-1-100,1-2-7").unwrap();
        assert_eq!(s.to_string(), "0-1-100,1-2-7");
        let t = GtidSet::parse_mariadb("0-1-99").unwrap();
        assert!(t < s);
        assert!(GtidSet::parse_mariadb("0-1").is_err());
        assert!(GtidSet::parse_mariadb("0-1-1,0-2-3").is_err());
        assert_eq!(
            GtidSet::parse_any("0-1-5").unwrap().flavor(),
            Flavor::Mariadb
        );
    }

    #[test]
    fn location_serialized_literal_is_stable() {
        let loc = Location::new(
            BinlogPos::new("mariadb-bin.000002", 342),
            Some(GtidSet::parse_mariadb("0-1-12").unwrap()),
        );
        let json = serde_json::to_string(&loc).unwrap();
        let pinned = r#"{"pos":{"file":"mariadb-bin.000002","pos":342},"gtid":{"flavor":"mariadb","set":"0-1-12"}}"#;
        assert_eq!(json, pinned);
        let back: Location = serde_json::from_str(pinned).unwrap();
        assert_eq!(back, loc);
    }
}
