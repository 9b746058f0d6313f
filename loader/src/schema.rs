//! Schema files on the target: databases, tables and views created under the names the file
//! names give; columns read back from the target; secondary indexes deferred and restored.

use crate::error::{from_driver, LoadError};
use crate::scan::next_statement_end;
use crate::sql::read_ident;
use ferry_shared::ident::{qualified, quote_ident, quote_str};
use ferry_shared::introspect::{self, Column};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use std::collections::{HashMap, HashSet};

/// The statements of a schema file, without leading comments and trailing `;`.
pub fn statements(text: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let (end, _) = next_statement_end(text, at, true);
        let stmt = &text[at..end];
        let s = trim_stmt(&stmt[crate::sql::skip_blank(stmt, 0).min(stmt.len())..]);
        if !s.is_empty() {
            out.push(s);
        }
        at = end;
    }
    out
}

fn trim_stmt(s: &[u8]) -> &[u8] {
    let mut s = s;
    while let Some((&c, rest)) = s.split_last() {
        if c == b';' || c.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    while let Some((&c, rest)) = s.split_first() {
        if c.is_ascii_whitespace() {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Position just after the next top-level word `word` (case-insensitive), skipping quotes.
fn find_word(s: &[u8], word: &str, from: usize) -> Option<usize> {
    let w = word.as_bytes();
    let mut i = from;
    while i + w.len() <= s.len() {
        let c = s[i];
        if c == b'`' || c == b'\'' || c == b'"' {
            let end = memchr::memchr(c, &s[i + 1..])?;
            i += end + 2;
            continue;
        }
        if s[i..i + w.len()].eq_ignore_ascii_case(w)
            && (i == 0 || !is_word_byte(s[i - 1]))
            && s.get(i + w.len()).is_none_or(|b| !is_word_byte(*b))
        {
            return Some(i + w.len());
        }
        i += 1;
    }
    None
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Replaces the object name after `keyword` (`TABLE`, `VIEW`, `DATABASE`...) in a CREATE
/// statement with `name`, skipping `IF NOT EXISTS`; a qualified `db`.`x` is replaced whole.
pub fn rewrite_name(stmt: &[u8], keyword: &str, name: &str) -> Option<Vec<u8>> {
    let mut i = skip_ws(stmt, find_word(stmt, keyword, 0)?);
    if stmt[i..].len() > 13 && stmt[i..i + 2].eq_ignore_ascii_case(b"IF") {
        let k = find_word(stmt, "EXISTS", i)?;
        i = skip_ws(stmt, k);
    }
    let start = i;
    let (_, mut end) = read_ident(stmt, i)?;
    let j = skip_ws(stmt, end);
    if stmt.get(j) == Some(&b'.') {
        let (_, e2) = read_ident(stmt, skip_ws(stmt, j + 1))?;
        end = e2;
    }
    let mut out = stmt[..start].to_vec();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&stmt[end..]);
    Some(out)
}

/// Removes a `DEFINER=user@host` clause.
pub fn strip_definer(stmt: &[u8]) -> Vec<u8> {
    let Some(after) = find_word(stmt, "DEFINER", 0) else {
        return stmt.to_vec();
    };
    let start = after - "DEFINER".len();
    let mut i = skip_ws(stmt, after);
    if stmt.get(i) != Some(&b'=') {
        return stmt.to_vec();
    }
    i = skip_ws(stmt, i + 1);
    // user@host, each part quoted or bare; or CURRENT_USER[()].
    let mut end = i;
    while end < stmt.len() && !stmt[end].is_ascii_whitespace() {
        let c = stmt[end];
        if c == b'`' || c == b'\'' || c == b'"' {
            match memchr::memchr(c, &stmt[end + 1..]) {
                Some(k) => end += k + 2,
                None => return stmt.to_vec(),
            }
        } else {
            end += 1;
        }
    }
    let mut out = stmt[..start].to_vec();
    out.extend_from_slice(&stmt[end..]);
    out
}

/// The `user`@`host` of a DEFINER clause, when there is one.
pub fn definer_of(stmt: &[u8]) -> Option<(String, String)> {
    let after = find_word(stmt, "DEFINER", 0)?;
    let mut i = skip_ws(stmt, after);
    if stmt.get(i) != Some(&b'=') {
        return None;
    }
    i = skip_ws(stmt, i + 1);
    let (user, e) = read_quoted_or_bare(stmt, i)?;
    if stmt.get(e) != Some(&b'@') {
        return None;
    }
    let (host, _) = read_quoted_or_bare(stmt, e + 1)?;
    Some((user, host))
}

fn read_quoted_or_bare(s: &[u8], i: usize) -> Option<(String, usize)> {
    let c = *s.get(i)?;
    if c == b'\'' {
        let k = memchr::memchr(b'\'', &s[i + 1..])?;
        return Some((
            String::from_utf8_lossy(&s[i + 1..i + 1 + k]).into_owned(),
            i + k + 2,
        ));
    }
    read_ident(s, i)
}

fn stmt_starts_with(s: &[u8], words: &[&str]) -> bool {
    let mut i = 0;
    for w in words {
        i = skip_ws(s, i);
        let wb = w.as_bytes();
        if s.len() < i + wb.len() || !s[i..i + wb.len()].eq_ignore_ascii_case(wb) {
            return false;
        }
        i += wb.len();
    }
    true
}

/// Runs one statement on `conn`, naming `file` in errors.
pub async fn exec(conn: &mut Conn, stmt: &[u8], file: &str) -> Result<(), LoadError> {
    conn.query_drop(stmt).await.map_err(|e| {
        let text = String::from_utf8_lossy(&stmt[..stmt.len().min(120)]).replace('\n', " ");
        from_driver(e, &format!("{file}: `{text}`"))
    })
}

/// Creates database `db` from its `-schema-create.sql` text (or plainly).
pub async fn create_database(
    conn: &mut Conn,
    db: &str,
    text: Option<(&[u8], &str)>,
) -> Result<(), LoadError> {
    let q = quote_ident(db);
    if let Some((text, file)) = text {
        for s in statements(text) {
            if stmt_starts_with(s, &["CREATE"])
                && find_word(s, "DATABASE", 0)
                    .or(find_word(s, "SCHEMA", 0))
                    .is_some()
            {
                let kw = if find_word(s, "DATABASE", 0).is_some() {
                    "DATABASE"
                } else {
                    "SCHEMA"
                };
                let mut with_name = rewrite_name(s, kw, &q)
                    .unwrap_or_else(|| format!("CREATE DATABASE {q}").into_bytes());
                if find_word(&with_name, "EXISTS", 0).is_none() {
                    if let Some(at) = find_word(&with_name, kw, 0) {
                        with_name.splice(at..at, b" IF NOT EXISTS".iter().copied());
                    }
                }
                return exec(conn, &with_name, file).await;
            } else if crate::sql::is_session_setting(&String::from_utf8_lossy(s)) {
                exec(conn, s, file).await?;
            }
        }
    }
    exec(
        conn,
        format!("CREATE DATABASE IF NOT EXISTS {q}").as_bytes(),
        db,
    )
    .await
}

/// Creates table `db`.`name` from its schema file text.
pub async fn create_table(
    conn: &mut Conn,
    db: &str,
    name: &str,
    text: &[u8],
    file: &str,
) -> Result<(), LoadError> {
    let target = qualified(db, name);
    let mut created = false;
    for s in statements(text) {
        if stmt_starts_with(s, &["CREATE"]) && find_word(s, "TABLE", 0).is_some() && !created {
            let stmt = rewrite_name(s, "TABLE", &target).ok_or_else(|| LoadError::Input {
                file: file.to_string(),
                offset: 0,
                message: "cannot find the table name in CREATE TABLE".into(),
            })?;
            exec(conn, &stmt, file).await?;
            created = true;
        } else if crate::sql::is_session_setting(&String::from_utf8_lossy(s)) {
            exec(conn, s, file).await?;
        }
    }
    if !created {
        return Err(LoadError::Input {
            file: file.to_string(),
            offset: 0,
            message: "no CREATE TABLE statement in the schema file".into(),
        });
    }
    Ok(())
}

/// The CREATE VIEW statement of a `-schema-view.sql` file, renamed to `db`.`name`, as
/// `CREATE OR REPLACE`; with `strip` the DEFINER clause removed.
pub fn view_statement(
    text: &[u8],
    db: &str,
    name: &str,
    strip: bool,
) -> Option<(Vec<u8>, Vec<Vec<u8>>)> {
    let mut settings = Vec::new();
    for s in statements(text) {
        if crate::sql::is_session_setting(&String::from_utf8_lossy(s)) {
            settings.push(s.to_vec());
        } else if stmt_starts_with(s, &["CREATE"]) && find_word(s, "VIEW", 0).is_some() {
            let mut stmt = rewrite_name(s, "VIEW", &qualified(db, name))?;
            if strip {
                stmt = strip_definer(&stmt);
            }
            if !stmt_starts_with(&stmt, &["CREATE", "OR", "REPLACE"]) {
                let at = skip_ws(&stmt, 0) + "CREATE".len();
                stmt.splice(at..at, b" OR REPLACE".iter().copied());
            }
            return Some((stmt, settings));
        }
    }
    None
}

/// The base tables (and views) that exist on the target in `schemas`, as `(db, name)`.
pub async fn existing_tables(
    conn: &mut Conn,
    schemas: &[String],
) -> Result<HashSet<(String, String)>, LoadError> {
    if schemas.is_empty() {
        return Ok(HashSet::new());
    }
    let rows: Vec<(String, String)> = conn
        .query(format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA IN ({})",
            in_list(schemas)
        ))
        .await
        .map_err(|e| from_driver(e, "reading information_schema.TABLES"))?;
    Ok(rows.into_iter().collect())
}

fn in_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote_str(v))
        .collect::<Vec<_>>()
        .join(",")
}

pub async fn table_has_rows(conn: &mut Conn, db: &str, name: &str) -> Result<bool, LoadError> {
    let r: Option<u8> = conn
        .query_first(format!("SELECT 1 FROM {} LIMIT 1", qualified(db, name)))
        .await
        .map_err(|e| from_driver(e, &format!("reading {}", qualified(db, name))))?;
    Ok(r.is_some())
}

/// The columns of `tables` on the target, by `(db, table)` (a table the target does not show
/// has none), read as every step reads them ([`introspect::describe`]).
pub async fn target_columns_of(
    conn: &mut Conn,
    tables: &[(String, String)],
) -> Result<HashMap<(String, String), Vec<Column>>, LoadError> {
    let described = introspect::describe(conn, tables)
        .await
        .map_err(|e| from_driver(e, "reading the target's columns (information_schema)"))?;
    Ok(described
        .into_iter()
        .map(|t| ((t.db, t.name), t.columns))
        .collect())
}

/// The columns a schema file defines, read back from a scratch copy created on the target
/// (the server parses the CREATE TABLE; ferry never guesses).
pub async fn schema_file_columns(
    conn: &mut Conn,
    meta_db: &str,
    scratch: &str,
    text: &[u8],
    file: &str,
) -> Result<Vec<Column>, LoadError> {
    exec(
        conn,
        format!("DROP TABLE IF EXISTS {}", qualified(meta_db, scratch)).as_bytes(),
        file,
    )
    .await?;
    exec(conn, b"SET SESSION foreign_key_checks = 0", file).await?;
    create_table(conn, meta_db, scratch, text, file).await?;
    let cols = match introspect::describe_one(conn, meta_db, scratch).await {
        Ok(Some(t)) => Ok(t.columns),
        Ok(None) => Err(LoadError::Target(format!(
            "{file}: the scratch copy {} of its table was created but the target does not show it in information_schema.COLUMNS",
            qualified(meta_db, scratch)
        ))),
        Err(e) => Err(from_driver(e, "reading the target's columns (information_schema)")),
    };
    exec(
        conn,
        format!("DROP TABLE IF EXISTS {}", qualified(meta_db, scratch)).as_bytes(),
        file,
    )
    .await?;
    cols
}

/// Secondary, non-unique indexes of a table, as `(name, definition)` from SHOW CREATE TABLE.
pub async fn secondary_indexes(
    conn: &mut Conn,
    db: &str,
    name: &str,
) -> Result<Vec<(String, String)>, LoadError> {
    let row: Option<(String, String)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", qualified(db, name)))
        .await
        .map_err(|e| from_driver(e, &format!("SHOW CREATE TABLE {}", qualified(db, name))))?;
    let Some((_, create)) = row else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in create.lines() {
        let l = line.trim().trim_end_matches(',');
        let rest = if let Some(r) = l.strip_prefix("KEY ") {
            r
        } else if let Some(r) = l.strip_prefix("FULLTEXT KEY ") {
            r
        } else if let Some(r) = l.strip_prefix("SPATIAL KEY ") {
            r
        } else {
            continue;
        };
        if let Some((n, _)) = read_ident(rest.as_bytes(), 0) {
            out.push((n, l.to_string()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn rename_and_definer() {
        let s = b"CREATE TABLE IF NOT EXISTS `CSV`.`x` (a int)";
        assert_eq!(
            rewrite_name(s, "TABLE", "`csv`.`t`").unwrap(),
            b"CREATE TABLE IF NOT EXISTS `csv`.`t` (a int)"
        );
        assert_eq!(
            rewrite_name(b"CREATE DATABASE `CSV`", "DATABASE", "`csv`").unwrap(),
            b"CREATE DATABASE `csv`"
        );
        let v = b"CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`192.168.%` SQL SECURITY DEFINER VIEW `v1` AS select 1";
        assert_eq!(definer_of(v), Some(("root".into(), "192.168.%".into())));
        let (stmt, _) = view_statement(v, "d", "v1", true).unwrap();
        assert_eq!(
            String::from_utf8(stmt).unwrap(),
            "CREATE OR REPLACE ALGORITHM=UNDEFINED  SQL SECURITY DEFINER VIEW `d`.`v1` AS select 1"
        );
        assert_eq!(
            statements(b"SET NAMES binary;\nCREATE TABLE t (a int);\n").len(),
            2
        );
    }
}
