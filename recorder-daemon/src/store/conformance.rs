//! Store-level tests that every backend must pass the same way: each body takes a fresh
//! store and runs as `sqlite_<name>` (in memory) and `pg_<name>` (scratch PostgreSQL
//! database; skipped without `RECORDER_TEST_PG_URL`, see `postgres::scratch::test_store`).

use std::sync::Arc;

use super::activity::NewAlarm;
use super::postgres::scratch::{test_store, ScratchDb};
use super::sqlite::SqliteStore;
use super::*;
use crate::audit::{verify_chain, NewAudit};

fn leg(rec: &str, role: &str, key: &str, start: &str) -> LegUpdate {
    serde_json::from_value(serde_json::json!({
        "callId": format!("c-{rec}"), "recordingId": rec, "botRole": role, "pairingKey": key,
        "startTime": start, "direction": "None", "callType": "Queue Call",
        "mediaStatus": "Pending"
    }))
    .unwrap()
}

fn all(sort: &str, descending: bool) -> SearchQuery {
    SearchQuery {
        sort: sort.into(),
        descending,
        page: 1,
        page_size: 100,
        ..Default::default()
    }
}

fn ids(s: &dyn Store, q: &SearchQuery) -> Vec<i64> {
    s.search(q, &Scope::All)
        .unwrap()
        .items
        .iter()
        .map(|i| i.id)
        .collect()
}

fn a_batch_is_all_or_nothing(s: Arc<dyn Store>) {
    let out = s
        .upsert_legs(&[
            leg("a", "primary", "k", "2026-01-01T00:00:00Z"),
            leg("b", "paired", "k", "2026-01-01T00:00:00Z"),
        ])
        .unwrap();
    assert_eq!(out[0].interaction_id, out[1].interaction_id, "one Pro call");
    // The second item conflicts (same recording, other role): the first is not kept.
    let err = s.upsert_legs(&[
        leg("c", "primary", "k", "2026-01-01T00:00:00Z"),
        leg("a", "paired", "k", "2026-01-01T00:00:00Z"),
    ]);
    assert!(matches!(err, Err(StoreError::Conflict(_))), "{err:?}");
    assert_eq!(s.search(&all("id", false), &Scope::All).unwrap().total, 1);
    assert_eq!(
        s.get(out[0].interaction_id, &Scope::All)
            .unwrap()
            .unwrap()
            .legs
            .len(),
        2
    );
}

fn an_alarm_is_raised_once_and_cleared_once(s: Arc<dyn Store>) {
    let a = NewAlarm {
        name: "ConnectionFailed".into(),
        oid: ".1.3.6.1.4.1.5003.9.40.3.2.0.101".into(),
        source: "t/local".into(),
        severity: "major".into(),
        text: "full".into(),
        corrective_action: "free space".into(),
    };
    assert!(s.alarm_raise(&a).unwrap().is_some());
    assert!(s.alarm_raise(&a).unwrap().is_none());
    assert_eq!(s.alarms_active().unwrap().len(), 1);
    let c = s
        .alarm_clear("ConnectionFailed", "t/local")
        .unwrap()
        .unwrap();
    assert!(c.cleared_at.is_some());
    assert!(s
        .alarm_clear("ConnectionFailed", "t/local")
        .unwrap()
        .is_none());
    assert!(s.alarm_raise(&a).unwrap().is_some());
    s.activity_append("recordingRejected", "t/spool/x", "bad")
        .unwrap();
    let log = s.activity(1, 10).unwrap();
    let kinds: Vec<_> = log.items.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "recordingRejected",
            "alarmRaised",
            "alarmCleared",
            "alarmRaised"
        ]
    );
}

/// Names unique without regard to ASCII case, listed in that order; sorting puts missing
/// values first ascending and last descending, as SQLite does.
fn names_case_and_null_order(s: Arc<dyn Store>) {
    s.create_tag("beta", "").unwrap();
    s.create_tag("Alpha", "").unwrap();
    assert!(matches!(
        s.create_tag("ALPHA", ""),
        Err(StoreError::Conflict(_))
    ));
    let names: Vec<String> = s.tags().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["Alpha", "beta"]);
    let a = s
        .upsert_leg(&leg("n1", "primary", "k1", "2026-01-01T00:00:00Z"))
        .unwrap();
    let mut released = leg("n2", "primary", "k2", "2026-01-02T00:00:00Z");
    released.release_time = Some("2026-01-02T00:10:00Z".parse().unwrap());
    let b = s.upsert_leg(&released).unwrap();
    let (a, b) = (a.interaction_id, b.interaction_id);
    assert_eq!(ids(&*s, &all("releaseTime", false)), [a, b]);
    assert_eq!(ids(&*s, &all("releaseTime", true)), [b, a]);
    // Byte order, not a locale's: "Z" before "a".
    let mut upper = leg("n3", "primary", "k3", "2026-01-03T00:00:00Z");
    upper.call_id = "Zed".into();
    let mut lower = leg("n4", "primary", "k4", "2026-01-04T00:00:00Z");
    lower.call_id = "abe".into();
    let c = s.upsert_leg(&upper).unwrap().interaction_id;
    let d = s.upsert_leg(&lower).unwrap().interaction_id;
    let q = SearchQuery {
        ids: vec![c, d],
        ..all("callId", false)
    };
    assert_eq!(ids(&*s, &q), [c, d]);
}

