//! Row encoders: multi-row INSERT statements and CSV lines, byte-compatible with Dumpling.
//!
//! Values arrive as the server's text form (`SET NAMES binary`: the bytes as stored). An encoder
//! only appends to a caller-owned buffer; statement and file boundaries are decided by
//! [`crate::writer::ChunkWriter`], which asks [`RowEncoder::begin_file`]/[`RowEncoder::end_file`].

use crate::schema::{TableInfo, ValueKind};
use ferry_shared::csv::CsvDialect;
use ferry_shared::ident::{escape_backslash, quote_ident};

/// Settings of the SQL format.
#[derive(Debug, Clone)]
pub struct SqlOptions {
    /// Close an INSERT once it holds this many bytes (Dumpling's `--statement-size`).
    pub statement_size: u64,
    /// Always write the column list (`INSERT INTO t (a,b) VALUES`).
    pub complete_insert: bool,
    /// Backslash escapes (default) or quote doubling only.
    pub escape_backslash: bool,
}

pub enum RowEncoder {
    Sql(SqlEncoder),
    Csv(CsvEncoder),
}

impl RowEncoder {
    /// Bytes at the top of every data file.
    pub fn begin_file(&mut self, out: &mut Vec<u8>) {
        match self {
            RowEncoder::Sql(e) => e.begin_file(out),
            RowEncoder::Csv(e) => e.begin_file(out),
        }
    }

    pub fn encode_row(&mut self, values: &[Option<&[u8]>], out: &mut Vec<u8>) {
        match self {
            RowEncoder::Sql(e) => e.encode_row(values, out),
            RowEncoder::Csv(e) => e.encode_row(values, out),
        }
    }

    pub fn end_file(&mut self, out: &mut Vec<u8>) {
        if let RowEncoder::Sql(e) = self {
            e.end_statement(out);
        }
    }

    pub fn extension(&self) -> &'static str {
        match self {
            RowEncoder::Sql(_) => "sql",
            RowEncoder::Csv(_) => "csv",
        }
    }
}

pub struct SqlEncoder {
    header: Vec<u8>,
    prefix: Vec<u8>,
    kinds: Vec<ValueKind>,
    opts: SqlOptions,
    in_statement: bool,
    statement_bytes: u64,
}

impl SqlEncoder {
    pub fn new(table: &TableInfo, opts: SqlOptions) -> Self {
        let mut header = b"/*!40101 SET NAMES binary*/;\n".to_vec();
        if table.has_timestamp() {
            // TIMESTAMP values are printed in UTC; replaying must read them the same way.
            header.extend_from_slice(b"/*!40103 SET TIME_ZONE='+00:00' */;\n");
        }
        let mut prefix = format!("INSERT INTO {} ", quote_ident(&table.name)).into_bytes();
        if opts.complete_insert || table.has_generated() {
            let cols: Vec<String> = table.data_columns().map(|c| quote_ident(&c.name)).collect();
            prefix.extend_from_slice(format!("({}) ", cols.join(",")).as_bytes());
        }
        prefix.extend_from_slice(b"VALUES\n");
        Self {
            header,
            prefix,
            kinds: table.data_columns().map(|c| c.kind).collect(),
            opts,
            in_statement: false,
            statement_bytes: 0,
        }
    }

    fn begin_file(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header);
    }

    fn end_statement(&mut self, out: &mut Vec<u8>) {
        if self.in_statement {
            out.extend_from_slice(b";\n");
            self.in_statement = false;
        }
    }

    fn encode_row(&mut self, values: &[Option<&[u8]>], out: &mut Vec<u8>) {
        if self.in_statement {
            out.extend_from_slice(b",\n");
        } else {
            out.extend_from_slice(&self.prefix);
            self.statement_bytes = self.prefix.len() as u64;
            self.in_statement = true;
        }
        let start = out.len();
        out.push(b'(');
        for (i, (v, kind)) in values.iter().zip(&self.kinds).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match v {
                None => out.extend_from_slice(b"NULL"),
                Some(b) => self.encode_value(*kind, b, out),
            }
        }
        out.push(b')');
        self.statement_bytes += (out.len() - start) as u64 + 2;
        if self.statement_bytes >= self.opts.statement_size {
            self.end_statement(out);
        }
    }

    #[inline]
    fn encode_value(&self, kind: ValueKind, b: &[u8], out: &mut Vec<u8>) {
        match kind {
            ValueKind::Number | ValueKind::Float => out.extend_from_slice(b),
            ValueKind::Binary => {
                out.extend_from_slice(b"x'");
                push_hex(b, out);
                out.push(b'\'');
            }
            ValueKind::Text | ValueKind::TypedText => {
                if kind == ValueKind::TypedText {
                    out.extend_from_slice(b"_latin1");
                }
                out.push(b'\'');
                if self.opts.escape_backslash {
                    escape_backslash(b, out);
                } else {
                    double_byte(b, b'\'', out);
                }
                out.push(b'\'');
            }
        }
    }
}

#[inline]
fn push_hex(b: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(b.len() * 2);
    for &x in b {
        out.push(HEX[(x >> 4) as usize]);
        out.push(HEX[(x & 15) as usize]);
    }
}

fn double_byte(b: &[u8], q: u8, out: &mut Vec<u8>) {
    for &x in b {
        out.push(x);
        if x == q {
            out.push(q);
        }
    }
}

