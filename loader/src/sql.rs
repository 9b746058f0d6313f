//! Reading SQL dump files: statements, `INSERT ... VALUES` tuples and their literals.
//!
//! Values stay as slices of the input where the text can be passed on as it is (numbers, and
//! strings whose escapes mean the same to `LOAD DATA` as to the SQL parser); only hex, bit,
//! double-quoted and charset-introduced literals are decoded to bytes. Anything else (function
//! calls, `DEFAULT`, expressions) makes the statement [`ParseError::Unsupported`], and the caller
//! runs that one statement as it is.

use crate::scan::next_statement_end;

/// One literal of a VALUES tuple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    /// A number as written (`-12`, `3.5e10`).
    Number(&'a [u8]),
    /// A single-quoted string's body, still escaped; its escapes mean the same to `LOAD DATA`.
    Plain(&'a [u8]),
    /// A quoted string that had to be decoded (other escapes, doubled quotes): text, checked
    /// under utf8mb4 like `Plain`.
    Text(Vec<u8>),
    /// The bytes of a non-text literal (hex, bits, charset introducers).
    Bytes(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Valid SQL this reader does not turn into rows; run the statement as it is.
    Unsupported(String),
    /// Not valid SQL at `offset` (relative to the statement).
    Syntax { offset: usize, message: String },
}

/// What a statement in a data file is.
#[derive(Debug, PartialEq, Eq)]
pub enum Statement<'a> {
    Insert(Insert),
    /// `SET ...` (also inside `/*!...*/`): run on the session.
    Setting(&'a str),
    /// Statements dump tools write around data that must not run inside a load transaction
    /// (`LOCK TABLES`, `ALTER TABLE ... DISABLE KEYS`, `COMMIT`, `USE`...), and empty ones.
    Ignored,
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Insert {
    /// `REPLACE INTO` instead of `INSERT`.
    pub replace: bool,
    pub ignore: bool,
    /// The column list, unquoted, when the statement has one.
    pub columns: Option<Vec<String>>,
    /// Offset of the table name and of the byte after it, in the statement.
    pub table_span: (usize, usize),
    /// Offset of the first tuple's `(`, in the statement.
    pub values_at: usize,
}

/// Skips whitespace and comments (but not `/*!` conditional comments).
pub(crate) fn skip_blank(s: &[u8], mut i: usize) -> usize {
    loop {
        while i < s.len() && s[i].is_ascii_whitespace() {
            i += 1;
        }
        if s[i..].starts_with(b"--") && s.get(i + 2).is_none_or(|c| c.is_ascii_whitespace())
            || s.get(i) == Some(&b'#')
        {
            i = memchr::memchr(b'\n', &s[i..]).map_or(s.len(), |k| i + k + 1);
        } else if s[i..].starts_with(b"/*") && s.get(i + 2) != Some(&b'!') {
            i = memchr::memmem::find(&s[i + 2..], b"*/").map_or(s.len(), |k| i + 2 + k + 2);
        } else {
            return i;
        }
    }
}

fn starts_with_word(s: &[u8], i: usize, word: &str) -> bool {
    let w = word.as_bytes();
    s.len() >= i + w.len()
        && s[i..i + w.len()].eq_ignore_ascii_case(w)
        && s.get(i + w.len())
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || *c == b'_'))
}

/// The text of a statement with a `/*!NNNNN ... */` wrapper removed.
fn unwrap_conditional(s: &[u8], i: usize) -> Option<&[u8]> {
    if !s[i..].starts_with(b"/*!") {
        return None;
    }
    let mut j = i + 3;
    while j < s.len() && s[j].is_ascii_digit() {
        j += 1;
    }
    let end = memchr::memmem::rfind(&s[j..], b"*/").map_or(s.len(), |k| j + k);
    Some(&s[j..end])
}

/// Is `text` a `SET ...` statement (possibly wrapped in `/*!...*/`)?
pub fn is_session_setting(text: &str) -> bool {
    let s = text.as_bytes();
    let i = skip_blank(s, 0);
    if let Some(inner) = unwrap_conditional(s, i) {
        let k = skip_blank(inner, 0);
        return starts_with_word(inner, k, "SET");
    }
    starts_with_word(s, i, "SET")
}

/// The `SET` statements among the complete statements of `head`.
pub fn head_settings(head: &[u8], backslash: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < head.len() {
        let (end, open) = next_statement_end(head, at, backslash);
        if open || !head[..end].ends_with(b";") {
            break;
        }
        if let Ok(t) = std::str::from_utf8(&head[at..end]) {
            if is_session_setting(t) {
                out.push(t.trim().trim_end_matches(';').to_string());
            }
        }
        at = end;
    }
    out
}

/// Reads one identifier (backquoted, double-quoted or bare) at `i`; returns it and the end.
pub fn read_ident(s: &[u8], i: usize) -> Option<(String, usize)> {
    let q = *s.get(i)?;
    if q == b'`' || q == b'"' {
        let mut out = Vec::new();
        let mut j = i + 1;
        loop {
            let c = *s.get(j)?;
            if c == q {
                if s.get(j + 1) == Some(&q) {
                    out.push(q);
                    j += 2;
                    continue;
                }
                return Some((String::from_utf8_lossy(&out).into_owned(), j + 1));
            }
            out.push(c);
            j += 1;
        }
    }
    let mut j = i;
    while j < s.len()
        && (s[j].is_ascii_alphanumeric() || s[j] == b'_' || s[j] == b'$' || s[j] >= 0x80)
    {
        j += 1;
    }
    (j > i).then(|| (String::from_utf8_lossy(&s[i..j]).into_owned(), j))
}

/// Reads `name` or `db`.`name`; returns the span and the last part.
fn read_table_name(s: &[u8], i: usize) -> Option<(String, usize)> {
    let (mut name, mut j) = read_ident(s, i)?;
    let k = skip_blank(s, j);
    if s.get(k) == Some(&b'.') {
        let k2 = skip_blank(s, k + 1);
        let (n2, j2) = read_ident(s, k2)?;
        name = n2;
        j = j2;
    }
    Some((name, j))
}

/// Classifies one statement of a data file.
pub fn classify(stmt: &[u8]) -> Statement<'_> {
    let i = skip_blank(stmt, 0);
    if i >= stmt.len() || stmt[i] == b';' {
        return Statement::Ignored;
    }
    if let Some(inner) = unwrap_conditional(stmt, i) {
        let k = skip_blank(inner, 0);
        if starts_with_word(inner, k, "SET") {
            return std::str::from_utf8(stmt)
                .map(|t| Statement::Setting(t.trim().trim_end_matches(';')))
                .unwrap_or(Statement::Other);
        }
        // `/*!40000 ALTER TABLE t DISABLE KEYS */` and friends.
        return Statement::Ignored;
    }
    for w in [
        "LOCK", "UNLOCK", "COMMIT", "BEGIN", "START", "USE", "ROLLBACK", "ALTER",
    ] {
        if starts_with_word(stmt, i, w) {
            return Statement::Ignored;
        }
    }
    if starts_with_word(stmt, i, "SET") {
        return std::str::from_utf8(stmt)
            .map(|t| Statement::Setting(t.trim().trim_end_matches(';')))
            .unwrap_or(Statement::Other);
    }
    match parse_insert_header(stmt, i) {
        Some(ins) => Statement::Insert(ins),
        None => Statement::Other,
    }
}

