//! Identifiers: SQL quoting and the file-name encoding of database and table names.

use std::fmt::Write as _;

/// Quotes an identifier with backticks, doubling any backtick inside it.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('`');
    for c in name.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// `` `db`.`tbl` ``
pub fn qualified(db: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(db), quote_ident(table))
}

/// Quotes a string literal for SQL text sent to the server (`'...'`, backslash escaping).
pub fn quote_str(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    push_quoted(&mut out, value);
    out
}

/// Appends `value` as a quoted, backslash-escaped string literal (see [`escape_backslash`]).
#[inline]
pub fn push_quoted(out: &mut String, value: &str) {
    out.reserve(value.len() + 2);
    out.push('\'');
    let mut last = 0;
    // Escaped bytes are ASCII, so every cut is at a character boundary.
    each_escape(value.as_bytes(), |i, esc| {
        out.push_str(&value[last..i]);
        out.push('\\');
        out.push(esc as char);
        last = i + 1;
    });
    out.push_str(&value[last..]);
    out.push('\'');
}

/// For each byte, the letter that follows the backslash when it is escaped (0: copied as is).
const BACKSLASH_ESCAPES: [u8; 256] = {
    let mut t = [0u8; 256];
    t[0] = b'0';
    t[b'\n' as usize] = b'n';
    t[b'\r' as usize] = b'r';
    t[b'\\' as usize] = b'\\';
    t[b'\'' as usize] = b'\'';
    t[b'"' as usize] = b'"';
    t[0x1a] = b'Z';
    t
};

/// Backslash-escapes a string value the way MySQL's own dump tools do: NUL, newline, carriage
/// return, backslash, both quotes and Ctrl-Z.
#[inline]
pub fn escape_backslash(value: &[u8], out: &mut Vec<u8>) {
    out.reserve(value.len() + 2);
    let mut last = 0;
    each_escape(value, |i, esc| {
        out.extend_from_slice(&value[last..i]);
        out.push(b'\\');
        out.push(esc);
        last = i + 1;
    });
    out.extend_from_slice(&value[last..]);
}

/// Calls `each(index, letter)` for every byte of `value` that needs a backslash escape, in
/// order, skipping 8 bytes at a time where none can.
#[inline(always)]
fn each_escape(value: &[u8], mut each: impl FnMut(usize, u8)) {
    let mut i = 0;
    while i < value.len() {
        if let Some(word) = value.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            if !may_need_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let end = (i + 8).min(value.len());
        for (j, &b) in value[i..end].iter().enumerate() {
            let esc = BACKSLASH_ESCAPES[b as usize];
            if esc != 0 {
                each(i + j, esc);
            }
        }
        i = end;
    }
}

/// Could any byte of `w` be one that [`escape_backslash`] escapes? Those are all below `(`
/// (NUL, LF, CR, Ctrl-Z, `"`, `'`) or equal to `\`; false positives only cost the slow path.
#[inline(always)]
fn may_need_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_paren = w.wrapping_sub(ONES * 0x28) & !w & HIGH;
    let x = w ^ (ONES * u64::from(b'\\'));
    let backslash = x.wrapping_sub(ONES) & !x & HIGH;
    (below_paren | backslash) != 0
}

/// Encodes a database or table name for use in a dump file name.
///
/// Exactly as Dumpling does: control characters and `%"*./:<>?\|` become `%XX` (so
/// `{db}.{table}.{index}` splits unambiguously), and `-schema` in any letter case becomes
/// `%2Dschema` so it cannot be mistaken for a schema-file suffix. Everything else, including
/// non-ASCII UTF-8 and backticks, is kept as is.
pub fn encode_file_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if bytes.len() >= i + 7 && bytes[i + 1..i + 7].eq_ignore_ascii_case(b"schema") && b == b'-'
        {
            out.push_str("%2D");
            out.push_str(&name[i + 1..i + 7]);
            i += 7;
            continue;
        }
        if b < 0x20 || b == 0x7f || b"%\"*/:<>?\\|.".contains(&b) {
            let _ = write!(out, "%{b:02X}");
        } else {
            // Safe: copy the whole UTF-8 sequence starting here.
            let ch_len = utf8_len(b);
            out.push_str(&name[i..i + ch_len]);
            i += ch_len;
            continue;
        }
        i += 1;
    }
    out
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Reverses [`encode_file_name`] (any `%XX` is decoded). Returns `None` for malformed escapes
/// or a result that is not UTF-8.
pub fn decode_file_name(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("quo`te/table"), "`quo``te/table`");
        assert_eq!(qualified("a.b", "c"), "`a.b`.`c`");
        assert_eq!(quote_str("it's\n"), "'it\\'s\\n'");
    }

    #[test]
    fn escaping_matches_dump_tools() {
        let mut out = Vec::new();
        escape_backslash(b"a\0b\n\r\\'\"\x1az", &mut out);
        assert_eq!(out, b"a\\0b\\n\\r\\\\\\'\\\"\\Zz");
    }

    #[test]
    fn escaping_agrees_with_the_plain_loop_on_every_byte_and_offset() {
        fn plain(v: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for &b in v {
                match BACKSLASH_ESCAPES[b as usize] {
                    0 => out.push(b),
                    e => out.extend_from_slice(&[b'\\', e]),
                }
            }
            out
        }
        for special in 0..=255u8 {
            for pos in 0..20 {
                let mut v = b"abcdefghijklmnopqrstuvwxyz-0123".to_vec();
                v.truncate(20);
                v[pos] = special;
                let mut out = Vec::new();
                escape_backslash(&v, &mut out);
                assert_eq!(out, plain(&v), "byte {special:#x} at {pos}");
            }
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(encode_file_name("quo`te/database"), "quo`te%2Fdatabase");
        assert_eq!(encode_file_name("a.b-schema"), "a%2Eb%2Dschema");
        assert_eq!(encode_file_name("a-Schema"), "a%2DSchema");
        assert_eq!(encode_file_name("te%/st"), "te%25%2Fst");
        assert_eq!(encode_file_name("数据库"), "数据库");
        for n in ["quo`te/database", "a.b-schema", "数据 %25.x", "\u{1}z"] {
            assert_eq!(decode_file_name(&encode_file_name(n)).as_deref(), Some(n));
        }
        assert_eq!(decode_file_name("%zz"), None);
    }
}
