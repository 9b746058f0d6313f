//! What a server says about its tables: columns (types, nullability, generated, unsigned,
//! character sets), unique and secondary keys, and size estimates — read from
//! `information_schema` in one implementation for dump, load and catch-up.
//!
//! Rules that every step relies on, kept here once:
//! - A column is *generated* when the server says so in `EXTRA` (`VIRTUAL GENERATED`,
//!   `STORED GENERATED` on MySQL and MariaDB 10.2+, `VIRTUAL`/`PERSISTENT` on older MariaDB) or
//!   it has a `GENERATION_EXPRESSION`. Generated columns are never written by ferry.
//! - A column is *unsigned* when its `COLUMN_TYPE` says so (`int(10) unsigned`, `bigint
//!   unsigned zerofill`); `DATA_TYPE` never does.
//! - Keys come in the server's order: the primary key first, then the others by name, each
//!   with its columns in index order; a prefix column (`SUB_PART`) is kept, so callers can
//!   refuse prefix keys where a whole value is needed.
//! - Names compare as the server returns them; whatever the number of tables, [`describe`]
//!   sends three queries (columns, keys, sizes), filtered by schema; [`describe_one`] sends the
//!   same three filtered by the table's name.

use crate::ident::quote_str;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// `DATA_TYPE`, lower case: `int`, `varchar`, `inet6`.
    pub data_type: String,
    /// `COLUMN_TYPE` as the server prints it: `decimal(65,30) unsigned`.
    pub column_type: String,
    pub nullable: bool,
    pub generated: bool,
    pub unsigned: bool,
    pub auto_increment: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    /// `CHARACTER_OCTET_LENGTH`: bytes of a string column (the width of a BINARY(n)).
    pub octet_length: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyColumn {
    pub name: String,
    /// Indexed prefix length, when only a prefix is indexed.
    pub sub_part: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub name: String,
    pub unique: bool,
    pub columns: Vec<KeyColumn>,
}

impl Index {
    pub fn is_primary(&self) -> bool {
        self.name == "PRIMARY"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub db: String,
    pub name: String,
    pub columns: Vec<Column>,
    /// The primary key first, then the other indexes by name.
    pub indexes: Vec<Index>,
    /// `TABLE_ROWS` and `DATA_LENGTH`: the server's estimates (0 when unknown).
    pub est_rows: u64,
    pub est_bytes: u64,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key(&self) -> Option<&Index> {
        self.indexes.first().filter(|i| i.is_primary())
    }

    /// Unique keys other than the primary key.
    pub fn other_unique_keys(&self) -> impl Iterator<Item = &Index> {
        self.indexes.iter().filter(|i| i.unique && !i.is_primary())
    }

    pub fn has_generated(&self) -> bool {
        self.columns.iter().any(|c| c.generated)
    }
}

type ColumnRow = (
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<u64>,
);
type KeyRow = (String, String, String, String, u32, Option<u32>);
type SizeRow = (String, String, Option<u64>, Option<u64>);

/// `tables` as the server describes them, in the order asked; a table the server does not show
/// (dropped, or no privilege on it) is left out.
pub async fn describe(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<Table>, mysql_async::Error> {
    let mut schemas: Vec<&str> = tables.iter().map(|(d, _)| d.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    if schemas.is_empty() {
        return Ok(Vec::new());
    }
    let in_list = schemas
        .iter()
        .map(|d| quote_str(d))
        .collect::<Vec<_>>()
        .join(",");
    read(conn, tables, &format!("TABLE_SCHEMA IN ({in_list})")).await
}

/// One table, or `None` when the server does not show it. The queries name the table, so the
/// server reads no other table's metadata.
pub async fn describe_one(
    conn: &mut Conn,
    db: &str,
    name: &str,
) -> Result<Option<Table>, mysql_async::Error> {
    let filter = format!(
        "TABLE_SCHEMA = {} AND TABLE_NAME = {}",
        quote_str(db),
        quote_str(name)
    );
    let mut found = read(conn, &[(db.to_string(), name.to_string())], &filter).await?;
    Ok(found.pop())
}

/// The three queries, each restricted by `filter` (a condition on `TABLE_SCHEMA` and
/// `TABLE_NAME`); `tables` picks the tables out of what they return.
async fn read(
    conn: &mut Conn,
    tables: &[(String, String)],
    filter: &str,
) -> Result<Vec<Table>, mysql_async::Error> {
    let columns: Vec<ColumnRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, \
             IS_NULLABLE, CONCAT(EXTRA, IF(IFNULL(GENERATION_EXPRESSION, '') = '', '', \
             ' GENERATED')), CHARACTER_SET_NAME, COLLATION_NAME, CHARACTER_OCTET_LENGTH \
             FROM information_schema.COLUMNS WHERE {filter} \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ))
        .await?;
    let keys: Vec<KeyRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, INDEX_NAME, COLUMN_NAME, NON_UNIQUE, SUB_PART \
             FROM information_schema.STATISTICS WHERE {filter} \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, \
             SEQ_IN_INDEX"
        ))
        .await?;
    let sizes: Vec<SizeRow> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS, DATA_LENGTH \
             FROM information_schema.TABLES WHERE {filter}"
        ))
        .await?;
    Ok(assemble(tables, columns, keys, sizes))
}

