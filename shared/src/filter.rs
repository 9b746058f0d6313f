//! Table filters in the syntax of TiDB's table-filter.
//!
//! A filter is a list of rules `db.table`; each side is a wildcard pattern (`*` any run, `?` one
//! character, `[a-z]`/`[!a-z]` a class, `\x` a literal), or a name quoted in backticks or double
//! quotes. A rule starting with `!` excludes. Rules are read in order and **the last rule that
//! matches a table decides**; a table no rule matches is excluded. Matching ignores ASCII case, as
//! MySQL does for schema and table names on most platforms.
//!
//! The system schemas (`mysql`, `sys`, `information_schema`, `performance_schema`) are excluded
//! unless a rule names them without a wildcard in its database part.

use std::fmt;

const SYSTEM_SCHEMAS: &[&str] = &[
    "mysql",
    "sys",
    "information_schema",
    "performance_schema",
    "metrics_schema",
    "inspection_schema",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid table filter rule `{rule}`: {reason} (rules look like `db.table`, `db*.*`, `!db.secret_*`)")]
pub struct FilterError {
    pub rule: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    toks: Vec<Tok>,
}

impl Pattern {
    fn is_literal(&self) -> bool {
        self.toks.iter().all(|t| matches!(t, Tok::Lit(_)))
    }

    fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().map(|c| c.to_ascii_lowercase()).collect();
        glob_match(&self.toks, &chars)
    }
}

fn glob_match(toks: &[Tok], s: &[char]) -> bool {
    // Iterative matcher with backtracking on the last `*` (linear in practice).
    let (mut ti, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        let step = match toks.get(ti) {
            Some(Tok::Any) => {
                star = Some((ti, si));
                ti += 1;
                continue;
            }
            Some(Tok::Lit(c)) => *c == s[si],
            Some(Tok::One) => true,
            Some(Tok::Class { negated, ranges }) => {
                let hit = ranges.iter().any(|&(a, b)| a <= s[si] && s[si] <= b);
                hit != *negated
            }
            None => false,
        };
        if step {
            ti += 1;
            si += 1;
        } else if let Some((st, ss)) = star {
            ti = st + 1;
            si = ss + 1;
            star = Some((st, ss + 1));
        } else {
            return false;
        }
    }
    toks[ti..].iter().all(|t| matches!(t, Tok::Any))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    exclude: bool,
    db: Pattern,
    table: Pattern,
}

/// A parsed list of filter rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFilter {
    rules: Vec<Rule>,
    source: Vec<String>,
}

impl Default for TableFilter {
    /// Everything but the system schemas.
    fn default() -> Self {
        Self::parse(&["*.*"]).unwrap_or(Self {
            rules: Vec::new(),
            source: Vec::new(),
        })
    }
}

impl fmt::Display for TableFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source.join(","))
    }
}

impl TableFilter {
    /// Parses rules; blank lines and `#` comments are ignored.
    pub fn parse<S: AsRef<str>>(rules: &[S]) -> Result<Self, FilterError> {
        let mut out = Vec::new();
        let mut source = Vec::new();
        for raw in rules {
            let raw = raw.as_ref().trim();
            if raw.is_empty() || raw.starts_with('#') {
                continue;
            }
            out.push(parse_rule(raw)?);
            source.push(raw.to_string());
        }
        Ok(Self { rules: out, source })
    }

    /// The rules as given.
    pub fn rules(&self) -> &[String] {
        &self.source
    }

    /// Does the filter let `db.table` through?
    pub fn matches_table(&self, db: &str, table: &str) -> bool {
        let decided = self
            .rules
            .iter()
            .rev()
            .find(|r| r.db.matches(db) && r.table.matches(table));
        match decided {
            Some(rule) if rule.exclude => false,
            Some(rule) => !is_system_schema(db) || rule.db.is_literal(),
            None => false,
        }
    }

    /// Could any table of `db` pass? (Used to skip whole schemas early.)
    pub fn matches_schema(&self, db: &str) -> bool {
        self.rules
            .iter()
            .any(|r| !r.exclude && r.db.matches(db) && (!is_system_schema(db) || r.db.is_literal()))
    }
}

pub fn is_system_schema(db: &str) -> bool {
    SYSTEM_SCHEMAS.iter().any(|s| s.eq_ignore_ascii_case(db))
}