pub struct CsvEncoder {
    dialect: CsvDialect,
    kinds: Vec<ValueKind>,
    header_line: Vec<u8>,
    /// The byte escaped with a backslash besides `\0 \r \n \\`: the delimiter's first byte, or
    /// the separator's when there is no delimiter.
    special: Option<u8>,
}

impl CsvEncoder {
    pub fn new(table: &TableInfo, dialect: CsvDialect) -> Self {
        let special = dialect
            .delimiter
            .as_bytes()
            .first()
            .or_else(|| dialect.separator.as_bytes().first())
            .copied();
        let mut enc = Self {
            kinds: table.data_columns().map(|c| c.kind).collect(),
            header_line: Vec::new(),
            special,
            dialect,
        };
        if enc.dialect.header {
            let mut line = Vec::new();
            for (i, c) in table.data_columns().enumerate() {
                if i > 0 {
                    line.extend_from_slice(enc.dialect.separator.as_bytes());
                }
                enc.quoted(c.name.as_bytes(), &mut line);
            }
            line.extend_from_slice(enc.dialect.line_terminator.as_bytes());
            enc.header_line = line;
        }
        enc
    }

    fn begin_file(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header_line);
    }

    fn quoted(&self, b: &[u8], out: &mut Vec<u8>) {
        let d = self.dialect.delimiter.as_bytes();
        out.extend_from_slice(d);
        if self.dialect.escape_backslash {
            let mut last = 0;
            for (i, &x) in b.iter().enumerate() {
                let esc = match x {
                    0 => b'0',
                    b'\r' => b'r',
                    b'\n' => b'n',
                    b'\\' => b'\\',
                    _ if Some(x) == self.special => x,
                    _ => continue,
                };
                out.extend_from_slice(&b[last..i]);
                out.push(b'\\');
                out.push(esc);
                last = i + 1;
            }
            out.extend_from_slice(&b[last..]);
        } else if !d.is_empty() {
            let mut rest = b;
            while let Some(pos) = find(rest, d) {
                out.extend_from_slice(&rest[..pos]);
                out.extend_from_slice(d);
                out.extend_from_slice(d);
                rest = &rest[pos + d.len()..];
            }
            out.extend_from_slice(rest);
        } else {
            out.extend_from_slice(b);
        }
        out.extend_from_slice(d);
    }

    fn encode_row(&mut self, values: &[Option<&[u8]>], out: &mut Vec<u8>) {
        for (i, (v, kind)) in values.iter().zip(&self.kinds).enumerate() {
            if i > 0 {
                out.extend_from_slice(self.dialect.separator.as_bytes());
            }
            match v {
                None => out.extend_from_slice(self.dialect.null_value.as_bytes()),
                Some(b) => match kind {
                    ValueKind::Number | ValueKind::Float => out.extend_from_slice(b),
                    ValueKind::Text | ValueKind::TypedText | ValueKind::Binary => {
                        self.quoted(b, out)
                    }
                },
            }
        }
        out.extend_from_slice(self.dialect.line_terminator.as_bytes());
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnInfo;

    fn table(cols: &[(&str, &str)]) -> TableInfo {
        TableInfo {
            db: "d".into(),
            name: "t".into(),
            columns: cols
                .iter()
                .map(|(n, ty)| ColumnInfo {
                    name: n.to_string(),
                    data_type: ty.to_string(),
                    column_type: ty.to_string(),
                    nullable: true,
                    generated: false,
                    charset: None,
                    collation: None,
                    kind: ValueKind::from_data_type(ty, None),
                })
                .collect(),
            chunk_key: vec![],
            est_rows: 0,
            est_bytes: 0,
        }
    }

    fn b(s: &[u8]) -> Option<&[u8]> {
        Some(s)
    }

    #[test]
    fn sql_rows_and_statement_size() {
        let t = table(&[("a", "int"), ("s", "varchar"), ("g", "geometry")]);
        let mut e = SqlEncoder::new(
            &t,
            SqlOptions {
                statement_size: 50,
                complete_insert: false,
                escape_backslash: true,
            },
        );
        let mut out = Vec::new();
        e.begin_file(&mut out);
        e.encode_row(&[b(b"1"), b(b"it's\n"), None], &mut out);
        e.encode_row(&[b(b"2"), None, b(&[0, 1, 0xff])], &mut out);
        e.encode_row(&[b(b"3"), b(b""), None], &mut out);
        e.end_statement(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "/*!40101 SET NAMES binary*/;\nINSERT INTO `t` VALUES\n(1,'it\\'s\\n',NULL),\n(2,NULL,x'0001ff');\nINSERT INTO `t` VALUES\n(3,'',NULL);\n"
        );
    }

    #[test]
    fn csv_dialects() {
        let t = table(&[("a", "int"), ("s", "varchar")]);
        let dialect = CsvDialect::default();
        let mut e = CsvEncoder::new(&t, dialect.clone());
        let mut out = Vec::new();
        e.begin_file(&mut out);
        e.encode_row(&[b(b"1"), b(b"a\"b,c\\\n")], &mut out);
        e.encode_row(&[None, b(b"NULL")], &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\",\"s\"\n1,\"a\\\"b,c\\\\\\n\"\n\\N,\"NULL\"\n"
        );

        let mut e = CsvEncoder::new(
            &t,
            CsvDialect {
                escape_backslash: false,
                header: false,
                delimiter: "ma".into(),
                ..dialect
            },
        );
        let mut out = Vec::new();
        e.encode_row(&[b(b"7"), b(b"male")], &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), "7,mamamalema\n");
    }
}
