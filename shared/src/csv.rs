//! The CSV dialect: how `ferry dump` writes CSV files, how the dump manifest records them, and
//! how `ferry load` reads CSV files — a ferry dump's own, or foreign ones (Dumpling, mydumper
//! `--load-data`, hand-made) described by the `--csv-*` options. One type for all of them, so a
//! dialect written is the dialect read.
//!
//! Rules every reader and writer keeps:
//! - A field is *quoted* when it starts with the delimiter. The dumper quotes every string
//!   value (when there is a delimiter) and never a number, so a quoted field is never NULL.
//! - NULL is an *unquoted* field whose text is exactly `null_value` — also when `null_value` is
//!   empty: then an unquoted empty field is NULL and `""` is the empty string. Without a
//!   delimiter an empty `null_value` cannot tell NULL from the empty string, so the dumper
//!   refuses that pair ([`CsvDialect::write_problem`]).
//! - A ferry dump's manifest records the dialect its files were written in, and the loader reads
//!   them with exactly that dialect; the `--csv-*` load options only describe files without a
//!   manifest.
//! - Records end at `\n`; a `\r` before it belongs to the terminator. Readers accept either
//!   terminator whatever `line_terminator` says.
//!
//! The serialized form is part of the manifest (`output.csv`) and must not change.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvDialect {
    /// Between fields; never empty.
    pub separator: String,
    /// Quote around string fields; empty: fields are never quoted. The loader reads one-byte
    /// delimiters only.
    pub delimiter: String,
    /// The text of an unquoted field that means NULL (`\N`, `NULL`, or empty).
    pub null_value: String,
    /// Files start with a line of column names.
    pub header: bool,
    /// Backslash escapes in fields (`\\`, `\n`, `\0`...); false: a delimiter inside a quoted
    /// field is doubled and backslashes are data.
    pub escape_backslash: bool,
    /// Ends each record: `\n` or `\r\n`.
    pub line_terminator: String,
}

/// `ferry dump`'s default dialect: `,` between fields, `"` around strings, `\N` for NULL, a
/// header line, backslash escapes, `\n` after each record.
impl Default for CsvDialect {
    fn default() -> Self {
        CsvDialect {
            separator: ",".into(),
            delimiter: "\"".into(),
            null_value: "\\N".into(),
            header: true,
            escape_backslash: true,
            line_terminator: "\n".into(),
        }
    }
}

impl CsvDialect {
    /// The quote byte, if fields may be quoted.
    pub fn quote(&self) -> Option<u8> {
        self.delimiter.as_bytes().first().copied()
    }

    /// Why files in this dialect cannot be read by ferry, if they cannot.
    pub fn read_problem(&self) -> Option<String> {
        if self.separator.is_empty() {
            return Some("the CSV separator is empty".into());
        }
        if self.delimiter.len() > 1 {
            return Some(format!(
                "the CSV delimiter `{}` is longer than one byte; ferry reads quote characters of one byte only",
                self.delimiter
            ));
        }
        None
    }

    /// Why files written in this dialect could not be read back as written, if so (beyond
    /// [`CsvDialect::read_problem`]): the option names are those of `ferry dump`.
    pub fn write_problem(&self) -> Option<String> {
        if self.separator.is_empty() {
            return Some("--csv-separator must not be empty".into());
        }
        if self.line_terminator != "\n" && self.line_terminator != "\r\n" {
            return Some("--csv-line-terminator must be \\n or \\r\\n".into());
        }
        if self.null_value.is_empty() && self.delimiter.is_empty() {
            return Some(
                "--csv-null-value '' with --csv-delimiter '' writes NULL and the empty string alike, \
                 and neither can be told from the other when loading: set a --csv-delimiter or a non-empty --csv-null-value"
                    .into(),
            );
        }
        if self.escape_backslash
            && self.delimiter.is_empty()
            && self
                .separator
                .starts_with(['0', 'b', 'n', 'r', 't', 'Z', 'N'])
        {
            // The separator's first byte is escaped with a backslash when there is no delimiter,
            // and readers would turn `\t`, `\n`, `\N`... into TAB, newline, NULL...
            return Some(format!(
                "--csv-separator `{}` starts with a letter that has a meaning after a backslash; \
                 with --csv-delimiter '' and backslash escaping it cannot be read back: set a --csv-delimiter or choose another separator",
                self.separator
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect() -> CsvDialect {
        CsvDialect::default()
    }

    #[test]
    fn serialized_form_is_the_manifest_one() {
        let json = r#"{"separator":",","delimiter":"\"","null_value":"\\N","header":true,"escape_backslash":true,"line_terminator":"\n"}"#;
        let d: CsvDialect = serde_json::from_str(json).unwrap();
        assert_eq!(d, dialect());
        assert_eq!(serde_json::to_string(&d).unwrap(), json);
    }

    #[test]
    fn unreadable_and_ambiguous_dialects_are_named() {
        assert_eq!(dialect().read_problem(), None);
        assert_eq!(dialect().write_problem(), None);
        let long = CsvDialect {
            delimiter: "ma".into(),
            ..dialect()
        };
        assert!(long.read_problem().is_some_and(|p| p.contains("`ma`")));
        let ambiguous = CsvDialect {
            delimiter: String::new(),
            null_value: String::new(),
            ..dialect()
        };
        assert_eq!(ambiguous.read_problem(), None);
        assert!(ambiguous
            .write_problem()
            .is_some_and(|p| p.contains("--csv-null-value ''")));
        let empty_null_quoted = CsvDialect {
            null_value: String::new(),
            ..dialect()
        };
        assert_eq!(empty_null_quoted.write_problem(), None);
        let letter = CsvDialect {
            delimiter: String::new(),
            separator: "t".into(),
            ..dialect()
        };
        assert!(letter.write_problem().is_some_and(|p| p.contains("`t`")));
    }
}