fn parse_rule(raw: &str) -> Result<Rule, FilterError> {
    let err = |reason: &str| FilterError {
        rule: raw.to_string(),
        reason: reason.to_string(),
    };
    let (exclude, body) = match raw.strip_prefix('!') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, raw),
    };
    if body.starts_with('@') {
        return Err(err(
            "importing rules from a file (`@file`) is not supported; pass one -f per rule",
        ));
    }
    if body.starts_with('/') {
        return Err(err(
            "regular-expression rules (`/re/`) are not supported; use wildcards",
        ));
    }
    let chars: Vec<char> = body.chars().collect();
    let mut i = 0;
    let db = parse_pattern(&chars, &mut i, true).map_err(|r| err(&r))?;
    if chars.get(i) != Some(&'.') {
        return Err(err(
            "expected `.` between the database and the table pattern",
        ));
    }
    i += 1;
    let table = parse_pattern(&chars, &mut i, false).map_err(|r| err(&r))?;
    if i != chars.len() {
        return Err(err("unexpected text after the table pattern"));
    }
    if db.toks.is_empty() || table.toks.is_empty() {
        return Err(err("empty database or table pattern"));
    }
    Ok(Rule { exclude, db, table })
}

fn parse_pattern(c: &[char], i: &mut usize, stop_at_dot: bool) -> Result<Pattern, String> {
    let mut toks = Vec::new();
    if let Some(&q) = c.get(*i).filter(|q| **q == '`' || **q == '"') {
        // Quoted name: literal, the quote doubled inside.
        *i += 1;
        loop {
            match c.get(*i) {
                None => return Err(format!("unterminated {q}-quoted name")),
                Some(&ch) if ch == q => {
                    if c.get(*i + 1) == Some(&q) {
                        toks.push(Tok::Lit(q));
                        *i += 2;
                    } else {
                        *i += 1;
                        break;
                    }
                }
                Some(&ch) => {
                    toks.push(Tok::Lit(ch.to_ascii_lowercase()));
                    *i += 1;
                }
            }
        }
        return Ok(Pattern { toks });
    }
    while let Some(&ch) = c.get(*i) {
        if stop_at_dot && ch == '.' {
            break;
        }
        *i += 1;
        match ch {
            '*' => toks.push(Tok::Any),
            '?' => toks.push(Tok::One),
            '\\' => {
                let lit = c.get(*i).ok_or("trailing `\\`")?;
                toks.push(Tok::Lit(lit.to_ascii_lowercase()));
                *i += 1;
            }
            '[' => {
                let mut negated = false;
                if matches!(c.get(*i), Some('!') | Some('^')) {
                    negated = true;
                    *i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let a = *c.get(*i).ok_or("unterminated `[` class")?;
                    *i += 1;
                    if a == ']' && !ranges.is_empty() {
                        break;
                    }
                    let a = a.to_ascii_lowercase();
                    if c.get(*i) == Some(&'-') && c.get(*i + 1).is_some_and(|b| *b != ']') {
                        let b = c[*i + 1].to_ascii_lowercase();
                        if b < a {
                            return Err(format!("reversed range `{a}-{b}`"));
                        }
                        ranges.push((a, b));
                        *i += 2;
                    } else {
                        ranges.push((a, a));
                    }
                }
                toks.push(Tok::Class { negated, ranges });
            }
            ' ' | '\t' => return Err("whitespace inside a pattern (quote the name)".into()),
            _ => toks.push(Tok::Lit(ch.to_ascii_lowercase())),
        }
    }
    Ok(Pattern { toks })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(rules: &[&str]) -> TableFilter {
        TableFilter::parse(rules).unwrap()
    }

    #[test]
    fn later_rules_win() {
        let flt = f(&["db*.*", "!db1.secret_*", "db1.secret_ok"]);
        assert!(flt.matches_table("db1", "t"));
        assert!(!flt.matches_table("db1", "secret_x"));
        assert!(flt.matches_table("db1", "secret_ok"));
        assert!(!flt.matches_table("other", "t"));
        assert!(flt.matches_table("DB2", "T"));
    }

    #[test]
    fn wildcards_classes_quotes() {
        let flt = f(&["d?.t[0-9]", "`a.b`.\"c``d\"", "x\\*.*"]);
        assert!(flt.matches_table("d1", "t7"));
        assert!(!flt.matches_table("d12", "t7"));
        assert!(!flt.matches_table("d1", "tx"));
        assert!(flt.matches_table("a.b", "c``d") || flt.matches_table("a.b", "c\"d"));
        assert!(flt.matches_table("x*", "y"));
        assert!(!flt.matches_table("xy", "y"));
        let neg = f(&["*.[!a]*"]);
        assert!(neg.matches_table("d", "b"));
        assert!(!neg.matches_table("d", "a1"));
    }

    #[test]
    fn system_schemas_need_a_literal_rule() {
        let all = TableFilter::default();
        assert!(all.matches_table("app", "t"));
        assert!(!all.matches_table("mysql", "user"));
        assert!(!all.matches_schema("information_schema"));
        let explicit = f(&["mysql.user"]);
        assert!(explicit.matches_table("mysql", "user"));
    }

    #[test]
    fn bad_rules_are_definite_errors() {
        for bad in ["db", "db.", ".t", "db.[a", "`db.t", "/re/.t", "db.t extra"] {
            assert!(TableFilter::parse(&[bad]).is_err(), "{bad}");
        }
    }
}
