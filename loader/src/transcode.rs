//! Turning a chunk of a data file into what the target runs: `LOAD DATA` streams (or batched
//! INSERTs), in file order, plus the session statements the file carries.
//!
//! The `LOAD DATA` stream format is fixed: fields separated by `,`, strings enclosed in `'`,
//! backslash escapes, `\N` for NULL, one row per `\n`. Single-quoted SQL strings are copied into
//! it as they are — their escapes mean the same there — so an SQL dump is mostly memcpy.
//!
//! Steps are handed to a [`StepSink`] as they are made, in pieces of about [`StepSink::piece`]
//! bytes, not as one whole chunk: the worker feeds each piece to the target while the next one is
//! transcoded, so a chunk in flight holds its raw bytes and a few pieces, not a second copy of
//! itself. Pieces are cut only between statements (SQL) or records (CSV), because an INSERT that
//! turns out not to be rows this reader handles takes back the rows it already added. Two
//! consecutive `Load` steps with the same columns and charset belong to one `LOAD DATA` stream:
//! the sink may send them as one statement.

use crate::sql::{self, ParseError, Statement, Value};
use ferry_shared::csv::CsvDialect;
use std::borrow::Cow;

/// What to do with one chunk's rows.
#[derive(Debug)]
pub enum Step {
    /// A `LOAD DATA` stream: rows for `columns`, in the stream format above.
    Load {
        columns: Vec<String>,
        charset: String,
        data: Vec<u8>,
        rows: u64,
    },
    /// A statement to run as it is (session settings, INSERTs this reader cannot turn into
    /// rows, or batched INSERTs with `--method insert`).
    Exec { sql: Vec<u8>, rows: u64 },
}

/// How rows map to the target table.
#[derive(Debug, Clone)]
pub struct TableShape {
    /// `db`.`table` on the target.
    pub qualified: String,
    /// The dump's column order, for INSERTs without a column list and CSV files without a
    /// header.
    pub columns: Vec<String>,
    /// Target columns of type BIT (numbers become their bytes in a LOAD DATA stream).
    pub bit_columns: Vec<String>,
    /// Target columns whose binary form differs from their text (INET4, INET6, UUID): a binary
    /// stream gives them their value as text.
    pub typed_text_columns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    LoadData,
    Insert,
}

#[derive(Debug, Clone)]
pub struct TranscodeOptions {
    pub method: Method,
    /// Charset of the data when the file does not say (`SET NAMES`).
    pub charset: String,
    /// Reject strings that are not valid UTF-8.
    pub validate_utf8: bool,
    /// INSERT batches are closed at about this size.
    pub insert_batch: usize,
    /// `REPLACE`/`IGNORE` keyword for INSERT batches (LOAD DATA gets its own).
    pub insert_verb: &'static str,
    /// Backslashes escape in SQL strings (false under NO_BACKSLASH_ESCAPES).
    pub sql_backslash: bool,
    /// The longest statement the target accepts (its max_allowed_packet).
    pub max_statement: usize,
}

fn too_long(offset: usize, len: usize, opts: &TranscodeOptions) -> ChunkError {
    err(
        offset,
        format!(
            "a row of {len} bytes does not fit in one statement under the target's max_allowed_packet ({} bytes): raise max_allowed_packet on the target, or load with --method load-data",
            opts.max_statement
        ),
    )
}

/// An error at a byte offset within the chunk.
#[derive(Debug)]
pub struct ChunkError {
    pub offset: usize,
    pub message: String,
}

fn err(offset: usize, message: impl Into<String>) -> ChunkError {
    ChunkError {
        offset,
        message: message.into(),
    }
}

/// Where a chunk's steps go, in order, as they are made.
pub struct StepSink<'s> {
    /// Steps are handed on once they hold about this many bytes (at a statement or record end);
    /// `usize::MAX` keeps the whole chunk's steps until the end.
    pub piece: usize,
    pub send: &'s mut dyn FnMut(Step) -> Result<(), ChunkError>,
}

/// Builds steps in order, merging consecutive rows with the same columns into one stream, and
/// hands them to the sink a piece at a time.
struct StepBuilder<'o, 's> {
    opts: &'o TranscodeOptions,
    sink: &'o mut StepSink<'s>,
    /// Capacity for a new stream: about a piece (or the chunk, if smaller), allocated once.
    first_hint: usize,
    hint: usize,
    steps: Vec<Step>,
    insert_prefix: Vec<u8>,
}