/// Whole words as FTS5 `unicode61` splits them: e-mail addresses and hyphenated words are
/// several words, case and accents do not matter, a prefix is not a word.
fn notes_match_whole_words(s: Arc<dyn Store>) {
    let id = s
        .upsert_leg(&leg("w1", "primary", "kw", "2026-01-01T00:00:00Z"))
        .unwrap()
        .interaction_id;
    let me = Actor {
        oid: "o".into(),
        upn: "o@contoso.example".into(),
    };
    s.add_note(
        id,
        &me,
        "Call-back to alice@contoso.example about the Café order #42",
        &Scope::All,
    )
    .unwrap();
    for (words, hit) in [
        ("contoso", true),
        ("ALICE", true),
        ("back call", true),
        ("cafe", true),
        ("42", true),
        ("caf", false),
        ("order refund", false),
        ("alice@contoso.example", true),
    ] {
        let q = SearchQuery {
            notes: Some(words.into()),
            ..all("id", false)
        };
        assert_eq!(ids(&*s, &q).len(), hit as usize, "{words:?}");
    }
    let q = SearchQuery {
        notes: Some("+++".into()),
        ..all("id", false)
    };
    assert!(matches!(
        s.search(&q, &Scope::All),
        Err(StoreError::Invalid(_))
    ));
}

/// Both legs of Pro calls posted at the same time from many threads: each call is one
/// interaction with two legs, and the audit chain written meanwhile from many threads holds.
fn concurrent_ingest_pairs_and_audit_chains(s: Arc<dyn Store>) {
    let calls = 20;
    std::thread::scope(|sc| {
        for role in ["primary", "paired"] {
            for part in 0..2 {
                let s = s.clone();
                sc.spawn(move || {
                    for i in (part..calls).step_by(2) {
                        let rec = format!("{role}-{i}");
                        s.upsert_leg(&leg(
                            &rec,
                            role,
                            &format!("call-{i}"),
                            "2026-01-01T00:00:00Z",
                        ))
                        .unwrap();
                    }
                });
            }
        }
        for t in 0..4 {
            let s = s.clone();
            sc.spawn(move || {
                for i in 0..10 {
                    s.audit_append(&NewAudit {
                        user_oid: format!("t{t}"),
                        user_upn: format!("t{t}@contoso.example"),
                        action: "view",
                        item_type: "interaction",
                        item: i.to_string(),
                        description: format!("thread {t} entry {i}"),
                    })
                    .unwrap();
                }
            });
        }
    });
    let page = s.search(&all("id", false), &Scope::All).unwrap();
    assert_eq!(page.total, calls);
    for i in page.items {
        assert_eq!(s.get(i.id, &Scope::All).unwrap().unwrap().legs.len(), 2);
    }
    assert_eq!(verify_chain(&s.audit_all().unwrap(), None).unwrap(), 40);
}

