//! Connections made by ferry reuse prepared statements: a long catch-up or load runs the same
//! parameterised statements (checkpoints) hundreds of thousands of times, and statements that
//! are never closed exhaust the server's `max_prepared_stmt_count`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use harness::*;
use mysql_async::prelude::Queryable;

#[tokio::test]
async fn repeated_statements_are_prepared_once() {
    let spec = ferry_shared::conn::ConnSpec::parse(&servers().target_url).unwrap();
    let mut c = spec.connect().await.unwrap();
    for i in 0..500u32 {
        let _: Option<u32> = c.exec_first("SELECT ? + 1", (i,)).await.unwrap();
    }
    let row: Option<(String, u64)> = c
        .query_first("SHOW SESSION STATUS LIKE 'Com_stmt_prepare'")
        .await
        .unwrap();
    assert_eq!(
        row.unwrap().1,
        1,
        "the statement was prepared once and reused"
    );
}