impl<'o, 's> StepBuilder<'o, 's> {
    fn new(opts: &'o TranscodeOptions, sink: &'o mut StepSink<'s>, data_len: usize) -> Self {
        let grown = data_len + data_len / 8 + 1024;
        let hint = grown.min(sink.piece.saturating_add(sink.piece / 8));
        StepBuilder {
            opts,
            sink,
            first_hint: hint,
            hint,
            steps: Vec::new(),
            insert_prefix: Vec::new(),
        }
    }

    /// Hands the steps made so far to the sink if they hold a piece's worth. Call only where
    /// no step will be taken back (after a statement or a record).
    fn flush_if_full(&mut self) -> Result<(), ChunkError> {
        let held: usize = self
            .steps
            .iter()
            .map(|s| match s {
                Step::Load { data, .. } => data.len(),
                Step::Exec { sql, .. } => sql.len(),
            })
            .sum();
        if held >= self.sink.piece {
            self.finish()?;
        }
        Ok(())
    }

    /// Hands every step made so far to the sink.
    fn finish(&mut self) -> Result<(), ChunkError> {
        for step in self.steps.drain(..) {
            (self.sink.send)(step)?;
        }
        self.insert_prefix.clear();
        self.hint = self.first_hint;
        Ok(())
    }

    /// The open LOAD stream for `columns`, starting a new one when needed.
    fn load_stream(&mut self, columns: &[String], charset: &str) -> (&mut Vec<u8>, &mut u64) {
        let reuse = matches!(self.steps.last(), Some(Step::Load { columns: c, charset: cs, .. }) if c == columns && cs == charset);
        if !reuse {
            // Later streams of the same chunk are rare and small.
            let cap = self.hint;
            self.hint = self.hint.min(1 << 16);
            self.steps.push(Step::Load {
                columns: columns.to_vec(),
                charset: charset.to_string(),
                data: Vec::with_capacity(cap),
                rows: 0,
            });
        }
        match self.steps.last_mut() {
            Some(Step::Load { data, rows, .. }) => (data, rows),
            _ => unreachable!("a Load step was just pushed"),
        }
    }

    /// Appends one tuple's text to an INSERT batch for `columns`.
    fn insert_row(&mut self, shape: &TableShape, columns: &[String], tuple: &[u8]) {
        let mut prefix = format!("{} INTO {} (", self.opts.insert_verb, shape.qualified);
        for (i, c) in columns.iter().enumerate() {
            if i > 0 {
                prefix.push(',');
            }
            prefix.push_str(&ferry_shared::ident::quote_ident(c));
        }
        prefix.push_str(") VALUES ");
        let reuse = self.insert_prefix == prefix.as_bytes()
            && matches!(self.steps.last(), Some(Step::Exec { sql, .. }) if sql.len() + tuple.len() < self.opts.insert_batch && sql.starts_with(prefix.as_bytes()));
        if reuse {
            if let Some(Step::Exec { sql, rows }) = self.steps.last_mut() {
                sql.push(b',');
                sql.extend_from_slice(tuple);
                *rows += 1;
            }
        } else {
            let mut sql = prefix.clone().into_bytes();
            sql.extend_from_slice(tuple);
            self.insert_prefix = prefix.into_bytes();
            self.steps.push(Step::Exec { sql, rows: 1 });
        }
    }

    fn exec(&mut self, sql: Vec<u8>, rows: u64) {
        self.insert_prefix.clear();
        self.steps.push(Step::Exec { sql, rows });
    }
}

/// Appends `bytes` as an enclosed field of the stream.
#[inline]
pub fn push_load_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 2);
    out.push(b'\'');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc = match b {
            b'\\' => b'\\',
            b'\'' => b'\'',
            0 => b'0',
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\\');
        out.push(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\'');
}

/// A SQL literal for `bytes` (for INSERT statements).
fn push_sql_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'\'');
    ferry_shared::ident::escape_backslash(bytes, out);
    out.push(b'\'');
}

fn number_to_bit_bytes(n: &[u8]) -> Option<Vec<u8>> {
    let v: u64 = std::str::from_utf8(n).ok()?.parse().ok()?;
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|x| **x == 0).count().min(7);
    Some(b[skip..].to_vec())
}