/// Concurrent posts (which SQLite commits together) keep their own outcomes: a refused post
/// fails alone, a post retried at the same time creates its leg once.
fn concurrent_posts_succeed_or_fail_alone(s: Arc<dyn Store>) {
    let start = "2026-01-01T00:00:00Z";
    let first = s.upsert_leg(&leg("x", "primary", "kx", start)).unwrap();
    let results: Vec<StoreResult<UpsertOutcome>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..24)
            .map(|t| {
                let s = s.clone();
                sc.spawn(move || match t {
                    // The same recording as another role: refused.
                    0 | 1 => s.upsert_leg(&leg("x", "paired", "kx", start)),
                    // One post retried four times at once.
                    2..=5 => s.upsert_leg(&leg("dup", "primary", "kd", start)),
                    _ => s.upsert_leg(&leg(&format!("r{t}"), "primary", &format!("k{t}"), start)),
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, r) in results.iter().enumerate() {
        match t {
            0 | 1 => assert!(matches!(r, Err(StoreError::Conflict(_))), "{t}: {r:?}"),
            _ => assert!(r.is_ok(), "{t}: {r:?}"),
        }
    }
    let dups: Vec<UpsertOutcome> = results[2..=5]
        .iter()
        .map(|r| *r.as_ref().unwrap())
        .collect();
    assert!(dups
        .iter()
        .all(|o| o.interaction_id == dups[0].interaction_id));
    assert_eq!(dups.iter().filter(|o| o.created_leg).count(), 1);
    assert_eq!(dups.iter().filter(|o| o.created_interaction).count(), 1);
    // x, dup and the 18 others; x kept its one leg.
    assert_eq!(s.search(&all("id", false), &Scope::All).unwrap().total, 20);
    let x = s.get(first.interaction_id, &Scope::All).unwrap().unwrap();
    assert_eq!(x.legs.len(), 1);
}

/// A search counts up to `TOTAL_CAP` matches; beyond, the total is a lower bound, exact again
/// on a short last page.
fn a_broad_search_counts_up_to_the_cap(s: Arc<dyn Store>) {
    let n = TOTAL_CAP + 120;
    let legs: Vec<LegUpdate> = (0..n)
        .map(|i| {
            let mut l = leg(
                &format!("r{i}"),
                "primary",
                &format!("k{i}"),
                "2026-01-01T00:00:00Z",
            );
            l.start_time += chrono::Duration::seconds(i as i64);
            l
        })
        .collect();
    s.upsert_legs(&legs).unwrap();
    let mut q = all("startTime", true);
    q.page_size = 50;
    let p = s.search(&q, &Scope::All).unwrap();
    assert_eq!((p.total, p.total_is_lower_bound), (TOTAL_CAP, true));
    assert_eq!(p.items.len(), 50);
    assert_eq!(p.items[0].id, n as i64, "newest first");
    // Deep, full page: at least the rows up to it.
    q.page = (TOTAL_CAP / 50) as u32 + 1;
    let p = s.search(&q, &Scope::All).unwrap();
    assert_eq!((p.total, p.total_is_lower_bound), (TOTAL_CAP + 50, true));
    // The short last page tells the exact total.
    q.page_size = 100;
    q.page = (n / 100) as u32 + 1;
    let p = s.search(&q, &Scope::All).unwrap();
    assert_eq!(p.items.len(), (n % 100) as usize);
    assert_eq!((p.total, p.total_is_lower_bound), (n, false));
    // Past the end: nothing to see, the bound stays.
    q.page += 1;
    let p = s.search(&q, &Scope::All).unwrap();
    assert!(p.items.is_empty());
    assert_eq!((p.total, p.total_is_lower_bound), (TOTAL_CAP, true));
    // A selective search is counted exactly.
    let mut q = all("id", false);
    q.ids = vec![1, 2, 3];
    let p = s.search(&q, &Scope::All).unwrap();
    assert_eq!((p.total, p.total_is_lower_bound), (3, false));
}

/// A leg posted again with other metadata moves the interaction with it: every column, the
/// party indexes, the targets and the participants follow the latest post, and only what
/// changed is rewritten (SQLite's recompute writes the changed columns alone).
fn an_update_moves_every_search_with_it(s: Arc<dyn Store>) {
    let post = |called: &str, participants: &[&str], status: &str, upn: &str| {
        let mut v =
            serde_json::to_value(leg("r1", "primary", "k", "2026-01-01T00:00:00Z")).unwrap();
        v["calledParty"] = serde_json::json!({"kind": "phone", "number": called});
        v["targets"] = serde_json::json!([{"kind": "user", "id": "oid-1", "upn": upn}]);
        v["participants"] = serde_json::Value::Array(
            participants
                .iter()
                .map(|n| serde_json::json!({"participantId": n, "party": {"kind": "user", "displayName": n}}))
                .collect(),
        );
        v["answeredBy"] = serde_json::json!({"kind": "user", "upn": "Trader.Bill@x.example"});
        v["mediaStatus"] = serde_json::json!(status);
        s.upsert_leg(&serde_json::from_value(v).unwrap()).unwrap()
    };
    let id = post("4412392345", &["Alice"], "Recording", "a@x.example").interaction_id;
    let find = |f: &dyn Fn(&mut SearchQuery)| {
        let mut q = all("id", false);
        f(&mut q);
        ids(s.as_ref(), &q)
    };
    assert_eq!(find(&|q| q.called = Some("23923".into())), vec![id]);
    // The number is the called party's, not the calling one's.
    assert!(find(&|q| q.calling = Some("23923".into())).is_empty());
    assert!(find(&|q| q.answered = Some("23923".into())).is_empty());
    // Holding every trigram is not enough: 123, 234 and 345 are all in 4412392345, 12345 is not.
    assert!(find(&|q| q.called = Some("12345".into())).is_empty());
    // Case-insensitive.
    assert_eq!(find(&|q| q.answered = Some("bILL@x".into())), vec![id]);
    assert_eq!(find(&|q| q.participant = Some("Alice".into())), vec![id]);
    assert_eq!(find(&|q| q.users = vec!["a@x.example".into()]), vec![id]);
    // The same post again changes nothing and is still found.
    assert_eq!(
        post("4412392345", &["Alice"], "Recording", "a@x.example").interaction_id,
        id
    );
    assert_eq!(find(&|q| q.called = Some("23923".into())), vec![id]);
    assert_eq!(find(&|q| q.participant = Some("Alice".into())), vec![id]);
    // New number, a second participant, another target, a later status.
    post("449999999", &["Alice", "Bob"], "Available", "b@x.example");
    assert!(find(&|q| q.called = Some("23923".into())).is_empty());
    assert!(find(&|q| q.called = Some("441239*".into())).is_empty());
    assert_eq!(find(&|q| q.called = Some("99999".into())), vec![id]);
    assert_eq!(find(&|q| q.called = Some("449999*".into())), vec![id]);
    assert_eq!(find(&|q| q.participant = Some("Bob".into())), vec![id]);
    assert!(find(&|q| q.users = vec!["a@x.example".into()]).is_empty());
    assert_eq!(find(&|q| q.users = vec!["b@x.example".into()]), vec![id]);
    assert_eq!(
        find(&|q| q.media_status = vec![MediaStatus::Available]),
        vec![id]
    );
    let d = s.get(id, &Scope::All).unwrap().unwrap();
    assert_eq!(d.participant_details.len(), 2);
    // A status never moves back: a late Recording post leaves it Available.
    post("449999999", &["Alice", "Bob"], "Recording", "b@x.example");
    assert_eq!(
        find(&|q| q.media_status = vec![MediaStatus::Available]),
        vec![id]
    );
}

macro_rules! on_both_backends {
    ($($body:ident => $sqlite:ident, $pg:ident;)*) => {$(
        #[test]
        fn $sqlite() {
            $body(Arc::new(SqliteStore::in_memory().unwrap()))
        }

        #[test]
        fn $pg() {
            let Some((store, _db)): Option<(Arc<super::postgres::PgStore>, ScratchDb)> =
                test_store(stringify!($pg))
            else {
                return;
            };
            $body(store)
        }
    )*};
}

on_both_backends! {
    a_batch_is_all_or_nothing => sqlite_a_batch_is_all_or_nothing, pg_a_batch_is_all_or_nothing;
    an_alarm_is_raised_once_and_cleared_once => sqlite_an_alarm_is_raised_once_and_cleared_once,
        pg_an_alarm_is_raised_once_and_cleared_once;
    names_case_and_null_order => sqlite_names_case_and_null_order, pg_names_case_and_null_order;
    notes_match_whole_words => sqlite_notes_match_whole_words, pg_notes_match_whole_words;
    concurrent_ingest_pairs_and_audit_chains => sqlite_concurrent_ingest_pairs_and_audit_chains,
        pg_concurrent_ingest_pairs_and_audit_chains;
    concurrent_posts_succeed_or_fail_alone => sqlite_concurrent_posts_succeed_or_fail_alone,
        pg_concurrent_posts_succeed_or_fail_alone;
    a_broad_search_counts_up_to_the_cap => sqlite_a_broad_search_counts_up_to_the_cap,
        pg_a_broad_search_counts_up_to_the_cap;
    an_update_moves_every_search_with_it => sqlite_an_update_moves_every_search_with_it,
        pg_an_update_moves_every_search_with_it;
}

/// Migrations run once; a database newer than the binary is refused.
#[test]
fn pg_migrations_run_once_and_a_newer_schema_is_refused() {
    let Some((store, db)) = test_store("pg_migrations_run_once_and_a_newer_schema_is_refused")
    else {
        return;
    };
    drop(store);
    let again = db.store().unwrap();
    drop(again);
    let mut c = db.config().connect(::postgres::NoTls).unwrap();
    let v: i32 = c
        .query_one("SELECT version FROM schema_version", &[])
        .unwrap()
        .get(0);
    assert_eq!(v as usize, super::postgres::schema::MIGRATIONS.len());
    c.execute("UPDATE schema_version SET version = version + 1", &[])
        .unwrap();
    drop(c);
    let e = db
        .store()
        .err()
        .expect("a newer schema is refused")
        .to_string();
    assert!(e.contains("newer than this binary"), "{e}");
}
