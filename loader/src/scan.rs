//! The statement scanner: finds where rows end in SQL text (statements, with quotes, backticks
//! and comments tracked) and in CSV text (records, with quoted fields tracked), incrementally
//! over a growing buffer. The splitter cuts chunks with it; the SQL reader and the schema files
//! find statement ends with [`next_statement_end`].

use ferry_shared::csv::CsvDialect;

/// The row syntax the splitter tracks.
#[derive(Debug, Clone)]
pub enum Syntax {
    /// SQL statements; `backslash`: backslashes escape inside strings (no NO_BACKSLASH_ESCAPES).
    Sql { backslash: bool },
    /// The part of a [`CsvDialect`] that decides where records end; built by [`Syntax::csv`].
    Csv {
        separator: Vec<u8>,
        /// Quote byte, if fields may be quoted.
        delimiter: Option<u8>,
        backslash_escape: bool,
        header: bool,
    },
}

impl Syntax {
    /// The record syntax of files in dialect `d`.
    pub fn csv(d: &CsvDialect) -> Self {
        Syntax::Csv {
            separator: d.separator.as_bytes().to_vec(),
            delimiter: d.quote(),
            backslash_escape: d.escape_backslash,
            header: d.header,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqlState {
    Normal,
    Single,
    Double,
    Backtick,
    LineComment,
    BlockComment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CsvState {
    FieldStart,
    Unquoted,
    Quoted,
    /// Saw the delimiter inside a quoted field: the end, or the first of a doubled pair.
    QuoteInQuoted,
}

/// The next quote byte `q` (or backslash, when backslashes escape) in `hay`.
#[inline]
fn find_quote(hay: &[u8], q: u8, backslash: bool) -> Option<usize> {
    if backslash {
        memchr::memchr2(q, b'\\', hay)
    } else {
        memchr::memchr(q, hay)
    }
}

/// Where a scan inside a quoted run stopped.
enum Quoted {
    /// Still inside the quotes: scanning goes on from here (past an escaped byte, or at the
    /// window's end).
    Open(usize),
    /// The closing quote was found; just past it.
    Closed(usize),
}

/// Scans a quoted run from `i` up to `limit` for its quote `q`, with backslash escapes when
/// `backslash`. An escaped byte is within the buffer thanks to the scanner's lookahead.
fn skip_quoted(buf: &[u8], i: usize, limit: usize, q: u8, backslash: bool) -> Quoted {
    match find_quote(&buf[i..limit], q, backslash) {
        None => Quoted::Open(limit),
        Some(k) if buf[i + k] == b'\\' => Quoted::Open(i + k + 2),
        Some(k) => Quoted::Closed(i + k + 1),
    }
}

/// Incremental boundary scanner over a growing buffer.
pub(crate) struct Scanner {
    syntax: Syntax,
    sql: SqlState,
    csv: CsvState,
    /// Offset (within the buffer) where the current quote opened, for error messages.
    quote_open: usize,
    /// Return at the first row boundary instead of the last.
    first_only: bool,
    /// Return at the first row boundary at or after this offset.
    pub(crate) stop_at: usize,
}

impl Scanner {
    pub(crate) fn new(syntax: Syntax) -> Self {
        Scanner {
            syntax,
            sql: SqlState::Normal,
            csv: CsvState::FieldStart,
            quote_open: 0,
            first_only: false,
            stop_at: usize::MAX,
        }
    }

    /// Scans `buf[from..limit]`; returns the last row boundary found (an offset just past the
    /// row's end) and the offset scanning stopped at. Stops early, before `limit`, where a
    /// two-byte token could straddle `limit` (unless `eof`).
    pub(crate) fn scan(&mut self, buf: &[u8], from: usize, eof: bool) -> (Option<usize>, usize) {
        match self.syntax.clone() {
            Syntax::Sql { backslash } => self.scan_sql(buf, from, eof, backslash),
            Syntax::Csv {
                separator,
                delimiter,
                backslash_escape,
                ..
            } => self.scan_csv(buf, from, eof, &separator, delimiter, backslash_escape),
        }
    }

    fn scan_sql(
        &mut self,
        buf: &[u8],
        from: usize,
        eof: bool,
        backslash: bool,
    ) -> (Option<usize>, usize) {
        let n = buf.len();
        // Keep one byte of lookahead unless at the end of the file.
        let limit = if eof { n } else { n.saturating_sub(1) };
        let mut last = None;
        let mut i = from;
        while i < limit {
            match self.sql {
                SqlState::Normal => {
                    let b = buf[i];
                    match b {
                        b';' => {
                            last = Some(i + 1);
                            if self.first_only || i + 1 >= self.stop_at {
                                return (last, i + 1);
                            }
                        }
                        b'\'' => {
                            self.sql = SqlState::Single;
                            self.quote_open = i;
                        }
                        b'"' => {
                            self.sql = SqlState::Double;
                            self.quote_open = i;
                        }
                        b'`' => {
                            self.sql = SqlState::Backtick;
                            self.quote_open = i;
                        }
                        b'#' => self.sql = SqlState::LineComment,
                        b'-' if buf.get(i + 1) == Some(&b'-')
                            && buf.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) =>
                        {
                            if i + 2 >= n && !eof {
                                return (last, i);
                            }
                            self.sql = SqlState::LineComment;
                            i += 1;
                        }
                        b'/' if buf.get(i + 1) == Some(&b'*') => {
                            // `/*!...*/` conditional comments hold statement text, but never
                            // a `;` of their own in dump files; treat all alike.
                            self.sql = SqlState::BlockComment;
                            self.quote_open = i;
                            i += 1;
                        }
                        _ => {}
                    }
                    i += 1;
                }
                SqlState::Single | SqlState::Double => {
                    let q = if self.sql == SqlState::Single {
                        b'\''
                    } else {
                        b'"'
                    };
                    match skip_quoted(buf, i, limit, q, backslash) {
                        Quoted::Open(at) => i = at,
                        Quoted::Closed(at) => {
                            // A doubled quote reopens at once; same as toggling twice.
                            self.sql = SqlState::Normal;
                            i = at;
                        }
                    }
                }
                SqlState::Backtick => match memchr::memchr(b'`', &buf[i..limit]) {
                    None => i = limit,
                    Some(k) => {
                        self.sql = SqlState::Normal;
                        i += k + 1;
                    }
                },
                SqlState::LineComment => match memchr::memchr(b'\n', &buf[i..limit]) {
                    None => i = limit,
                    Some(k) => {
                        self.sql = SqlState::Normal;
                        i += k + 1;
                    }
                },
                SqlState::BlockComment => match memchr::memchr(b'*', &buf[i..limit]) {
                    None => i = limit,
                    Some(k) => {
                        let j = i + k;
                        if buf.get(j + 1) == Some(&b'/') {
                            self.sql = SqlState::Normal;
                            i = j + 2;
                        } else {
                            i = j + 1;
                        }
                    }
                },
            }
        }
        (last, i.min(n))
    }

    #[allow(clippy::too_many_arguments)]
    fn scan_csv(
        &mut self,
        buf: &[u8],
        from: usize,
        eof: bool,
        separator: &[u8],
        delimiter: Option<u8>,
        backslash_escape: bool,
    ) -> (Option<usize>, usize) {
        let n = buf.len();
        let lookahead = separator.len().max(2) - 1;
        let limit = if eof { n } else { n.saturating_sub(lookahead) };
        let mut last = None;
        let mut i = from;
        while i < limit {
            let b = buf[i];
            match self.csv {
                CsvState::FieldStart | CsvState::Unquoted => {
                    if self.csv == CsvState::FieldStart && Some(b) == delimiter {
                        self.csv = CsvState::Quoted;
                        self.quote_open = i;
                        i += 1;
                        continue;
                    }
                    if b == b'\n' {
                        last = Some(i + 1);
                        self.csv = CsvState::FieldStart;
                        i += 1;
                        if i >= self.stop_at {
                            return (last, i);
                        }
                    } else if backslash_escape && b == b'\\' {
                        self.csv = CsvState::Unquoted;
                        i += 2;
                    } else if buf[i..].starts_with(separator) {
                        self.csv = CsvState::FieldStart;
                        i += separator.len();
                    } else {
                        self.csv = CsvState::Unquoted;
                        i += 1;
                    }
                }
                CsvState::Quoted => {
                    let Some(q) = delimiter else {
                        self.csv = CsvState::Unquoted;
                        continue;
                    };
                    match skip_quoted(buf, i, limit, q, backslash_escape) {
                        Quoted::Open(at) => i = at,
                        Quoted::Closed(at) => {
                            self.csv = CsvState::QuoteInQuoted;
                            i = at;
                        }
                    }
                }
                CsvState::QuoteInQuoted => {
                    if Some(b) == delimiter {
                        // A doubled quote: still inside the field.
                        self.csv = CsvState::Quoted;
                        i += 1;
                    } else {
                        // The field ended; what follows is a separator, a line end or stray
                        // bytes the parser will judge.
                        self.csv = CsvState::Unquoted;
                    }
                }
            }
        }
        if eof && self.csv == CsvState::QuoteInQuoted {
            self.csv = CsvState::Unquoted;
        }
        (last, i.min(n))
    }

    pub(crate) fn open_construct(&self) -> Option<(&'static str, usize)> {
        match (&self.syntax, self.sql, self.csv) {
            (Syntax::Sql { .. }, SqlState::Single | SqlState::Double, _) => {
                Some(("a quoted string", self.quote_open))
            }
            (Syntax::Sql { .. }, SqlState::Backtick, _) => {
                Some(("a `quoted` name", self.quote_open))
            }
            (Syntax::Sql { .. }, SqlState::BlockComment, _) => {
                Some(("a /* comment", self.quote_open))
            }
            (Syntax::Csv { .. }, _, CsvState::Quoted) => Some(("a quoted field", self.quote_open)),
            _ => None,
        }
    }

    fn in_construct(&self) -> bool {
        self.sql != SqlState::Normal && self.sql != SqlState::LineComment
    }

    pub(crate) fn rebase(&mut self, cut: usize) {
        self.quote_open = self.quote_open.saturating_sub(cut);
    }
}

/// The end of the SQL statement starting at `from` (just past its `;`, or the end of `data`),
/// and whether a quote or comment is left open at the end.
pub fn next_statement_end(data: &[u8], from: usize, backslash: bool) -> (usize, bool) {
    let mut s = Scanner::new(Syntax::Sql { backslash });
    s.first_only = true;
    match s.scan(data, from, true) {
        (Some(end), _) => (end, false),
        (None, _) => (data.len(), s.in_construct()),
    }
}