fn names_charset(setting: &str) -> Option<String> {
    let lower = setting.to_ascii_lowercase();
    let at = lower.find("set names")?;
    let rest = setting[at + 9..].trim_start();
    let cs: String = rest
        .trim_start_matches(['\'', '"', '`'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!cs.is_empty()).then(|| cs.to_ascii_lowercase())
}

/// Which of `columns` are BIT columns, cached per column list (a file repeats the same one).
fn bit_flags(
    cache: &mut Vec<(Vec<String>, Vec<bool>)>,
    columns: &[String],
    shape: &TableShape,
) -> Vec<bool> {
    if let Some((_, v)) = cache.iter().find(|(c, _)| c == columns) {
        return v.clone();
    }
    let v: Vec<bool> = columns
        .iter()
        .map(|c| shape.bit_columns.iter().any(|b| b.eq_ignore_ascii_case(c)))
        .collect();
    cache.push((columns.to_vec(), v.clone()));
    v
}

/// Refuses a string value that is not UTF-8 (the file is read as utf8mb4).
fn check_utf8(vals: &[Value<'_>], offset: usize) -> Result<(), ParseError> {
    for v in vals {
        let text = match v {
            Value::Plain(s) => Some(&s[..]),
            Value::Text(t) => Some(&t[..]),
            _ => None,
        };
        if let Some(Err(e)) = text.map(std::str::from_utf8) {
            return Err(ParseError::Syntax {
                offset,
                message: format!("invalid UTF-8 in a string (byte {} of the value): the file is not utf8mb4; set --character-set", e.valid_up_to()),
            });
        }
    }
    Ok(())
}

/// One row of a LOAD DATA stream: values separated by `,`, NULL as `\N`, BIT numbers as bytes.
fn push_load_row(out: &mut Vec<u8>, vals: &[Value<'_>], bits: &[bool]) {
    for (i, v) in vals.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        match v {
            Value::Null => out.extend_from_slice(b"\\N"),
            Value::Number(n) if bits[i] => match number_to_bit_bytes(n) {
                Some(bytes) => push_load_bytes(out, &bytes),
                None => out.extend_from_slice(n),
            },
            Value::Number(n) => out.extend_from_slice(n),
            Value::Plain(s) => {
                out.push(b'\'');
                out.extend_from_slice(s);
                out.push(b'\'');
            }
            Value::Bytes(bytes) | Value::Text(bytes) => push_load_bytes(out, bytes),
        }
    }
    out.push(b'\n');
}

/// Transcodes a chunk of an SQL data file into `sink`; returns its rows. `prelude` holds the
/// file's head settings (for chunks after the first).
pub fn sql_chunk(
    data: &[u8],
    prelude: &[String],
    shape: &TableShape,
    opts: &TranscodeOptions,
    sink: &mut StepSink<'_>,
) -> Result<u64, ChunkError> {
    let mut b = StepBuilder::new(opts, sink, data.len());
    let mut charset = opts.charset.clone();
    for p in prelude {
        if let Some(cs) = names_charset(p) {
            charset = cs;
        }
        b.exec(p.clone().into_bytes(), 0);
    }
    let bit_idx_cache: &mut Vec<(Vec<String>, Vec<bool>)> = &mut Vec::new();
    let mut total_rows = 0u64;
    let mut at = 0usize;
    let mut values: Vec<Value<'_>> = Vec::new();
    while at < data.len() {
        let (end, open) = crate::scan::next_statement_end(data, at, opts.sql_backslash);
        if open {
            return Err(err(at, "a statement with an unclosed quote or comment"));
        }
        let stmt = &data[at..end];
        match sql::classify(stmt) {
            Statement::Ignored => {}
            Statement::Setting(s) => {
                if let Some(cs) = names_charset(s) {
                    charset = cs;
                }
                b.exec(s.as_bytes().to_vec(), 0);
            }
            Statement::Other => {
                let text = String::from_utf8_lossy(&stmt[..stmt.len().min(80)]);
                return Err(err(
                    at,
                    format!(
                        "unexpected statement in a data file: `{}`",
                        text.trim().replace('\n', " ")
                    ),
                ));
            }
            Statement::Insert(ins) => {
                let columns: Vec<String> =
                    ins.columns.clone().unwrap_or_else(|| shape.columns.clone());
                let bits = bit_flags(bit_idx_cache, &columns, shape);
                let width = columns.len();
                let verb_ok = !ins.replace && !ins.ignore;
                let mark = b.steps.len();
                let saved = match b.steps.last() {
                    Some(Step::Load { data, rows, .. }) => Some((data.len(), *rows)),
                    _ => None,
                };
                let mut stmt_rows = 0u64;
                let result = if ins.columns.as_ref().is_some_and(|c| c.is_empty()) {
                    Err(ParseError::Unsupported("an empty column list".into()))
                } else {
                    sql::for_each_tuple(
                        stmt,
                        ins.values_at,
                        opts.sql_backslash,
                        &mut values,
                        |vals, span| {
                            if vals.len() != width {
                                return Err(ParseError::Syntax {
                                    offset: span.0,
                                    message: format!(
                                        "a row with {} values; {} has {} columns here ({})",
                                        vals.len(),
                                        shape.qualified,
                                        width,
                                        columns.join(", ")
                                    ),
                                });
                            }
                            if opts.validate_utf8 {
                                check_utf8(vals, span.0)?;
                            }
                            stmt_rows += 1;
                            if !verb_ok {
                                // Checked row by row; the statement itself runs as it is.
                                return Ok(());
                            }
                            if opts.method == Method::Insert {
                                b.insert_row(shape, &columns, &stmt[span.0..span.1]);
                                return Ok(());
                            }
                            let (out, rows) = b.load_stream(&columns, &charset);
                            push_load_row(out, vals, &bits);
                            *rows += 1;
                            Ok(())
                        },
                    )
                };
                let result = match result {
                    // REPLACE / INSERT IGNORE keep their own conflict handling.
                    Ok(()) if !verb_ok => Err(ParseError::Unsupported("REPLACE/IGNORE".into())),
                    r => r,
                };
                match result {
                    Ok(()) => total_rows += stmt_rows,
                    Err(ParseError::Syntax { offset, message }) => {
                        return Err(err(at + offset, message));
                    }
                    Err(ParseError::Unsupported(why)) => {
                        // Undo this statement's rows, then run it as it is, on the target
                        // table (names come from the file name, not the statement).
                        b.steps.truncate(mark);
                        if let (Some((len, rows)), Some(Step::Load { data, rows: r, .. })) =
                            (saved, b.steps.last_mut())
                        {
                            data.truncate(len);
                            *r = rows;
                        }
                        tracing::debug!(reason = %why, "running an INSERT as it is");
                        let mut sql = stmt[..ins.table_span.0].to_vec();
                        sql.extend_from_slice(shape.qualified.as_bytes());
                        sql.extend_from_slice(&stmt[ins.table_span.1..]);
                        if sql.len() > opts.max_statement {
                            return Err(too_long(at, sql.len(), opts));
                        }
                        let rows = count_tuples(stmt, ins.values_at);
                        total_rows += rows;
                        b.exec(sql, rows);
                    }
                }
            }
        }
        at = end;
        b.flush_if_full()?;
    }
    b.finish()?;
    Ok(total_rows)
}

/// Rows of an INSERT counted by its top-level tuples (for statements run as they are).
fn count_tuples(stmt: &[u8], values_at: usize) -> u64 {
    if values_at == usize::MAX {
        return 0;
    }
    let mut depth = 0i32;
    let mut n = 0u64;
    let mut i = values_at;
    while i < stmt.len() {
        match stmt[i] {
            b'\'' | b'"' | b'`' => {
                let q = stmt[i];
                i += 1;
                while i < stmt.len() && stmt[i] != q {
                    if stmt[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'(' => {
                if depth == 0 {
                    n += 1;
                }
                depth += 1;
            }
            b')' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    n
}

fn unescape_csv(b: u8) -> u8 {
    match b {
        b'0' => 0,
        b'b' => 8,
        b'n' => b'\n',
        b'r' => b'\r',
        b't' => b'\t',
        b'Z' => 0x1a,
        other => other,
    }
}

/// Parses CSV records of `data`, calling `row` with each record's fields (None = NULL) and the
/// record's start offset.
pub fn for_each_csv_record(
    data: &[u8],
    f: &CsvDialect,
    mut row: impl FnMut(&[Option<Cow<'_, [u8]>>], usize) -> Result<(), ChunkError>,
) -> Result<(), ChunkError> {
    let separator = f.separator.as_bytes();
    let quote = f.quote();
    let null = f.null_value.as_bytes();
    let mut fields: Vec<Option<Cow<'_, [u8]>>> = Vec::new();
    let mut i = 0usize;
    let n = data.len();
    while i < n {
        let rec_start = i;
        // Blank lines (also a lone CR) are not records.
        if data[i] == b'\n' {
            i += 1;
            continue;
        }
        if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
            i += 2;
            continue;
        }
        fields.clear();
        loop {
            // One field at i.
            if quote.is_some() && data.get(i) == quote.as_ref() {
                let q = data[i];
                let open = i;
                i += 1;
                let mut val: Vec<u8> = Vec::new();
                loop {
                    let found = if f.escape_backslash {
                        memchr::memchr2(q, b'\\', &data[i..])
                    } else {
                        memchr::memchr(q, &data[i..])
                    };
                    let Some(k) = found else {
                        return Err(err(open, "a quoted field that is never closed"));
                    };
                    val.extend_from_slice(&data[i..i + k]);
                    let p = i + k;
                    if data[p] == b'\\' {
                        let Some(&e) = data.get(p + 1) else {
                            return Err(err(open, "a quoted field that is never closed"));
                        };
                        val.push(unescape_csv(e));
                        i = p + 2;
                    } else if data.get(p + 1) == Some(&q) {
                        val.push(q);
                        i = p + 2;
                    } else {
                        i = p + 1;
                        break;
                    }
                }
                fields.push(Some(Cow::Owned(val)));
            } else {
                let start = i;
                let mut owned: Option<Vec<u8>> = None;
                while i < n {
                    let c = data[i];
                    if c == b'\n' || data[i..].starts_with(separator) {
                        break;
                    }
                    if f.escape_backslash && c == b'\\' && i + 1 < n {
                        let o = owned.get_or_insert_with(|| data[start..i].to_vec());
                        let e = data[i + 1];
                        o.push(if e == b'N' { b'N' } else { unescape_csv(e) });
                        i += 2;
                        continue;
                    }
                    if let Some(o) = owned.as_mut() {
                        o.push(c);
                    }
                    i += 1;
                }
                let mut raw = &data[start..i];
                let at_line_end = i >= n || data[i] == b'\n';
                if at_line_end && raw.ends_with(b"\r") {
                    raw = &raw[..raw.len() - 1];
                    if let Some(o) = owned.as_mut() {
                        o.pop();
                    }
                }
                if raw == null {
                    fields.push(None);
                } else {
                    fields.push(Some(match owned {
                        Some(o) => Cow::Owned(o),
                        None => Cow::Borrowed(raw),
                    }));
                }
            }
            // After a field: separator, line end, or end of data.
            if i >= n {
                break;
            }
            if data[i..].starts_with(separator) {
                i += separator.len();
                continue;
            }
            if data[i] == b'\r' && data.get(i + 1) == Some(&b'\n') {
                i += 2;
                break;
            }
            if data[i] == b'\n' {
                i += 1;
                break;
            }
            return Err(err(
                i,
                format!(
                    "unexpected `{}` after a closing quote (expected the separator or a line end)",
                    String::from_utf8_lossy(&data[i..(i + 8).min(n)])
                ),
            ));
        }
        row(&fields, rec_start)?;
    }
    Ok(())
}

/// Splits a CSV header line into column names.
pub fn csv_header(line: &[u8], f: &CsvDialect) -> Result<Vec<String>, ChunkError> {
    let mut names = Vec::new();
    for_each_csv_record(line, f, |fields, _| {
        for fl in fields {
            let v = fl.as_deref().unwrap_or(b"\\N");
            names.push(String::from_utf8_lossy(v).trim().to_string());
        }
        Ok(())
    })?;
    Ok(names)
}

/// Transcodes a chunk of a CSV file into `sink`; returns its rows.
pub fn csv_chunk(
    data: &[u8],
    f: &CsvDialect,
    columns: &[String],
    shape: &TableShape,
    opts: &TranscodeOptions,
    sink: &mut StepSink<'_>,
) -> Result<u64, ChunkError> {
    let mut b = StepBuilder::new(opts, sink, data.len());
    let width = columns.len();
    let typed: Vec<bool> = columns
        .iter()
        .map(|c| {
            opts.charset == "binary"
                && shape
                    .typed_text_columns
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(c))
        })
        .collect();
    let mut total = 0u64;
    let mut tuple = Vec::new();
    for_each_csv_record(data, f, |fields, at| {
        if fields.len() != width {
            return Err(err(
                at,
                format!(
                    "a row with {} fields; {} has {} columns here ({})",
                    fields.len(),
                    shape.qualified,
                    width,
                    columns.join(", ")
                ),
            ));
        }
        if opts.validate_utf8 {
            for v in fields.iter().flatten() {
                if let Err(e) = std::str::from_utf8(v) {
                    return Err(err(
                        at,
                        format!("invalid UTF-8 in a field (byte {} of the value): the file is not utf8mb4; set --character-set", e.valid_up_to()),
                    ));
                }
            }
        }
        total += 1;
        if opts.method == Method::Insert {
            tuple.clear();
            tuple.push(b'(');
            for (i, v) in fields.iter().enumerate() {
                if i > 0 {
                    tuple.push(b',');
                }
                match v {
                    None => tuple.extend_from_slice(b"NULL"),
                    Some(v) => {
                        if typed[i] {
                            // INET6/UUID take a binary string as their 16-byte form.
                            tuple.extend_from_slice(b"_latin1");
                        }
                        push_sql_bytes(&mut tuple, v)
                    }
                }
            }
            tuple.push(b')');
            if tuple.len() + 1024 > opts.max_statement {
                return Err(too_long(at, tuple.len(), opts));
            }
            b.insert_row(shape, columns, &tuple);
            return b.flush_if_full();
        }
        let (out, rows) = b.load_stream(columns, &opts.charset);
        for (i, v) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match v {
                None => out.extend_from_slice(b"\\N"),
                Some(v) => push_load_bytes(out, v),
            }
        }
        out.push(b'\n');
        *rows += 1;
        b.flush_if_full()
    })?;
    b.finish()?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn shape() -> TableShape {
        TableShape {
            qualified: "`d`.`t`".into(),
            columns: vec!["a".into(), "b".into()],
            bit_columns: vec!["b".into()],
            typed_text_columns: Vec::new(),
        }
    }

    /// Runs a transcoder with a sink that keeps every step (pieces of `piece` bytes).
    fn collect(
        piece: usize,
        f: impl FnOnce(&mut StepSink<'_>) -> Result<u64, ChunkError>,
    ) -> Result<(Vec<Step>, u64), ChunkError> {
        let mut steps = Vec::new();
        let mut send = |s| {
            steps.push(s);
            Ok(())
        };
        let rows = f(&mut StepSink {
            piece,
            send: &mut send,
        })?;
        Ok((steps, rows))
    }

    fn opts(method: Method) -> TranscodeOptions {
        TranscodeOptions {
            method,
            charset: "utf8mb4".into(),
            validate_utf8: true,
            insert_batch: 1 << 20,
            insert_verb: "INSERT",
            sql_backslash: true,
            max_statement: 1 << 20,
        }
    }

    #[test]
    fn sql_to_load_stream() {
        let data = b"/*!40101 SET NAMES binary*/;\nINSERT INTO `x` VALUES (1,5),('a\\'b',x'00ff');\nINSERT INTO `x` (`b`) VALUES (NULL);";
        let (steps, rows) = collect(usize::MAX, |k| {
            sql_chunk(data, &[], &shape(), &opts(Method::LoadData), k)
        })
        .unwrap();
        assert_eq!(rows, 3);
        assert_eq!(steps.len(), 3);
        match &steps[1] {
            Step::Load {
                data,
                rows,
                charset,
                ..
            } => {
                assert_eq!(charset, "binary");
                assert_eq!(*rows, 2);
                assert_eq!(data, b"1,'\x05'\n'a\\'b','\\0\xff'\n");
            }
            s => panic!("{s:?}"),
        }
        match &steps[2] {
            Step::Load { columns, data, .. } => {
                assert_eq!(columns, &["b".to_string()]);
                assert_eq!(data, b"\\N\n");
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn sql_fallback_and_errors() {
        let data = b"INSERT INTO `x` VALUES (1,NOW()),(2,3);";
        let (steps, rows) = collect(usize::MAX, |k| {
            sql_chunk(data, &[], &shape(), &opts(Method::LoadData), k)
        })
        .unwrap();
        assert_eq!(rows, 2);
        match &steps[0] {
            Step::Exec { sql, rows } => {
                assert_eq!(*rows, 2);
                assert!(
                    sql.starts_with(b"INSERT INTO `d`.`t` VALUES"),
                    "{}",
                    String::from_utf8_lossy(sql)
                );
            }
            s => panic!("{s:?}"),
        }
        for stmt in [
            &b"INSERT INTO t () VALUES (), ();"[..],
            b"INSERT INTO t VALUES (),();",
        ] {
            let (steps, rows) = collect(usize::MAX, |k| {
                sql_chunk(stmt, &[], &shape(), &opts(Method::LoadData), k)
            })
            .unwrap();
            assert_eq!(rows, 2, "{}", String::from_utf8_lossy(stmt));
            assert!(matches!(&steps[0], Step::Exec { rows: 2, .. }));
        }
        let e = collect(usize::MAX, |k| {
            sql_chunk(
                b"\nINSERT INTO x VALUES (1);",
                &[],
                &shape(),
                &opts(Method::LoadData),
                k,
            )
        })
        .unwrap_err();
        assert_eq!(e.offset, 22);
        assert!(e.message.contains("1 values"), "{}", e.message);
        let e = collect(usize::MAX, |k| {
            sql_chunk(
                b"INSERT INTO x VALUES (1,'\xff');",
                &[],
                &shape(),
                &opts(Method::LoadData),
                k,
            )
        })
        .unwrap_err();
        assert!(e.message.contains("UTF-8"));
        let (steps, _) = collect(usize::MAX, |k| {
            sql_chunk(
                b"INSERT INTO x VALUES (1,2),(3,4);",
                &[],
                &shape(),
                &opts(Method::Insert),
                k,
            )
        })
        .unwrap();
        match &steps[0] {
            Step::Exec { sql, rows } => {
                assert_eq!(*rows, 2);
                assert_eq!(sql, b"INSERT INTO `d`.`t` (`a`,`b`) VALUES (1,2),(3,4)");
            }
            s => panic!("{s:?}"),
        }
    }

    #[test]
    fn csv_dialects() {
        let f = CsvDialect {
            separator: ",".into(),
            delimiter: "\"".into(),
            escape_backslash: true,
            null_value: "\\N".into(),
            header: false,
            line_terminator: "\n".into(),
        };
        let data = b"1,\"a\"\"b\"\r\n\\N,\"x\\\\y\nz\"\n\n2,plain\\,comma\r\n";
        let mut got = Vec::new();
        for_each_csv_record(data, &f, |fields, _| {
            got.push(
                fields
                    .iter()
                    .map(|x| x.as_ref().map(|c| c.to_vec()))
                    .collect::<Vec<_>>(),
            );
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0], vec![Some(b"1".to_vec()), Some(b"a\"b".to_vec())]);
        assert_eq!(got[1], vec![None, Some(b"x\\y\nz".to_vec())]);
        assert_eq!(
            got[2],
            vec![Some(b"2".to_vec()), Some(b"plain,comma".to_vec())]
        );
        let e = collect(usize::MAX, |k| {
            csv_chunk(
                b"1,2,3\n",
                &f,
                &["a".into(), "b".into()],
                &shape(),
                &opts(Method::LoadData),
                k,
            )
        })
        .unwrap_err();
        assert!(e.message.contains("3 fields"));
        let e = for_each_csv_record(b"1,\"abc", &f, |_, _| Ok(())).unwrap_err();
        assert_eq!(e.offset, 2);

        // An empty NULL marker: an unquoted empty field is NULL, a quoted one the empty string.
        let empty_null = CsvDialect {
            null_value: String::new(),
            ..f
        };
        let mut got = Vec::new();
        for_each_csv_record(b"1,,\"\"\n", &empty_null, |fields, _| {
            got.extend(fields.iter().map(|x| x.as_ref().map(|c| c.to_vec())));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![Some(b"1".to_vec()), None, Some(Vec::new())]);
    }
}

/// The dialect and columns of a mydumper `.dat` file, from its `LOAD DATA` control statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadDataSpec {
    pub format: CsvDialect,
    pub columns: Option<Vec<String>>,
    pub charset: Option<String>,
}

/// Parses `LOAD DATA [LOCAL] INFILE '...' ... INTO TABLE t [CHARACTER SET cs] [FIELDS ...]
/// [LINES ...] [IGNORE n LINES] [(cols)]` from a control file's text.
pub fn parse_load_data(text: &[u8]) -> Result<LoadDataSpec, String> {
    let upper: Vec<u8> = text.to_ascii_uppercase();
    let find = |word: &[u8], from: usize| -> Option<usize> {
        memchr::memmem::find(&upper[from..], word).map(|k| from + k)
    };
    let start = find(b"LOAD DATA", 0).ok_or("no LOAD DATA statement")?;
    // Quoted option values: `BY 'x'`.
    let quoted_after = |kw: &[u8], from: usize, limit: usize| -> Option<Vec<u8>> {
        let at = find(kw, from).filter(|a| *a < limit)? + kw.len();
        let rest = &text[at..];
        let q0 = rest.iter().position(|c| !c.is_ascii_whitespace())?;
        let q = rest[q0];
        if q != b'\'' && q != b'"' {
            return None;
        }
        let mut j = q0 + 1;
        while j < rest.len() {
            if rest[j] == b'\\' {
                j += 2;
                continue;
            }
            if rest[j] == q {
                return Some(crate::sql::unescape(&rest[q0 + 1..j], q));
            }
            j += 1;
        }
        None
    };
    let n = text.len();
    let fields_at = find(b"FIELDS", start).or_else(|| find(b"COLUMNS", start));
    let lines_at = find(b"LINES", start);
    let fields_end = lines_at.unwrap_or(n);
    let (sep, encl, esc) = match fields_at {
        Some(f) => (
            quoted_after(b"TERMINATED BY", f, fields_end).unwrap_or_else(|| b"\t".to_vec()),
            quoted_after(b"ENCLOSED BY", f, fields_end).unwrap_or_default(),
            quoted_after(b"ESCAPED BY", f, fields_end).unwrap_or_else(|| b"\\".to_vec()),
        ),
        None => (b"\t".to_vec(), Vec::new(), b"\\".to_vec()),
    };
    let mut terminator = "\n";
    if let Some(l) = lines_at {
        let term = quoted_after(b"TERMINATED BY", l, n).unwrap_or_else(|| b"\n".to_vec());
        if term == b"\r\n" {
            terminator = "\r\n";
        } else if term != b"\n" {
            return Err("LINES TERMINATED BY other than \\n or \\r\\n is not supported".into());
        }
        if quoted_after(b"STARTING BY", l, n).is_some_and(|s| !s.is_empty()) {
            return Err("LINES STARTING BY is not supported".into());
        }
    }
    if !esc.is_empty() && esc != b"\\" {
        return Err("ESCAPED BY other than '\\\\' or '' is not supported".into());
    }
    if encl.len() > 1 || sep.is_empty() {
        return Err("unsupported FIELDS options".into());
    }
    let charset = find(b"CHARACTER SET", start).map(|c| {
        let rest = &text[c + 13..];
        let w: String = String::from_utf8_lossy(rest)
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        w.to_ascii_lowercase()
    });
    // The column list: the last parenthesised group after INTO TABLE.
    let into = find(b"INTO TABLE", start).ok_or("no INTO TABLE")?;
    let columns = match memchr::memrchr(b'(', &text[into..]) {
        Some(k) => {
            let open = into + k;
            let close = memchr::memchr(b')', &text[open..])
                .map(|c| open + c)
                .ok_or("unclosed column list")?;
            let mut cols = Vec::new();
            let mut i = open + 1;
            loop {
                while i < close && (text[i].is_ascii_whitespace() || text[i] == b',') {
                    i += 1;
                }
                if i >= close {
                    break;
                }
                let (name, end) = crate::sql::read_ident(text, i).ok_or("bad column list")?;
                cols.push(name);
                i = end;
            }
            Some(cols)
        }
        None => None,
    };
    Ok(LoadDataSpec {
        format: CsvDialect {
            separator: String::from_utf8(sep).map_err(|_| "FIELDS TERMINATED BY is not UTF-8")?,
            delimiter: String::from_utf8(encl).map_err(|_| "ENCLOSED BY is not UTF-8")?,
            // SELECT ... INTO OUTFILE writes NULL as `\N`, or as `NULL` without an escape.
            null_value: if esc.is_empty() { "NULL" } else { "\\N" }.into(),
            header: find(b"IGNORE 1 LINES", start).is_some(),
            escape_backslash: !esc.is_empty(),
            line_terminator: terminator.into(),
        },
        columns,
        charset,
    })
}

#[cfg(test)]
mod load_data_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn mydumper_control_statement() {
        let s = b"/*!40101 SET NAMES binary*/;\nLOAD DATA LOCAL INFILE 'db.t.00000.dat' REPLACE INTO TABLE `t` CHARACTER SET binary FIELDS TERMINATED BY ',' ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES STARTING BY '' TERMINATED BY '\\n' (`id`,`k`,`c`);\n";
        let spec = parse_load_data(s).unwrap();
        assert_eq!(spec.format.separator, ",");
        assert_eq!(spec.format.quote(), Some(b'"'));
        assert!(spec.format.escape_backslash);
        assert_eq!(spec.columns.unwrap(), vec!["id", "k", "c"]);
        assert_eq!(spec.charset.as_deref(), Some("binary"));
        assert!(
            parse_load_data(b"LOAD DATA INFILE 'x' INTO TABLE t LINES TERMINATED BY ';'").is_err()
        );
    }
}
