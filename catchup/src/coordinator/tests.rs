//! Each test pins one rule of the coordinator; each fails when its rule is removed.

use super::*;
use crate::rows::RowsKind;

const FILE: &str = "b.000001";

fn at(pos: u64) -> BinlogPos {
    BinlogPos::new(FILE, pos)
}

fn ev(change: Change, end_pos: u64) -> Positioned {
    Positioned {
        change,
        end_pos,
        timestamp: 1000,
    }
}

fn rows(db: &str, table: &str) -> Change {
    Change::Rows {
        table: Arc::new(TableMap {
            table_id: 1,
            db: db.into(),
            table: table.into(),
            columns: Vec::new(),
        }),
        event: RowsEvent {
            table_id: 1,
            kind: RowsKind::Write,
            rows: Vec::new(),
        },
    }
}

fn query(db: &str, sql: &str) -> Change {
    Change::Query {
        db: db.into(),
        sql: sql.as_bytes().to_vec(),
        sql_mode: None,
        charset_client: None,
    }
}

/// Rules replicating the database `app` only.
fn only_app() -> Rules {
    Rules {
        schemas: Some(vec!["app".into()]),
        ..Rules::default()
    }
}

fn coordinator(rules: Rules, done: Vec<BinlogPos>, now: Instant) -> Coordinator {
    Coordinator::new(rules, done, None, now)
}

/// One transaction (GTID, a rows event of `db.table`, XID) ending at `end`.
fn txn(c: &mut Coordinator, gno: u64, db: &str, end: u64, now: Instant) -> Vec<Action> {
    let mut out = Vec::new();
    c.on_change(
        ev(Change::Gtid(format!("0-1-{gno}")), end - 30),
        now,
        &mut out,
    );
    c.on_change(ev(rows(db, "t"), end - 10), now, &mut out);
    c.on_change(ev(Change::Commit { xid: gno }, end), now, &mut out);
    out
}

