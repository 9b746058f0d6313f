//! Decoders for the packed column formats of row images: DECIMAL, DATETIME2, TIME2 and
//! TIMESTAMP2. Each takes the bytes at the value's position and returns the value's text (as
//! the server prints it) and how many bytes it used; short input is `None`, never a panic.

const DIG2BYTES: [usize; 10] = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/// Bytes a DECIMAL(precision, scale) takes in a row image.
pub fn decimal_len(precision: u8, scale: u8) -> usize {
    let intg = precision.saturating_sub(scale) as usize;
    let frac = scale as usize;
    (intg / 9) * 4 + DIG2BYTES[intg % 9] + (frac / 9) * 4 + DIG2BYTES[frac % 9]
}

fn be(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x))
}

/// DECIMAL(precision, scale): text with exactly `scale` fraction digits.
pub fn decimal(b: &[u8], precision: u8, scale: u8) -> Option<(String, usize)> {
    let len = decimal_len(precision, scale);
    let raw = b.get(..len)?;
    if len == 0 {
        return Some(("0".into(), 0));
    }
    let mut buf = raw.to_vec();
    let positive = buf[0] & 0x80 != 0;
    buf[0] ^= 0x80;
    if !positive {
        for x in buf.iter_mut() {
            *x = !*x;
        }
    }
    let intg = precision.saturating_sub(scale) as usize;
    let frac = scale as usize;
    let (intg0, intg0x) = (intg / 9, intg % 9);
    let (frac0, frac0x) = (frac / 9, frac % 9);
    let mut at = 0;
    let mut int_digits = String::new();
    if intg0x > 0 {
        let n = DIG2BYTES[intg0x];
        int_digits.push_str(&be(&buf[at..at + n]).to_string());
        at += n;
    }
    for _ in 0..intg0 {
        let v = be(&buf[at..at + 4]);
        if int_digits.is_empty() {
            int_digits.push_str(&v.to_string());
        } else {
            int_digits.push_str(&format!("{v:09}"));
        }
        at += 4;
    }
    let int_digits = int_digits.trim_start_matches('0');
    let mut frac_digits = String::new();
    for _ in 0..frac0 {
        frac_digits.push_str(&format!("{:09}", be(&buf[at..at + 4])));
        at += 4;
    }
    if frac0x > 0 {
        let n = DIG2BYTES[frac0x];
        frac_digits.push_str(&format!("{:0w$}", be(&buf[at..at + n]), w = frac0x));
        at += n;
    }
    let mut s = String::new();
    if !positive {
        s.push('-');
    }
    s.push_str(if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    });
    if frac > 0 {
        s.push('.');
        s.push_str(&frac_digits);
    }
    Some((s, at))
}

/// Bytes of the fractional part for `fsp` digits.
fn frac_len(fsp: u8) -> usize {
    (fsp as usize).div_ceil(2)
}

/// Microseconds from the fractional bytes (stored as fsp/2-byte groups).
fn frac_micros(b: &[u8], fsp: u8) -> u64 {
    match frac_len(fsp) {
        0 => 0,
        1 => be(b) * 10_000,
        2 => be(b) * 100,
        _ => be(b),
    }
}

fn push_fraction(s: &mut String, micros: u64, fsp: u8) {
    if fsp > 0 {
        let digits = format!("{micros:06}");
        s.push('.');
        s.push_str(&digits[..(fsp as usize).min(6)]);
    }
}

/// DATETIME2(fsp): `YYYY-MM-DD HH:MM:SS[.f]`.
pub fn datetime2(b: &[u8], fsp: u8) -> Option<(String, usize)> {
    let len = 5 + frac_len(fsp);
    let raw = b.get(..len)?;
    let packed = be(&raw[..5]).wrapping_sub(0x80_0000_0000);
    let ymd = packed >> 17;
    let ym = ymd >> 5;
    let (year, month, day) = (ym / 13, ym % 13, ymd & 31);
    let hms = packed & 0x1_FFFF;
    let (hour, minute, second) = (hms >> 12, (hms >> 6) & 63, hms & 63);
    let mut s = format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}");
    push_fraction(&mut s, frac_micros(&raw[5..], fsp), fsp);
    Some((s, len))
}