fn parse_insert_header(s: &[u8], mut i: usize) -> Option<Insert> {
    let replace = if starts_with_word(s, i, "INSERT") {
        i += 6;
        false
    } else if starts_with_word(s, i, "REPLACE") {
        i += 7;
        true
    } else {
        return None;
    };
    let mut ignore = false;
    loop {
        i = skip_blank(s, i);
        if starts_with_word(s, i, "IGNORE") {
            ignore = true;
            i += 6;
        } else if starts_with_word(s, i, "LOW_PRIORITY") {
            i += 12;
        } else if starts_with_word(s, i, "DELAYED") {
            i += 7;
        } else if starts_with_word(s, i, "HIGH_PRIORITY") {
            i += 13;
        } else if starts_with_word(s, i, "INTO") {
            i += 4;
        } else {
            break;
        }
    }
    let start = i;
    let (_, end) = read_table_name(s, i)?;
    i = skip_blank(s, end);
    let mut columns = None;
    if s.get(i) == Some(&b'(') {
        let mut cols = Vec::new();
        i = skip_blank(s, i + 1);
        while s.get(i) != Some(&b')') {
            let (c, j) = read_ident(s, i)?;
            cols.push(c);
            i = skip_blank(s, j);
            match s.get(i) {
                Some(b',') => i = skip_blank(s, i + 1),
                Some(b')') => {}
                _ => return None,
            }
        }
        i = skip_blank(s, i + 1);
        columns = Some(cols);
    }
    if starts_with_word(s, i, "VALUES") {
        i += 6;
    } else if starts_with_word(s, i, "VALUE") {
        i += 5;
    } else {
        // INSERT ... SELECT / SET a=1: not rows this reader handles.
        return Some(Insert {
            replace,
            ignore,
            columns,
            table_span: (start, end),
            values_at: usize::MAX,
        });
    }
    i = skip_blank(s, i);
    Some(Insert {
        replace,
        ignore,
        columns,
        table_span: (start, end),
        values_at: i,
    })
}