fn commits(out: &[Action]) -> Vec<(u64, bool, CommitReason)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Commit { at, all, reason } => Some((at.pos.pos, *all, *reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_group_is_committed_at_group_max_transactions() {
    let t0 = Instant::now();
    let mut c = coordinator(Rules::default(), vec![at(4)], t0);
    let mut all = Vec::new();
    for i in 1..=u64::from(GROUP_MAX) {
        all.extend(txn(&mut c, i, "app", 100 * i + 4, t0));
        // More is ready and no time passed: only the group's size can commit it.
        c.on_tick(false, t0, &mut all);
    }
    let end = 100 * u64::from(GROUP_MAX) + 4;
    assert_eq!(commits(&all), vec![(end, false, CommitReason::Full)]);
    // The commit comes right after the group's last transaction ended.
    let n = all.len();
    assert!(matches!(all[n - 2], Action::End), "{:?}", &all[n - 2..]);
}

#[test]
fn a_group_is_committed_when_nothing_is_ready() {
    let t0 = Instant::now();
    let mut c = coordinator(Rules::default(), vec![at(4)], t0);
    let mut out = txn(&mut c, 1, "app", 104, t0);
    c.on_tick(false, t0, &mut out);
    assert!(commits(&out).is_empty(), "more is ready: the group waits");
    c.on_tick(true, t0, &mut out);
    assert_eq!(commits(&out), vec![(104, false, CommitReason::Idle)]);
    // Nothing left to commit.
    out.clear();
    c.on_tick(true, t0, &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_group_is_committed_after_group_time_while_other_databases_stream() {
    let t0 = Instant::now();
    let mut c = coordinator(only_app(), vec![at(4)], t0);
    let mut out = txn(&mut c, 1, "app", 104, t0);
    // Events of another database keep arriving: something is always ready.
    let mut t = t0;
    for i in 0..10u64 {
        t += Duration::from_millis(50);
        c.on_tick(false, t, &mut out);
        let mut ignored = Vec::new();
        c.on_change(ev(rows("other", "x"), 200 + i), t, &mut ignored);
        assert!(ignored.is_empty(), "{ignored:?}");
    }
    let done = commits(&out);
    assert_eq!(
        done.first(),
        Some(&(104, false, CommitReason::Idle)),
        "{done:?}"
    );
    assert_eq!(done.len(), 1, "{done:?}");
}

#[test]
fn ddl_is_a_barrier_with_its_own_checkpoint() {
    let t0 = Instant::now();
    // Worker 1 committed up to 300 before a restart.
    let mut c = coordinator(Rules::default(), vec![at(4), at(300)], t0);
    let mut out = txn(&mut c, 1, "app", 104, t0);
    c.on_change(ev(Change::Gtid("0-1-2".into()), 140), t0, &mut out);
    c.on_change(
        ev(query("app", "ALTER TABLE t ADD c INT"), 200),
        t0,
        &mut out,
    );
    let Some(Action::Ddl(d)) = out.last() else {
        panic!("no barrier: {out:?}");
    };
    // Every worker commits before the statement, at the end of the transaction before it...
    assert_eq!(d.before.pos, at(104));
    // ... and moves past it afterwards.
    assert_eq!(d.after.pos, at(200));
    assert_eq!(
        d.after.gtid.as_ref().map(ToString::to_string).as_deref(),
        Some("0-1-2")
    );
    assert_eq!(d.db, "app");
    // The barrier committed the group: nothing is left for an idle commit.
    out.clear();
    c.on_tick(true, t0, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // Every worker's checkpoint is now the DDL's: after it, no worker skips anything.
    c.on_change(ev(Change::Gtid("0-1-3".into()), 230), t0, &mut out);
    assert_eq!(
        out,
        vec![Action::Begin {
            skip: vec![false, false]
        }]
    );
}

#[test]
fn after_a_restart_each_worker_skips_what_it_committed() {
    let t0 = Instant::now();
    // Worker 0 committed up to 104, worker 1 up to 204: the stream restarts at 104.
    let mut c = coordinator(Rules::default(), vec![at(104), at(204)], t0);
    assert_eq!(c.pos(), &at(104));
    let out = txn(&mut c, 2, "app", 204, t0);
    assert_eq!(
        out[0],
        Action::Begin {
            skip: vec![false, true]
        }
    );
    let out = txn(&mut c, 3, "app", 304, t0);
    assert_eq!(
        out[0],
        Action::Begin {
            skip: vec![false, false]
        }
    );
}

#[test]
fn rows_before_a_tables_floor_are_skipped() {
    let t0 = Instant::now();
    let rules = Rules {
        table_floors: [(("app".to_string(), "t".to_string()), at(204))].into(),
        ..Rules::default()
    };
    let mut c = coordinator(rules, vec![at(4)], t0);
    let staged = |out: &[Action]| {
        out.iter()
            .filter(|a| matches!(a, Action::Rows { .. }))
            .count()
    };
    // app.t was dumped at 204: transactions starting before it are in the dump.
    assert_eq!(staged(&txn(&mut c, 1, "app", 104, t0)), 0);
    assert_eq!(staged(&txn(&mut c, 2, "app", 204, t0)), 0);
    assert_eq!(staged(&txn(&mut c, 3, "app", 304, t0)), 1);
    // Other tables have no floor.
    let mut out = Vec::new();
    c.on_change(ev(rows("app", "u"), 330), t0, &mut out);
    assert_eq!(staged(&out), 1);
}

#[test]
fn until_stops_before_the_first_excluded_transaction() {
    let t0 = Instant::now();
    let rules = Rules {
        until: Some(Until::Position(at(204))),
        ..Rules::default()
    };
    let mut c = coordinator(rules, vec![at(4)], t0);
    let out = txn(&mut c, 1, "app", 104, t0);
    assert!(!out.contains(&Action::Stop));
    let out = txn(&mut c, 2, "app", 204, t0);
    assert!(
        !out.contains(&Action::Stop),
        "starts at 104, before the bound"
    );
    let mut out = Vec::new();
    c.on_change(ev(Change::Gtid("0-1-3".into()), 230), t0, &mut out);
    assert_eq!(out, vec![Action::Stop]);
    assert!(c.stopping());
    out.clear();
    c.finish(t0, &mut out);
    assert_eq!(commits(&out), vec![(204, true, CommitReason::Final)]);
}

#[test]
fn a_stop_request_lets_the_current_transaction_finish() {
    let t0 = Instant::now();
    let mut c = coordinator(Rules::default(), vec![at(4)], t0);
    let mut out = Vec::new();
    c.on_change(ev(Change::Gtid("0-1-1".into()), 70), t0, &mut out);
    c.request_stop(&mut out);
    assert!(!out.contains(&Action::Stop), "{out:?}");
    c.on_change(ev(Change::Commit { xid: 1 }, 104), t0, &mut out);
    assert_eq!(commits(&out), vec![(104, true, CommitReason::Full)]);
    assert_eq!(out.last(), Some(&Action::Stop));
}

#[test]
fn a_transaction_cut_off_by_the_streams_end_is_dropped() {
    let t0 = Instant::now();
    let mut c = coordinator(Rules::default(), vec![at(4)], t0);
    let mut out = txn(&mut c, 1, "app", 104, t0);
    c.on_change(ev(Change::Gtid("0-1-2".into()), 140), t0, &mut out);
    c.on_change(ev(rows("app", "t"), 170), t0, &mut out);
    out.clear();
    c.finish(t0, &mut out);
    assert_eq!(out[0], Action::Discard);
    assert_eq!(commits(&out), vec![(104, false, CommitReason::CutOff)]);
}

#[test]
fn statements_of_other_databases_move_the_position_only() {
    let t0 = Instant::now();
    let mut c = coordinator(only_app(), vec![at(4)], t0);
    let mut out = Vec::new();
    c.on_change(
        ev(query("other", "CREATE TABLE x (a INT)"), 90),
        t0,
        &mut out,
    );
    c.on_change(
        ev(query("app", "GRANT SELECT ON *.* TO u"), 120),
        t0,
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(c.pos(), &at(120));
}

#[test]
fn the_position_follows_rotates_and_file_headers() {
    let t0 = Instant::now();
    let mut c = coordinator(Rules::default(), vec![at(500)], t0);
    let mut out = Vec::new();
    // The artificial ROTATE at the start names our file with offset 4 and stray bytes.
    let rotate = |file: &str, pos| Change::Rotate {
        file: file.into(),
        pos,
        artificial: true,
    };
    c.on_change(ev(rotate("b.000001\u{1}x", 4), 0), t0, &mut out);
    assert_eq!(c.pos(), &at(500));
    c.on_change(ev(rotate("b.000002", 4), 0), t0, &mut out);
    assert_eq!(c.pos(), &BinlogPos::new("b.000002", 4));
    c.on_change(ev(Change::GtidList("0-1-5".into()), 300), t0, &mut out);
    assert_eq!(c.pos(), &BinlogPos::new("b.000002", 300));
    assert!(out.is_empty());
}

#[test]
fn rotate_names_lose_appended_bytes() {
    let c = "mysql-bin.000001";
    assert_eq!(clean_file_name("mysql-bin.000001u\u{1}x", c), c);
    assert_eq!(clean_file_name("mysql-bin.0000027", c), "mysql-bin.000002");
    assert_eq!(clean_file_name("mysql-bin.000002", c), "mysql-bin.000002");
    assert_eq!(clean_file_name("other.000009\u{0}", c), "other.000009");
}