/// TIME2(fsp): `[-]HH:MM:SS[.f]`, hours up to 838.
pub fn time2(b: &[u8], fsp: u8) -> Option<(String, usize)> {
    let len = 3 + frac_len(fsp);
    let raw = b.get(..len)?;
    // The packed value: (integer part << 24) + microseconds, as the server computes it.
    let packed: i64 = match frac_len(fsp) {
        0 => (be(&raw[..3]) as i64 - 0x80_0000) << 24,
        1 | 2 => {
            let mut int = be(&raw[..3]) as i64 - 0x80_0000;
            let width = frac_len(fsp);
            let mut frac = be(&raw[3..3 + width]) as i64;
            if int < 0 && frac != 0 {
                int += 1;
                frac -= 1 << (8 * width);
            }
            let scale = if width == 1 { 10_000 } else { 100 };
            (int << 24) + frac * scale
        }
        _ => be(&raw[..6]) as i64 - 0x8000_0000_0000,
    };
    let negative = packed < 0;
    let p = packed.unsigned_abs();
    let hms = p >> 24;
    let micros = p % (1 << 24);
    let (hour, minute, second) = ((hms >> 12) % (1 << 10), (hms >> 6) % 64, hms % 64);
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    s.push_str(&format!("{hour:02}:{minute:02}:{second:02}"));
    push_fraction(&mut s, micros, fsp);
    Some((s, len))
}

/// TIMESTAMP2(fsp): seconds since the epoch and microseconds.
pub fn timestamp2(b: &[u8], fsp: u8) -> Option<((u32, u32), usize)> {
    let len = 4 + frac_len(fsp);
    let raw = b.get(..len)?;
    let secs = be(&raw[..4]) as u32;
    Some(((secs, frac_micros(&raw[4..], fsp) as u32), len))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vectors() -> serde_json::Value {
        let p = ferry_shared::conformance::shared_root()
            .join("conformance/binlog/vectors/go-mysql-vectors.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    }

    #[test]
    fn decimals_match_the_vectors() {
        ferry_shared::conformance_or_skip!();
        let v = vectors();
        let mut n = 0;
        for c in v["newdecimal_TestDecodeDecimal"].as_array().unwrap() {
            let bytes = hex::decode(c["hex"].as_str().unwrap()).unwrap();
            let p = c["precision"].as_u64().unwrap() as u8;
            let s = c["scale"].as_u64().unwrap() as u8;
            let (text, used) = decimal(&bytes, p, s).unwrap();
            assert_eq!(text, c["expected"].as_str().unwrap(), "{c}");
            assert_eq!(used as u64, c["bytes_consumed"].as_u64().unwrap(), "{c}");
            n += 1;
        }
        for c in v["newdecimal_decimalData"].as_array().unwrap() {
            let bytes = hex::decode(c["hex"].as_str().unwrap()).unwrap();
            let p = c["meta_precision"].as_u64().unwrap() as u8;
            let s = c["meta_scale"].as_u64().unwrap() as u8;
            assert_eq!(
                decimal(&bytes, p, s).unwrap().0,
                c["expected"].as_str().unwrap(),
                "{c}"
            );
            n += 1;
        }
        assert_eq!(n, 199);
        assert_eq!(decimal(&[0x80], 10, 2), None);
    }

    #[test]
    fn datetime2_and_time2_match_the_vectors() {
        ferry_shared::conformance_or_skip!();
        let v = vectors();
        for (kind, f) in [
            (
                "datetime2",
                datetime2 as fn(&[u8], u8) -> Option<(String, usize)>,
            ),
            ("time2", time2),
        ] {
            for c in v[kind].as_array().unwrap() {
                let bytes = hex::decode(c["hex"].as_str().unwrap()).unwrap();
                let fsp = c["fsp"].as_u64().unwrap() as u8;
                let (text, used) = f(&bytes, fsp).unwrap();
                assert_eq!(text, c["expected"].as_str().unwrap(), "{kind} {c}");
                assert_eq!(used, bytes.len(), "{kind} {c}");
                assert_eq!(f(&bytes[..bytes.len() - 1], fsp), None);
            }
        }
        assert_eq!(
            timestamp2(&[0, 0, 0, 1, 0x30, 0x39], 4).unwrap(),
            ((1, 1_234_500), 6)
        );
    }
}
