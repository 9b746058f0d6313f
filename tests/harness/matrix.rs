//! The type matrix: every column type with its extremes, in a table with a hostile name.

use super::*;

/// The type matrix; `{}` is replaced by nothing (kept simple for reuse).
pub const COLUMNS: &str = r#"
  `id` INT NOT NULL PRIMARY KEY,
  `ti` TINYINT, `tiu` TINYINT UNSIGNED, `si` SMALLINT, `mi` MEDIUMINT, `miu` MEDIUMINT UNSIGNED,
  `i` INT, `iu` INT UNSIGNED, `bi` BIGINT, `biu` BIGINT UNSIGNED,
  `dec` DECIMAL(65,30), `dec0` DECIMAL(10,0) UNSIGNED, `f` FLOAT, `fs` FLOAT(7,3), `d` DOUBLE,
  `b1` BIT(1), `b64` BIT(64),
  `dt` DATE, `dtm` DATETIME(6), `ts` TIMESTAMP(6) NULL DEFAULT NULL, `tm` TIME(6), `tm0` TIME, `y` YEAR,
  `c` CHAR(10), `vc` VARCHAR(300), `bin` BINARY(8), `vbin` VARBINARY(64),
  `tb` TINYBLOB, `bl` BLOB, `mb` MEDIUMBLOB, `lb` LONGBLOB,
  `tt` TINYTEXT, `tx` TEXT, `mt` MEDIUMTEXT, `lt` LONGTEXT,
  `lat` VARCHAR(20) CHARACTER SET latin1,
  `e` ENUM('a','b','c d','') , `st` SET('x','y','z'),
  `j` JSON, `g` GEOMETRY, `pt` POINT, `ls` LINESTRING, `pg` POLYGON,
  `ip6` INET6, `uu` UUID,
  `we.ird``col/ü` INT
"#;

pub const ROWS: &[&str] = &[
    // minimums / negatives
    "(1, -128, 0, -32768, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
      -99999999999999999999999999999999999.999999999999999999999999999999, 0, -3.40282e38, -9999.999, -1.7976931348623157e308,
      b'0', b'0', '1000-01-01', '1000-01-01 00:00:00.000000', '1970-01-01 00:00:01.000000', '-838:59:59.000000', '-00:00:01', 1901,
      '', '', x'00', x'', x'', x'', x'', x'', '', '', '', '', 'Ã©', 'a', '', '[]',
      ST_GeomFromText('POINT(0 0)'), ST_GeomFromText('POINT(-1.5 2.25)'), ST_GeomFromText('LINESTRING(0 0,1 1,2 1)'),
      ST_GeomFromText('POLYGON((0 0,10 0,10 10,0 10,0 0))'), '::', '00000000-0000-0000-0000-000000000000', -1)",
    // maximums
    "(2, 127, 255, 32767, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
      99999999999999999999999999999999999.999999999999999999999999999999, 9999999999, 3.40282e38, 9999.999, 1.7976931348623157e308,
      b'1', b'1111111111111111111111111111111111111111111111111111111111111111', '9999-12-31', '9999-12-31 23:59:59.999999',
      '2038-01-19 03:14:07.999999', '838:59:59.000000', '838:59:59', 2155,
      'zzzzzzzzzz', REPEAT('ü', 300), x'ffffffffffffffff', REPEAT(x'ff', 64), REPEAT(x'00', 255), REPEAT(x'01', 1000), REPEAT('m', 70000), REPEAT('l', 100000),
      REPEAT('t', 255), REPEAT('x', 1000), REPEAT('y', 70000), REPEAT('z', 100000), 'ÿÿ', 'c d', 'x,y,z',
      '{\"a\": [1, 2.5, \"x\\\\\"y\", null, true], \"b\": {\"c\": \"\\\\u00e9\"}}', NULL, NULL, NULL, NULL,
      'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'ffffffff-ffff-ffff-ffff-ffffffffffff', 2147483647)",
    // zero dates, hostile strings, NULL vs 'NULL' vs ''
    "(3, 0, 0, 0, -1, 1, -1, 1, -1, 1, 0.000000000000000000000000000001, 1, 1.17549e-38, 0.001, 2.2250738585072014e-308,
      NULL, b'1000000000000000000000000000000000000000000000000000000000000001', '0000-00-00', '0000-00-00 00:00:00.000000', NULL, '-00:00:00.000001', '00:00:00', 0,
      'NULL', 'it''s a \"quote\" \\\\ back\\nslash\\r\\t\\0 nul\\Z', x'0000000000000000', x'00410042', x'00', x'0d0a', x'1a', x'5c',
      'NULL', '\\\\N', '🚀 emoji ✓ 中文 العربية', 'tab\\there', NULL, '', '', 'null',
      ST_GeomFromText('MULTIPOINT(1 1,2 2)'), NULL, NULL, NULL, '::1', '123e4567-e89b-12d3-a456-426614174000', 0)",
    // all NULL
    "(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
      NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)",
    // float precision and -0
    "(5, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.1, 0, 0.1, 0.1, 0.1, b'1', b'101', '2024-02-29', '2024-02-29 12:34:56.5', '2024-02-29 12:34:56.5', '12:34:56.5', '-12:00:00', 2024,
      'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a', 'b', 'y', '\"str\"',
      ST_GeomFromText('GEOMETRYCOLLECTION(POINT(1 1),LINESTRING(0 0,1 1))'), NULL, NULL, NULL, '1.2.3.4', NULL, 5)",
];

pub const DB_BASE: &str = "ty`pe.d/b-schema ü";
pub const TABLE: &str = "t.a`b/ł -schema";

/// Creates the type matrix table `TABLE` in a new source database `db`.
pub async fn create_matrix(db: &str) {
    let mut src = source().await;
    exec(
        &mut src,
        &format!(
            "CREATE DATABASE `{}` CHARACTER SET utf8mb4",
            db.replace('`', "``")
        ),
    )
    .await;
    let q = format!("`{}`.`{}`", db.replace('`', "``"), TABLE.replace('`', "``"));
    exec(
        &mut src,
        &format!("CREATE TABLE {q} ({COLUMNS}) ENGINE=InnoDB"),
    )
    .await;
    exec(&mut src, "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'").await;
    exec(&mut src, "SET SESSION time_zone = '+05:30'").await;
    for r in ROWS {
        exec(&mut src, &format!("INSERT INTO {q} VALUES {r}")).await;
    }
    // Precise floats that the server's text form would round.
    exec(&mut src, &format!("INSERT INTO {q} (`id`, `f`, `d`) VALUES (6, 1.2345678, 0.30000000000000004), (7, 16777217, 9007199254740993)")).await;
}
