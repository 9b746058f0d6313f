//! `ferry_shared::introspect` against a real server: what dump, load and catch-up learn about a
//! table (generated, unsigned, auto-increment, octet lengths, keys with prefixes) comes from the
//! server's own answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use ferry_shared::introspect::{describe, describe_one};
use harness::*;

#[tokio::test]
async fn columns_and_keys_as_the_server_describes_them() {
    let db = unique_db("intro");
    let mut src = source().await;
    exec(&mut src, &format!("CREATE DATABASE `{db}`")).await;
    exec(
        &mut src,
        &format!(
            "CREATE TABLE `{db}`.`t``1` (
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
                part INT NOT NULL,
                b BINARY(5),
                ip INET6,
                s VARCHAR(40) CHARACTER SET latin1,
                v INT AS (part * 2) VIRTUAL,
                p INT AS (part + 1) PERSISTENT,
                PRIMARY KEY (id, part),
                UNIQUE KEY u (p),
                KEY pre (s(10))
            )"
        ),
    )
    .await;
    exec(&mut src, &format!("CREATE TABLE `{db}`.plain (a INT)")).await;
    let tables = describe(
        &mut src,
        &[
            (db.clone(), "t`1".into()),
            (db.clone(), "missing".into()),
            (db.clone(), "plain".into()),
        ],
    )
    .await
    .unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["t`1", "plain"], "the missing table is left out");
    let t = &tables[0];
    let cols: Vec<(&str, bool, bool, bool)> = t
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.generated, c.unsigned, c.auto_increment))
        .collect();
    assert_eq!(
        cols,
        [
            ("id", false, true, true),
            ("part", false, false, false),
            ("b", false, false, false),
            ("ip", false, false, false),
            ("s", false, false, false),
            ("v", true, false, false),
            ("p", true, false, false),
        ]
    );
    assert_eq!(t.column("b").unwrap().octet_length, Some(5));
    assert_eq!(t.column("s").unwrap().charset.as_deref(), Some("latin1"));
    assert!(t.column("b").unwrap().nullable && !t.column("part").unwrap().nullable);
    let pk: Vec<&str> = t
        .primary_key()
        .unwrap()
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(pk, ["id", "part"]);
    let others: Vec<&str> = t.other_unique_keys().map(|k| k.name.as_str()).collect();
    assert_eq!(others, ["u"]);
    let pre = t.indexes.iter().find(|i| i.name == "pre").unwrap();
    assert!(!pre.unique);
    assert_eq!(pre.columns[0].sub_part, Some(10));
    let plain = describe_one(&mut src, &db, "plain").await.unwrap().unwrap();
    assert!(plain.primary_key().is_none() && plain.indexes.is_empty());
    assert!(describe_one(&mut src, &db, "nope").await.unwrap().is_none());
    exec(&mut src, &format!("DROP DATABASE `{db}`")).await;
}