/// Walks the tuples of an INSERT starting at `at` (the first `(`), calling `row` with each
/// tuple's values and its byte span. Stops at the statement end.
pub fn for_each_tuple<'a>(
    s: &'a [u8],
    mut at: usize,
    backslash: bool,
    values: &mut Vec<Value<'a>>,
    mut row: impl FnMut(&[Value<'a>], (usize, usize)) -> Result<(), ParseError>,
) -> Result<(), ParseError> {
    if at == usize::MAX {
        return Err(ParseError::Unsupported(
            "an INSERT without a VALUES list".into(),
        ));
    }
    loop {
        at = skip_blank(s, at);
        if s.get(at) != Some(&b'(') {
            return Err(syntax(at, "expected `(` to start a row of values"));
        }
        let tuple_start = at;
        at += 1;
        values.clear();
        at = skip_blank(s, at);
        if s.get(at) == Some(&b')') {
            return Err(ParseError::Unsupported("an empty row `()`".into()));
        }
        loop {
            at = skip_blank(s, at);
            let (v, next) = read_value(s, at, backslash)?;
            values.push(v);
            at = skip_blank(s, next);
            match s.get(at) {
                Some(b',') => at += 1,
                Some(b')') => {
                    at += 1;
                    break;
                }
                _ => return Err(syntax(at, "expected `,` or `)` after a value")),
            }
        }
        row(values, (tuple_start, at))?;
        at = skip_blank(s, at);
        match s.get(at) {
            Some(b',') => at += 1,
            Some(b';') | None => return Ok(()),
            _ if starts_with_word(s, at, "ON") => {
                return Err(ParseError::Unsupported("ON DUPLICATE KEY UPDATE".into()))
            }
            _ => return Err(syntax(at, "expected `,` or `;` after a row")),
        }
    }
}

fn syntax(offset: usize, message: &str) -> ParseError {
    ParseError::Syntax {
        offset,
        message: message.to_string(),
    }
}

fn read_value(s: &[u8], i: usize, backslash: bool) -> Result<(Value<'_>, usize), ParseError> {
    let Some(&c) = s.get(i) else {
        return Err(syntax(i, "the statement ends inside a row"));
    };
    match c {
        b'\'' => read_string(s, i, b'\'', backslash),
        b'"' => read_string(s, i, b'"', backslash),
        b'0' if matches!(s.get(i + 1), Some(b'x' | b'X')) => {
            let j = scan_while(s, i + 2, |b| b.is_ascii_hexdigit());
            Ok((Value::Bytes(decode_hex(&s[i + 2..j], i)?), j))
        }
        b'0' if matches!(s.get(i + 1), Some(b'b')) && matches!(s.get(i + 2), Some(b'0' | b'1')) => {
            let j = scan_while(s, i + 2, |b| b == b'0' || b == b'1');
            Ok((Value::Bytes(decode_bits(&s[i + 2..j])), j))
        }
        b'x' | b'X' if s.get(i + 1) == Some(&b'\'') => {
            let end = memchr::memchr(b'\'', &s[i + 2..])
                .map(|k| i + 2 + k)
                .ok_or_else(|| syntax(i, "unterminated hex literal"))?;
            Ok((Value::Bytes(decode_hex(&s[i + 2..end], i)?), end + 1))
        }
        b'b' | b'B' if s.get(i + 1) == Some(&b'\'') => {
            let end = memchr::memchr(b'\'', &s[i + 2..])
                .map(|k| i + 2 + k)
                .ok_or_else(|| syntax(i, "unterminated bit literal"))?;
            Ok((Value::Bytes(decode_bits(&s[i + 2..end])), end + 1))
        }
        b'-' | b'+' | b'.' | b'0'..=b'9' => {
            let j = scan_while(s, i + 1, |b| {
                b.is_ascii_digit() || b == b'.' || b == b'e' || b == b'E' || b == b'-' || b == b'+'
            });
            let t = &s[i..j];
            if !t.iter().any(|b| b.is_ascii_digit()) {
                return Err(ParseError::Unsupported("an expression in VALUES".into()));
            }
            Ok((Value::Number(t), j))
        }
        b'_' => {
            // Charset introducer: `_binary '...'`, `_utf8mb4 0x...`.
            let j = scan_while(s, i + 1, |b| b.is_ascii_alphanumeric() || b == b'_');
            let k = skip_blank(s, j);
            let (v, end) = read_value(s, k, backslash)?;
            match v {
                Value::Number(_) | Value::Null => Err(ParseError::Unsupported(
                    "a charset introducer before a non-string".into(),
                )),
                v => {
                    let bytes = value_bytes(&v);
                    // A typed-text introducer (`_latin1 '::1'`) keeps the value text; the
                    // loader still sends bytes, so nothing is lost.
                    Ok((Value::Bytes(bytes), end))
                }
            }
        }
        _ => {
            if starts_with_word(s, i, "NULL") {
                Ok((Value::Null, i + 4))
            } else if starts_with_word(s, i, "TRUE") {
                Ok((Value::Number(b"1"), i + 4))
            } else if starts_with_word(s, i, "FALSE") {
                Ok((Value::Number(b"0"), i + 5))
            } else {
                Err(ParseError::Unsupported(format!(
                    "`{}` in VALUES",
                    String::from_utf8_lossy(&s[i..(i + 16).min(s.len())])
                )))
            }
        }
    }
}

fn scan_while(s: &[u8], mut i: usize, f: impl Fn(u8) -> bool) -> usize {
    while i < s.len() && f(s[i]) {
        i += 1;
    }
    i
}

fn read_string(
    s: &[u8],
    i: usize,
    q: u8,
    backslash: bool,
) -> Result<(Value<'_>, usize), ParseError> {
    let body_start = i + 1;
    let mut j = body_start;
    let mut plain = true;
    if !backslash {
        // NO_BACKSLASH_ESCAPES: only doubled quotes; backslashes are data (and would be escapes
        // in a LOAD DATA stream, so such values are decoded).
        loop {
            let Some(k) = memchr::memchr(q, &s[j..]) else {
                return Err(syntax(i, "a string that is never closed"));
            };
            let p = j + k;
            if s.get(p + 1) == Some(&q) {
                j = p + 2;
                continue;
            }
            let body = &s[body_start..p];
            let v = if plain && q == b'\'' && memchr::memchr(b'\\', body).is_none() {
                Value::Plain(body)
            } else {
                Value::Text(undouble(body, q))
            };
            return Ok((v, p + 1));
        }
    }
    loop {
        let Some(k) = memchr::memchr2(q, b'\\', &s[j..]) else {
            return Err(syntax(i, "a string that is never closed"));
        };
        let p = j + k;
        if s[p] == b'\\' {
            match s.get(p + 1) {
                None => return Err(syntax(i, "a string that is never closed")),
                // Escapes whose meaning differs between SQL and LOAD DATA.
                Some(b'%' | b'_' | b'N') => plain = false,
                Some(_) => {}
            }
            j = p + 2;
        } else if s.get(p + 1) == Some(&q) {
            // A doubled `"` would read as two quotes inside the `'`-enclosed stream field.
            plain &= q == b'\'';
            j = p + 2;
        } else {
            let body = &s[body_start..p];
            // A `"..."` body copies as it is when it holds no `'` (mydumper writes these).
            let v = if plain && (q == b'\'' || memchr::memchr(b'\'', body).is_none()) {
                Value::Plain(body)
            } else {
                Value::Text(unescape(body, q))
            };
            return Ok((v, p + 1));
        }
    }
}

fn undouble(body: &[u8], q: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        out.push(body[i]);
        i += if body[i] == q && body.get(i + 1) == Some(&q) {
            2
        } else {
            1
        };
    }
    out
}

