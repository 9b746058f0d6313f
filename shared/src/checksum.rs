//! Table checksums that both ends compute with the same SQL.
//!
//! Algorithm `ferry-crc32-sum-v1`: for each row, `CRC32` of the row's columns cast to binary and
//! joined with `CONCAT_WS`, plus a NULL bitmap so that NULL and `''` differ; the table's checksum
//! is `COUNT(*)` and `SUM` of those CRCs. A sum (not XOR) keeps duplicate rows from cancelling, and
//! sums over disjoint chunks add up to the table's, so chunk checksums combine exactly.

use crate::ident::quote_ident;

pub const ALGORITHM: &str = "ferry-crc32-sum-v1";

/// The per-row expression over `columns` (names, unquoted).
pub fn row_expression<S: AsRef<str>>(columns: &[S]) -> String {
    let values: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({} AS BINARY)", quote_ident(c.as_ref())))
        .collect();
    let nulls: Vec<String> = columns
        .iter()
        .map(|c| format!("ISNULL({})", quote_ident(c.as_ref())))
        .collect();
    format!(
        "CRC32(CONCAT_WS('#',{},CONCAT({})))",
        values.join(","),
        nulls.join(",")
    )
}

/// `SELECT COUNT(*), SUM(expr) FROM <from> [WHERE cond]`, returning the sum as text; the
/// columns are named `row_count` and `row_sum` (usable as a derived table).
pub fn query(columns_expr: &str, from: &str, condition: Option<&str>) -> String {
    let mut q = format!(
        "SELECT COUNT(*) AS row_count, CAST(COALESCE(SUM({columns_expr}),0) AS CHAR) AS row_sum FROM {from}"
    );
    if let Some(c) = condition {
        q.push_str(" WHERE ");
        q.push_str(c);
    }
    q
}

/// Adds two decimal sums (each up to 2^32 * rows, fits in u128).
pub fn add_sums(a: &str, b: &str) -> Option<String> {
    let x: u128 = a.parse().ok()?;
    let y: u128 = b.parse().ok()?;
    Some((x + y).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expression_shape() {
        let e = row_expression(&["a", "b`c"]);
        assert_eq!(
            e,
            "CRC32(CONCAT_WS('#',CAST(`a` AS BINARY),CAST(`b``c` AS BINARY),CONCAT(ISNULL(`a`),ISNULL(`b``c`))))"
        );
        assert_eq!(
            add_sums("18446744073709551615", "1").as_deref(),
            Some("18446744073709551616")
        );
        assert!(query(&e, "`d`.`t`", Some("1=1")).ends_with("WHERE 1=1"));
    }
}