type Key = (String, String);

fn assemble(
    tables: &[(String, String)],
    columns: Vec<ColumnRow>,
    keys: Vec<KeyRow>,
    sizes: Vec<SizeRow>,
) -> Vec<Table> {
    let mut cols: BTreeMap<Key, Vec<Column>> = BTreeMap::new();
    for row in columns {
        let (key, c) = column(row);
        cols.entry(key).or_default().push(c);
    }
    let mut idx: BTreeMap<Key, Vec<Index>> = BTreeMap::new();
    for (db, t, index, column, non_unique, sub_part) in keys {
        let list = idx.entry((db, t)).or_default();
        let key_column = KeyColumn {
            name: column,
            sub_part,
        };
        match list.last_mut().filter(|i| i.name == index) {
            Some(i) => i.columns.push(key_column),
            None => list.push(Index {
                name: index,
                unique: non_unique == 0,
                columns: vec![key_column],
            }),
        }
    }
    let mut est: BTreeMap<Key, (u64, u64)> = sizes
        .into_iter()
        .map(|(d, t, r, b)| ((d, t), (r.unwrap_or(0), b.unwrap_or(0))))
        .collect();
    tables
        .iter()
        .filter_map(|(db, name)| {
            let key = (db.clone(), name.clone());
            let columns = cols.remove(&key)?;
            let (est_rows, est_bytes) = est.remove(&key).unwrap_or((0, 0));
            Some(Table {
                db: db.clone(),
                name: name.clone(),
                columns,
                indexes: idx.remove(&key).unwrap_or_default(),
                est_rows,
                est_bytes,
            })
        })
        .collect()
}

/// A column of an `information_schema.COLUMNS` row, with the table it belongs to.
fn column(row: ColumnRow) -> (Key, Column) {
    let (db, table, name, data_type, column_type, nullable, extra, charset, collation, octets) =
        row;
    let extra = extra.to_ascii_lowercase();
    let generated = ["generated", "virtual", "persistent", "stored"]
        .iter()
        .any(|w| extra.contains(w));
    let c = Column {
        unsigned: column_type.to_ascii_lowercase().contains("unsigned"),
        auto_increment: extra.contains("auto_increment"),
        nullable: nullable == "YES",
        name,
        data_type,
        column_type,
        generated,
        charset,
        collation,
        octet_length: octets,
    };
    ((db, table), c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, extra: &str) -> ColumnRow {
        let data_type = ty.split(['(', ' ']).next().unwrap_or(ty).to_string();
        (
            "d".into(),
            "t".into(),
            name.into(),
            data_type,
            ty.into(),
            "NO".into(),
            extra.into(),
            None,
            None,
            None,
        )
    }

    fn key(index: &str, column: &str, non_unique: u32) -> KeyRow {
        (
            "d".into(),
            "t".into(),
            index.into(),
            column.into(),
            non_unique,
            None,
        )
    }

    #[test]
    fn generated_unsigned_and_auto_increment_from_what_the_server_prints() {
        let t = &assemble(
            &[("d".into(), "t".into())],
            vec![
                col("id", "bigint(20) unsigned", "auto_increment"),
                col("v", "int(11)", "VIRTUAL GENERATED"),
                col("p", "int(11)", "PERSISTENT"),
                col("s", "int(11)", "STORED GENERATED"),
                col("e", "int(11)", " GENERATED"),
                col("n", "int(11)", ""),
            ],
            vec![],
            vec![],
        )[0];
        let flags: Vec<(bool, bool, bool)> = t
            .columns
            .iter()
            .map(|c| (c.generated, c.unsigned, c.auto_increment))
            .collect();
        assert_eq!(
            flags,
            [
                (false, true, true),
                (true, false, false),
                (true, false, false),
                (true, false, false),
                (true, false, false),
                (false, false, false)
            ]
        );
    }

    #[test]
    fn keys_group_their_columns_and_keep_the_primary_first() {
        let t = &assemble(
            &[("d".into(), "t".into()), ("d".into(), "gone".into())],
            vec![col("a", "int", ""), col("b", "int", "")],
            vec![
                key("PRIMARY", "a", 0),
                key("PRIMARY", "b", 0),
                key("u", "b", 0),
                key("x", "a", 1),
            ],
            vec![("d".into(), "t".into(), Some(3), None)],
        );
        assert_eq!(t.len(), 1, "a table the server does not show is left out");
        let t = &t[0];
        assert_eq!(t.primary_key().map(|k| k.columns.len()), Some(2));
        assert_eq!(
            t.other_unique_keys()
                .map(|k| k.name.as_str())
                .collect::<Vec<_>>(),
            ["u"]
        );
        assert!(!t.indexes[2].unique);
        assert_eq!((t.est_rows, t.est_bytes), (3, 0));
    }
}