/// Decodes a SQL string body's escapes.
pub fn unescape(body: &[u8], q: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'\\' && i + 1 < body.len() {
            let e = body[i + 1];
            match e {
                b'0' => out.push(0),
                b'b' => out.push(8),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'Z' => out.push(0x1a),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                _ => out.push(e),
            }
            i += 2;
        } else if c == q && body.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The bytes a string-like value stands for.
pub fn value_bytes(v: &Value<'_>) -> Vec<u8> {
    match v {
        Value::Plain(b) => unescape(b, b'\''),
        Value::Bytes(b) | Value::Text(b) => b.clone(),
        Value::Number(n) => n.to_vec(),
        Value::Null => Vec::new(),
    }
}

fn decode_hex(h: &[u8], at: usize) -> Result<Vec<u8>, ParseError> {
    let padded;
    let h = if h.len() % 2 == 1 {
        padded = [b"0".as_slice(), h].concat();
        &padded[..]
    } else {
        h
    };
    hex::decode(h).map_err(|_| syntax(at, "invalid hex literal"))
}

fn decode_bits(b: &[u8]) -> Vec<u8> {
    let n = b.len().div_ceil(8).max(1);
    let mut out = vec![0u8; n];
    for (k, &c) in b.iter().rev().enumerate() {
        if c == b'1' {
            out[n - 1 - k / 8] |= 1 << (k % 8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rows(stmt: &[u8]) -> Result<Vec<Vec<Value<'_>>>, ParseError> {
        let Statement::Insert(ins) = classify(stmt) else {
            panic!("not an insert")
        };
        let mut out = Vec::new();
        let mut vals = Vec::new();
        for_each_tuple(stmt, ins.values_at, true, &mut vals, |v, _| {
            out.push(v.to_vec());
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn literals() {
        let r = rows(b"INSERT INTO `t` VALUES (1,-2.5e3,'a''b\\'c',NULL,0x4142,x'43',b'101',_binary 'z',\"d\\%\"),(TRUE, '\\N');").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0][0], Value::Number(b"1"));
        assert_eq!(r[0][1], Value::Number(b"-2.5e3"));
        assert_eq!(r[0][2], Value::Plain(b"a''b\\'c"));
        assert_eq!(value_bytes(&r[0][2]), b"a'b'c");
        assert_eq!(r[0][3], Value::Null);
        assert_eq!(r[0][4], Value::Bytes(b"AB".to_vec()));
        assert_eq!(r[0][5], Value::Bytes(b"C".to_vec()));
        assert_eq!(r[0][6], Value::Bytes(vec![5]));
        assert_eq!(r[0][7], Value::Bytes(b"z".to_vec()));
        assert_eq!(r[0][8], Value::Text(b"d\\%".to_vec()));
        assert_eq!(r[1][1], Value::Text(b"N".to_vec()));
        let r = rows(b"INSERT INTO t VALUES (\"a\\\"b\",\"it's\",\"x\"\"y\")").unwrap();
        assert_eq!(r[0][0], Value::Plain(b"a\\\"b"));
        assert_eq!(r[0][1], Value::Text(b"it's".to_vec()));
        assert_eq!(r[0][2], Value::Text(b"x\"y".to_vec()));
    }

    #[test]
    fn headers() {
        let s = b"insert ignore into `db`.`t` (`a`,b) values (1,2)";
        let Statement::Insert(i) = classify(s) else {
            panic!()
        };
        assert!(i.ignore);
        assert_eq!(i.columns, Some(vec!["a".to_string(), "b".to_string()]));
        assert_eq!(&s[i.table_span.0..i.table_span.1], b"`db`.`t`");
        assert_eq!(
            classify(b"/*!40101 SET NAMES binary*/"),
            Statement::Setting("/*!40101 SET NAMES binary*/")
        );
        assert_eq!(
            classify(b"/*!40000 ALTER TABLE `t` DISABLE KEYS */"),
            Statement::Ignored
        );
        assert_eq!(classify(b"\n-- x\n"), Statement::Ignored);
        assert!(matches!(
            rows(b"INSERT INTO t VALUES (1, NOW())"),
            Err(ParseError::Unsupported(_))
        ));
        assert!(matches!(
            rows(b"INSERT INTO t VALUES (1,2) (3)"),
            Err(ParseError::Syntax { .. })
        ));
        assert!(matches!(
            rows(b"INSERT INTO t VALUES ()"),
            Err(ParseError::Unsupported(_))
        ));
    }

    #[test]
    fn settings_at_head() {
        let h = b"/*!40101 SET NAMES binary*/;\n/*!40103 SET TIME_ZONE='+00:00' */;\nINSERT INTO t VALUES (1);\n";
        assert_eq!(head_settings(h, true).len(), 2);
    }
}
