//! What is dumped: tables and views through the filter, their columns, keys and schema files.

use crate::error::DumpError;
use ferry_shared::conn::ServerInfo;
use ferry_shared::filter::TableFilter;
use ferry_shared::ident::{encode_file_name, qualified, quote_ident, quote_str};
use ferry_shared::introspect;
use ferry_shared::Flavor;
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a column's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ValueKind {
    /// Unquoted number as the server prints it.
    Number,
    /// FLOAT: selected as DOUBLE so that the printed value reads back to the same float.
    Float,
    /// Quoted, escaped text (strings, dates, JSON, ENUM/SET...).
    Text,
    /// Text form of a type that reads a *binary* string as its internal bytes (MariaDB INET4,
    /// INET6, UUID): written with a character-set introducer so that data files sent with
    /// `SET NAMES binary` are still parsed as text.
    TypedText,
    /// Bytes: `x'hex'` in SQL, raw (escaped) in CSV.
    Binary,
}

impl ValueKind {
    pub fn from_data_type(data_type: &str, charset: Option<&str>) -> Self {
        match data_type {
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "decimal"
            | "numeric" | "double" | "real" | "year" => ValueKind::Number,
            "float" => ValueKind::Float,
            "bit" | "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob"
            | "geometry" | "point" | "linestring" | "polygon" | "multipoint"
            | "multilinestring" | "multipolygon" | "geometrycollection" | "geomcollection"
            | "vector" => ValueKind::Binary,
            "inet4" | "inet6" | "uuid" => ValueKind::TypedText,
            "char" | "varchar" | "text" | "tinytext" | "mediumtext" | "longtext"
                if charset == Some("binary") =>
            {
                ValueKind::Binary
            }
            _ => ValueKind::Text,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub column_type: String,
    pub nullable: bool,
    pub generated: bool,
    pub charset: Option<String>,
    pub collation: Option<String>,
    pub kind: ValueKind,
}

impl ColumnInfo {
    fn is_integer(&self) -> bool {
        matches!(
            self.data_type.as_str(),
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint"
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableInfo {
    pub db: String,
    pub name: String,
    pub columns: Vec<ColumnInfo>,
    /// Key the chunks are ranged by: the primary key, else the first unique key over NOT NULL
    /// columns (integer single-column keys preferred). Empty: one chunk.
    pub chunk_key: Vec<String>,
    pub est_rows: u64,
    pub est_bytes: u64,
}

impl TableInfo {
    pub fn qualified(&self) -> String {
        qualified(&self.db, &self.name)
    }

    pub fn display(&self) -> String {
        format!("{}.{}", self.db, self.name)
    }

    pub fn file_base(&self) -> String {
        format!(
            "{}.{}",
            encode_file_name(&self.db),
            encode_file_name(&self.name)
        )
    }

    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Columns that go into data files (generated columns are left out).
    pub fn data_columns(&self) -> impl Iterator<Item = &ColumnInfo> {
        self.columns.iter().filter(|c| !c.generated)
    }

    pub fn has_generated(&self) -> bool {
        self.columns.iter().any(|c| c.generated)
    }

    pub fn has_timestamp(&self) -> bool {
        self.columns.iter().any(|c| c.data_type == "timestamp")
    }

    /// Is the chunk key a single integer column?
    pub fn integer_key(&self) -> Option<&ColumnInfo> {
        match self.chunk_key.as_slice() {
            [one] => self.column(one).filter(|c| c.is_integer()),
            _ => None,
        }
    }

    /// The SELECT list for data: FLOAT widened to DOUBLE (see [`ValueKind::Float`]).
    pub fn select_list(&self, server: &ServerInfo) -> String {
        let cast_double = match server.flavor {
            Flavor::Mariadb => server.at_least(10, 4),
            _ => server.at_least(8, 0),
        };
        let cols: Vec<String> = self
            .data_columns()
            .map(|c| {
                let q = quote_ident(&c.name);
                match c.kind {
                    ValueKind::Float if cast_double => format!("CAST({q} AS DOUBLE)"),
                    ValueKind::Float => format!("{q}+0e0"),
                    _ => q,
                }
            })
            .collect();
        if cols.is_empty() {
            "1".to_string()
        } else {
            cols.join(",")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewInfo {
    pub db: String,
    pub name: String,
}

/// Lists databases, base tables and views that pass the filter.
pub async fn discover(
    conn: &mut Conn,
    filter: &TableFilter,
    with_views: bool,
) -> Result<(Vec<String>, Vec<(String, String)>, Vec<ViewInfo>), DumpError> {
    let rows: Vec<(String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES \
             WHERE TABLE_TYPE IN ('BASE TABLE','VIEW','SYSTEM VERSIONED') ORDER BY TABLE_SCHEMA, TABLE_NAME",
        )
        .await
        .map_err(|e| DumpError::query("listing tables", e))?;
    let mut dbs: Vec<String> = Vec::new();
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for (db, name, kind) in rows {
        if !filter.matches_table(&db, &name) {
            continue;
        }
        if !dbs.contains(&db) {
            dbs.push(db.clone());
        }
        if kind == "VIEW" {
            if with_views {
                views.push(ViewInfo { db, name });
            }
        } else {
            tables.push((db, name));
        }
    }
    // Databases with no tables still get a schema file when the filter names them.
    let all_dbs: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
        .map_err(|e| DumpError::query("listing databases", e))?;
    for db in all_dbs {
        if !dbs.contains(&db) && filter.matches_schema(&db) {
            dbs.push(db);
        }
    }
    dbs.sort();
    Ok((dbs, tables, views))
}

/// (index name, column, non-unique, prefix length) in index order.
type IndexColumn = (String, String, u32, Option<u32>);

/// Columns, chunk keys and size estimates of `tables`, read with three queries whatever the
/// number of tables (`ferry_shared::introspect`).
pub async fn describe_tables(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<Vec<TableInfo>, DumpError> {
    let described = introspect::describe(conn, tables)
        .await
        .map_err(|e| DumpError::query("reading table definitions", e))?;
    let mut by_name: BTreeMap<(String, String), introspect::Table> = described
        .into_iter()
        .map(|t| ((t.db.clone(), t.name.clone()), t))
        .collect();
    let mut out = Vec::with_capacity(tables.len());
    for (db, name) in tables {
        let Some(t) = by_name.remove(&(db.clone(), name.clone())) else {
            return Err(DumpError::Definite(format!(
                "table {db}.{name} has no visible columns (dropped while dumping, or no SELECT privilege on it)"
            )));
        };
        out.push(table_info(t));
    }
    Ok(out)
}

/// What the dump needs of a described table: how each column is written, and the chunk key.
fn table_info(t: introspect::Table) -> TableInfo {
    let columns: Vec<ColumnInfo> = t
        .columns
        .into_iter()
        .map(|c| ColumnInfo {
            kind: ValueKind::from_data_type(&c.data_type, c.charset.as_deref()),
            name: c.name,
            data_type: c.data_type,
            column_type: c.column_type,
            nullable: c.nullable,
            generated: c.generated,
            charset: c.charset,
            collation: c.collation,
        })
        .collect();
    let stats: Vec<IndexColumn> = t
        .indexes
        .into_iter()
        .flat_map(|i| {
            let non_unique = u32::from(!i.unique);
            i.columns
                .into_iter()
                .map(move |c| (i.name.clone(), c.name, non_unique, c.sub_part))
        })
        .collect();
    TableInfo {
        chunk_key: choose_chunk_key(&columns, stats),
        db: t.db,
        name: t.name,
        columns,
        est_rows: t.est_rows,
        est_bytes: t.est_bytes,
    }
}

/// The primary key, else a NOT NULL unique key (a single integer column preferred, then the
/// shortest); prefix indexes never qualify. Empty: the table has no usable key.
fn choose_chunk_key(columns: &[ColumnInfo], stats: Vec<IndexColumn>) -> Vec<String> {
    let mut indexes: Vec<(String, Vec<String>, bool)> = Vec::new();
    let mut unusable: Vec<String> = Vec::new();
    for (iname, col, non_unique, sub_part) in stats {
        if non_unique != 0 {
            continue;
        }
        let ok_col = sub_part.is_none()
            && columns
                .iter()
                .find(|c| c.name == col)
                .is_some_and(|c| !c.nullable && !c.generated || iname == "PRIMARY");
        if !ok_col {
            unusable.push(iname.clone());
        }
        match indexes.iter_mut().find(|(n, _, _)| *n == iname) {
            Some((_, cols, _)) => cols.push(col),
            None => indexes.push((iname.clone(), vec![col], iname == "PRIMARY")),
        }
    }
    indexes.retain(|(n, _, _)| !unusable.contains(n));
    let is_int = |c: &str| {
        columns
            .iter()
            .find(|x| x.name == c)
            .is_some_and(|x| x.is_integer())
    };
    indexes
        .iter()
        .find(|(_, _, primary)| *primary)
        .or_else(|| {
            indexes
                .iter()
                .find(|(_, cols, _)| cols.len() == 1 && is_int(&cols[0]))
        })
        .or_else(|| indexes.iter().min_by_key(|(_, cols, _)| cols.len()))
        .map(|(_, cols, _)| cols.clone())
        .unwrap_or_default()
}

pub const SET_NAMES: &str = "/*!40101 SET NAMES binary*/;\n";

fn with_semicolon(mut sql: String) -> String {
    if !sql.ends_with(";\n") {
        sql.push_str(";\n");
    }
    sql
}

pub async fn database_schema(conn: &mut Conn, db: &str) -> Result<String, DumpError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE DATABASE {}", quote_ident(db)))
        .await
        .map_err(|e| DumpError::query(&format!("SHOW CREATE DATABASE {db}"), e))?;
    let create = row
        .map(|r| r.1)
        .unwrap_or_else(|| format!("CREATE DATABASE {}", quote_ident(db)));
    Ok(format!("{SET_NAMES}{}", with_semicolon(create)))
}

pub async fn table_schema(conn: &mut Conn, t: &TableInfo) -> Result<String, DumpError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", t.qualified()))
        .await
        .map_err(|e| DumpError::query(&format!("SHOW CREATE TABLE {}", t.display()), e))?;
    let create = row.map(|r| r.1).ok_or_else(|| {
        DumpError::Definite(format!(
            "SHOW CREATE TABLE {} returned nothing",
            t.display()
        ))
    })?;
    Ok(format!("{SET_NAMES}{}", with_semicolon(create)))
}

/// The placeholder table (all columns `int`) and the view definition, as Dumpling writes them.
pub async fn view_schema(conn: &mut Conn, v: &ViewInfo) -> Result<(String, String), DumpError> {
    let q = qualified(&v.db, &v.name);
    let what = format!("view {}.{}", v.db, v.name);
    let fields: Vec<mysql_async::Row> = conn
        .query(format!("SHOW FIELDS FROM {q}"))
        .await
        .map_err(|e| DumpError::query(&format!("SHOW FIELDS of {what}"), e))?;
    let names: Vec<String> = fields
        .into_iter()
        .filter_map(|r| r.get::<String, usize>(0))
        .map(|n| format!("{} int", quote_ident(&n)))
        .collect();
    let placeholder = format!(
        "{SET_NAMES}CREATE TABLE {}(\n{}\n)ENGINE=MyISAM;\n",
        quote_ident(&v.name),
        names.join(",\n")
    );
    let row: Option<(String, String, String, String)> = conn
        .query_first(format!("SHOW CREATE VIEW {q}"))
        .await
        .map_err(|e| DumpError::query(&format!("SHOW CREATE VIEW {}.{}", v.db, v.name), e))?;
    let (_, create, cs, coll) = row.ok_or_else(|| {
        DumpError::Definite(format!("SHOW CREATE VIEW returned nothing for {what}"))
    })?;
    let vq = quote_ident(&v.name);
    let view = format!(
        "{SET_NAMES}DROP TABLE IF EXISTS {vq};\nDROP VIEW IF EXISTS {vq};\n\
SET @PREV_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT;\n\
SET @PREV_CHARACTER_SET_RESULTS=@@CHARACTER_SET_RESULTS;\n\
SET @PREV_COLLATION_CONNECTION=@@COLLATION_CONNECTION;\n\
SET character_set_client = {cs};\nSET character_set_results = {cs};\nSET collation_connection = {coll};\n\
{}\
SET character_set_client = @PREV_CHARACTER_SET_CLIENT;\n\
SET character_set_results = @PREV_CHARACTER_SET_RESULTS;\n\
SET collation_connection = @PREV_COLLATION_CONNECTION;\n",
        with_semicolon(create)
    );
    Ok((placeholder, view))
}

/// Triggers of a table (`-schema-triggers.sql`), empty when there are none.
pub async fn triggers_schema(conn: &mut Conn, t: &TableInfo) -> Result<Option<String>, DumpError> {
    let names: Vec<String> = conn
        .exec(
            "SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY ACTION_ORDER",
            (&t.db, &t.name),
        )
        .await
        .map_err(|e| DumpError::query(&format!("listing triggers of {}", t.display()), e))?;
    if names.is_empty() {
        return Ok(None);
    }
    let mut out = String::from(SET_NAMES);
    out.push_str("DELIMITER ;;\n");
    for n in names {
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE TRIGGER {}", qualified(&t.db, &n)))
            .await
            .map_err(|e| DumpError::query(&format!("SHOW CREATE TRIGGER {n}"), e))?;
        if let Some(stmt) = row.and_then(|r| r.get::<String, usize>(2)) {
            out.push_str(&stmt);
            out.push_str(";;\n");
        }
    }
    out.push_str("DELIMITER ;\n");
    Ok(Some(out))
}

/// Stored routines and events of a database (`-schema-post.sql`).
pub async fn routines_schema(conn: &mut Conn, db: &str) -> Result<Option<String>, DumpError> {
    let routines: Vec<(String, String)> = conn
        .exec(
            "SELECT ROUTINE_TYPE, ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY ROUTINE_TYPE, ROUTINE_NAME",
            (db,),
        )
        .await
        .map_err(|e| DumpError::query(&format!("listing routines of {db}"), e))?;
    let events: Vec<String> = conn
        .exec("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY EVENT_NAME", (db,))
        .await
        .map_err(|e| DumpError::query(&format!("listing events of {db}"), e))?;
    if routines.is_empty() && events.is_empty() {
        return Ok(None);
    }
    let mut out = String::from(SET_NAMES);
    out.push_str("DELIMITER ;;\n");
    let mut items: Vec<(String, String)> = routines;
    items.extend(events.into_iter().map(|e| ("EVENT".to_string(), e)));
    for (kind, name) in items {
        let row: Option<mysql_async::Row> = conn
            .query_first(format!("SHOW CREATE {kind} {}", qualified(db, &name)))
            .await
            .map_err(|e| DumpError::query(&format!("SHOW CREATE {kind} {db}.{name}"), e))?;
        let idx = if kind == "EVENT" { 3 } else { 2 };
        if let Some(stmt) = row
            .and_then(|r| r.get::<Option<String>, usize>(idx))
            .flatten()
        {
            out.push_str(&stmt);
            out.push_str(";;\n");
        }
    }
    out.push_str("DELIMITER ;\n");
    Ok(Some(out))
}

/// SQL literal of a key value fetched with `SET NAMES binary`, for use in chunk bounds.
/// Strings keep their column's collation so the server compares them as it orders the index.
pub fn key_literal(col: &ColumnInfo, raw: &[u8]) -> String {
    match col.kind {
        ValueKind::Number | ValueKind::Float => String::from_utf8_lossy(raw).into_owned(),
        ValueKind::Binary => format!("x'{}'", hex::encode(raw)),
        ValueKind::TypedText => format!("_latin1{}", quote_str(&String::from_utf8_lossy(raw))),
        ValueKind::Text => match (&col.charset, &col.collation) {
            (Some(cs), Some(coll)) if is_plain_name(cs) && is_plain_name(coll) => {
                format!("_{cs} x'{}' COLLATE {coll}", hex::encode(raw))
            }
            _ => quote_str(&String::from_utf8_lossy(raw)),
        },
    }
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
