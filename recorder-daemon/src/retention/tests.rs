//! The retention rule and cycle against a real (in-memory) SQLite store and an in-memory
//! storage: deletion requests, expiry, legal hold, storage failures, audit.

use super::*;
use crate::audit::{verify_chain, Anchor};
use crate::model::LegUpdate;
use crate::rbac::Scope;
use crate::storage::memory::MemoryStorage;
use crate::store::postgres::scratch::{test_store, ScratchDb};
use crate::store::sqlite::SqliteStore;
use crate::store::{Actor, DirectoryImport, SearchQuery, Store};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

struct World {
    store: Arc<dyn Store>,
    mem: Arc<MemoryStorage>,
    retention: Retention,
    anchor: PathBuf,
    _dir: tempfile::TempDir,
    /// The scratch PostgreSQL database of a `pg_` test.
    _pg: Option<ScratchDb>,
}

fn world(cfg: RetentionConfig) -> World {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap());
    world_on(cfg, dir, store, None)
}

/// [`world`] on PostgreSQL; `None` when that backend is skipped.
fn pg_world(test: &str, cfg: RetentionConfig) -> Option<World> {
    let (store, db) = test_store(test)?;
    Some(world_on(cfg, tempfile::tempdir().unwrap(), store, Some(db)))
}

fn world_on(
    cfg: RetentionConfig,
    dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    pg: Option<ScratchDb>,
) -> World {
    let d: DirectoryImport = serde_json::from_value(serde_json::json!({
        "users": [
            {"id": "oid-alice", "userPrincipalName": "alice@contoso.example"},
            {"id": "oid-bob", "userPrincipalName": "bob@contoso.example"}
        ]
    }))
    .unwrap();
    store.import_directory(&d).unwrap();
    let mem = Arc::new(MemoryStorage::new("local"));
    let mut storages = Storages::default();
    storages.insert(mem.clone());
    let anchor = dir.path().join("audit-head.json");
    let retention = Retention::new(store.clone(), storages, Some(anchor.clone()), &cfg);
    World {
        store,
        mem,
        retention,
        anchor,
        _dir: dir,
        _pg: pg,
    }
}

/// A sealed, uploaded leg of `rec` for `target` (oid), with its files in the memory storage.
fn leg(rec: &str, role: &str, key: &str, target: &str, start: &str, days: u32) -> LegUpdate {
    serde_json::from_value(serde_json::json!({
        "callId": format!("call-{rec}"), "recordingId": rec, "botRole": role, "pairingKey": key,
        "targets": [{"kind": "user", "id": target}],
        "callingParty": {"kind": "phone", "number": format!("4420{}", rec.len() * 1111)},
        "startTime": start, "direction": "Outgoing", "callType": "PSTN p2p",
        "retentionDays": days, "storage": "local", "mediaStatus": "Available",
    }))
    .unwrap()
}

impl World {
    /// Posts the leg and stores its files where the uploader would.
    fn call(&self, l: &LegUpdate) -> i64 {
        let out = self.store.upsert_leg(l).unwrap();
        let path = crate::storage::media_path(&l.start_time, &l.recording_id);
        for f in ["mixed.ogg", "meta.json", "manifest.json"] {
            self.mem
                .insert(&format!("{path}/{f}"), format!("{}:{f}", l.recording_id));
        }
        out.interaction_id
    }

    fn objects_of(&self, rec: &str) -> usize {
        self.mem
            .keys()
            .iter()
            .filter(|k| k.contains(&format!("/{rec}/")))
            .count()
    }

    fn status(&self, id: i64) -> Option<String> {
        self.store
            .get(id, &Scope::All)
            .unwrap()
            .map(|d| d.summary.media_status)
    }

    fn hold(&self, oid: &str, on: bool, at: &str) {
        self.store
            .set_legal_hold(oid, on, "admin@contoso.example", t(at))
            .unwrap();
    }

    fn request(&self, id: i64, scope: DeletionScope) -> Result<DeletionRequest, StoreError> {
        self.store.request_deletion(
            id,
            scope,
            "DPO Carol",
            "GDPR art. 17",
            &Actor {
                oid: "oid-admin".into(),
                upn: "admin@contoso.example".into(),
            },
            &Scope::All,
        )
    }

    async fn cycle(&self, now: &str) -> CycleReport {
        self.retention.run_cycle(t(now)).await.unwrap()
    }

    fn audit_ok(&self) -> usize {
        let anchor: Anchor = serde_json::from_slice(&std::fs::read(&self.anchor).unwrap()).unwrap();
        verify_chain(&self.store.audit_all().unwrap(), Some(&anchor)).unwrap()
    }

    fn deletions_audited(&self, id: i64) -> Vec<String> {
        self.store
            .audit_all()
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.action == "delete" && e.item_type == "interaction" && e.item == id.to_string()
            })
            .map(|e| e.description)
            .collect()
    }
}

fn hold_target(events: &[(bool, &str)], on_hold: bool) -> TargetHold {
    TargetHold {
        oid: "o".into(),
        upn: "u".into(),
        on_hold,
        events: events
            .iter()
            .map(|(on, at)| HoldEvent {
                oid: "o".into(),
                on: *on,
                at: t(at),
                by: "x".into(),
            })
            .collect(),
    }
}

#[test]
fn the_hold_stops_the_retention_clock() {
    let hold = [hold_target(
        &[
            (true, "2026-06-01T00:00:00Z"),
            (false, "2026-08-01T00:00:00Z"),
        ],
        false,
    )];
    // The issue's example: retention 90 days, hold Jun 1 -> released Aug 1, kept until Sep 1:
    // the call of Apr 3 (normal expiry Jul 2) had 31 days left when the hold began, and gets
    // them back from the release.
    let start = t("2026-04-03T00:00:00Z");
    let exp = start + Duration::days(90);
    assert_eq!(exp, t("2026-07-02T00:00:00Z"));
    assert_eq!(
        effective_expiry(start, exp, &hold),
        Expiry::At(t("2026-09-01T00:00:00Z"))
    );
    // A call recorded during the hold: its 90 days count from the release.
    let start = t("2026-06-15T10:00:00Z");
    assert_eq!(
        effective_expiry(start, start + Duration::days(90), &hold),
        Expiry::At(t("2026-08-01T00:00:00Z") + Duration::days(90))
    );
    // Expired before the hold began, or recorded after the release: unchanged.
    let start = t("2026-02-01T00:00:00Z");
    let exp = start + Duration::days(90);
    assert_eq!(effective_expiry(start, exp, &hold), Expiry::At(exp));
    let start = t("2026-08-02T00:00:00Z");
    let exp = start + Duration::days(90);
    assert_eq!(effective_expiry(start, exp, &hold), Expiry::At(exp));
    // Still on hold: no expiry at all.
    let on = [hold_target(&[(true, "2026-06-01T00:00:00Z")], true)];
    assert_eq!(
        effective_expiry(t("2026-04-03T00:00:00Z"), t("2026-07-02T00:00:00Z"), &on),
        Expiry::Held
    );
    // Two users' overlapping holds count once; two separate holds add up.
    let two = [
        hold_target(
            &[
                (true, "2026-06-01T00:00:00Z"),
                (false, "2026-07-01T00:00:00Z"),
            ],
            false,
        ),
        hold_target(
            &[
                (true, "2026-06-15T00:00:00Z"),
                (false, "2026-08-01T00:00:00Z"),
            ],
            false,
        ),
    ];
    assert_eq!(
        effective_expiry(t("2026-04-03T00:00:00Z"), t("2026-07-02T00:00:00Z"), &two),
        Expiry::At(t("2026-09-01T00:00:00Z"))
    );
    let split = [hold_target(
        &[
            (true, "2026-06-01T00:00:00Z"),
            (false, "2026-06-11T00:00:00Z"),
            (true, "2026-06-21T00:00:00Z"),
            (false, "2026-07-01T00:00:00Z"),
        ],
        false,
    )];
    assert_eq!(
        effective_expiry(t("2026-04-03T00:00:00Z"), t("2026-07-02T00:00:00Z"), &split),
        Expiry::At(t("2026-07-22T00:00:00Z"))
    );
}

async fn the_issue_example_kept_until_september_first_on(w: World) {
    let id = w.call(&leg(
        "rec-apr3",
        "primary",
        "k1",
        "oid-alice",
        "2026-04-03T00:00:00Z",
        90,
    ));
    w.hold("oid-alice", true, "2026-06-01T00:00:00Z");
    let r = w.cycle("2026-07-15T00:00:00Z").await;
    assert_eq!((r.kept_on_hold, r.expired_media_deleted), (1, 0));
    w.hold("oid-alice", false, "2026-08-01T00:00:00Z");
    // Removing Alice from the directory does not forget her hold.
    w.store.delete_user("oid-alice").unwrap();
    let r = w.cycle("2026-08-31T23:59:59Z").await;
    assert_eq!((r.kept_after_hold, r.expired_media_deleted), (1, 0));
    assert_eq!(w.objects_of("rec-apr3"), 3);
    assert_eq!(w.status(id).as_deref(), Some("Available"));
    let r = w.cycle("2026-09-01T00:00:00Z").await;
    assert_eq!((r.expired_media_deleted, r.objects_deleted), (1, 3));
    assert_eq!(w.objects_of("rec-apr3"), 0);
    assert_eq!(w.status(id).as_deref(), Some("Deleted"), "metadata kept");
    let audited = w.deletions_audited(id);
    assert_eq!(audited.len(), 1);
    assert!(
        audited[0].contains("retention ended 2026-09-01T00:00:00.000Z")
            && audited[0].contains("legal hold moved it from 2026-07-02"),
        "{audited:?}"
    );
    // Nothing left to do: a later cycle deletes nothing more and audits nothing more.
    let r = w.cycle("2026-12-01T00:00:00Z").await;
    assert_eq!(
        r,
        CycleReport {
            now: r.now.clone(),
            ..Default::default()
        }
    );
    w.audit_ok();
}

async fn deletion_requests_run_in_the_next_cycle_for_both_scopes_on(w: World) {
    let a = w.call(&leg(
        "rec-a",
        "primary",
        "ka",
        "oid-alice",
        "2026-05-01T10:00:00Z",
        3650,
    ));
    let b = w.call(&leg(
        "rec-bb",
        "primary",
        "kb",
        "oid-bob",
        "2026-05-01T11:00:00Z",
        3650,
    ));
    let party = |number: &str| SearchQuery {
        calling: Some(number.into()),
        sort: "id".into(),
        page: 1,
        page_size: 10,
        ..Default::default()
    };
    // rec-bb's calling number is 4420 6666: found by the "contains" rule before.
    assert_eq!(
        w.store.search(&party("6666"), &Scope::All).unwrap().total,
        1
    );
    w.request(a, DeletionScope::MediaOnly).unwrap();
    w.request(b, DeletionScope::MetadataAndMedia).unwrap();
    // Nothing happens until the cycle runs.
    assert_eq!(w.objects_of("rec-a") + w.objects_of("rec-bb"), 6);
    let r = w.cycle("2026-05-02T00:00:00Z").await;
    assert_eq!((r.requests_executed, r.objects_deleted), (2, 6));
    assert!(w.mem.keys().is_empty());
    assert_eq!(w.status(a).as_deref(), Some("Deleted"));
    assert_eq!(w.status(b), None, "metadata gone");
    assert_eq!(
        w.store.search(&party("6666"), &Scope::All).unwrap().total,
        0
    );
    assert!(w.store.pending_deletions(0, 10).unwrap().is_empty());
    let da = w.deletions_audited(a);
    assert!(da[0].contains("media deleted by deletion request") && da[0].contains("DPO Carol"));
    let db = w.deletions_audited(b);
    assert!(db[0].contains("metadata and media deleted") && db[0].contains("GDPR art. 17"));
    // A late post of the media-only leg does not bring the media status back.
    w.store
        .upsert_leg(&leg(
            "rec-a",
            "primary",
            "ka",
            "oid-alice",
            "2026-05-01T10:00:00Z",
            3650,
        ))
        .unwrap();
    assert_eq!(w.status(a).as_deref(), Some("Deleted"));
    w.audit_ok();
}

async fn a_held_users_deletion_waits_for_the_release_on(w: World) {
    let id = w.call(&leg(
        "rec-h",
        "primary",
        "kh",
        "oid-alice",
        "2026-05-01T10:00:00Z",
        3650,
    ));
    w.request(id, DeletionScope::MetadataAndMedia).unwrap();
    w.hold("oid-alice", true, "2026-05-01T12:00:00Z");
    // A new request is refused outright while the hold is on.
    let other = w.call(&leg(
        "rec-h2",
        "primary",
        "kh2",
        "oid-alice",
        "2026-05-01T10:30:00Z",
        3650,
    ));
    assert!(matches!(
        w.request(other, DeletionScope::MediaOnly),
        Err(StoreError::Conflict(_))
    ));
    for day in ["2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"] {
        let r = w.cycle(day).await;
        assert_eq!((r.requests_on_hold, r.requests_executed), (1, 0));
        assert!(r.problems[0].contains("alice@contoso.example is on legal hold"));
    }
    assert_eq!(w.objects_of("rec-h"), 3);
    assert_eq!(w.store.pending_deletions(0, 10).unwrap().len(), 1);
    assert!(w.deletions_audited(id).is_empty());
    w.hold("oid-alice", false, "2026-05-10T00:00:00Z");
    let r = w.cycle("2026-05-11T00:00:00Z").await;
    assert_eq!((r.requests_on_hold, r.requests_executed), (0, 1));
    assert_eq!(w.objects_of("rec-h"), 0);
    assert_eq!(w.status(id), None);
    assert_eq!(w.objects_of("rec-h2"), 3, "the refused call is untouched");
    let ev = w.store.export_user("oid-alice").unwrap().legal_hold_events;
    assert_eq!(
        ev.iter().map(|e| (e.on, e.at)).collect::<Vec<_>>(),
        vec![
            (true, t("2026-05-01T12:00:00Z")),
            (false, t("2026-05-10T00:00:00Z"))
        ]
    );
    w.audit_ok();
}

async fn a_storage_failure_marks_nothing_and_the_next_cycle_retries_on(w: World) {
    let req = w.call(&leg(
        "rec-r",
        "primary",
        "kr",
        "oid-alice",
        "2026-05-01T10:00:00Z",
        3650,
    ));
    let exp = w.call(&leg(
        "rec-e",
        "primary",
        "ke",
        "oid-bob",
        "2026-01-01T10:00:00Z",
        30,
    ));
    w.request(req, DeletionScope::MediaOnly).unwrap();
    w.mem.set_down(true);
    let audit_before = w.store.audit_all().unwrap().len();
    let r = w.cycle("2026-05-02T00:00:00Z").await;
    assert_eq!(r.storage_failures, 2);
    assert_eq!((r.requests_executed, r.expired_media_deleted), (0, 0));
    assert!(
        r.problems.iter().all(|p| p.contains("unreachable")),
        "{:?}",
        r.problems
    );
    assert_eq!(w.status(req).as_deref(), Some("Available"));
    assert_eq!(w.status(exp).as_deref(), Some("Available"));
    assert_eq!(w.store.pending_deletions(0, 10).unwrap().len(), 1);
    assert_eq!(
        w.store.audit_all().unwrap().len(),
        audit_before,
        "nothing audited as done"
    );
    w.mem.set_down(false);
    let r = w.cycle("2026-05-03T00:00:00Z").await;
    assert_eq!(
        (
            r.requests_executed,
            r.expired_media_deleted,
            r.storage_failures
        ),
        (1, 1, 0)
    );
    assert!(w.mem.keys().is_empty());
    assert_eq!(w.status(req).as_deref(), Some("Deleted"));
    assert_eq!(w.status(exp).as_deref(), Some("Deleted"));
    w.audit_ok();
}

async fn an_unconfigured_storage_is_a_failure_not_a_deletion_on(w: World) {
    let mut l = leg(
        "rec-x",
        "primary",
        "kx",
        "oid-alice",
        "2026-01-01T10:00:00Z",
        30,
    );
    l.storage = "azure-eu".into();
    let id = w.call(&l);
    let r = w.cycle("2026-05-03T00:00:00Z").await;
    assert_eq!((r.storage_failures, r.expired_media_deleted), (1, 0));
    assert!(r.problems[0].contains("\"azure-eu\""));
    assert_eq!(w.status(id).as_deref(), Some("Available"));
}

async fn a_meeting_keeps_the_longest_retention_of_its_legs_on(w: World) {
    let start = "2026-03-02T10:00:00Z";
    // Recorded for Alice's 90-day profile and Bob's 365-day one; whichever arrives first.
    let short = leg("rec-m1", "primary", "meeting:t/p", "oid-alice", start, 90);
    let long = leg("rec-m2", "paired", "meeting:t/p", "oid-bob", start, 365);
    let id = w.call(&long);
    assert_eq!(w.call(&short), id, "one interaction");
    let want = fmt_time(&(t(start) + Duration::days(365)));
    let got = w
        .store
        .get(id, &Scope::All)
        .unwrap()
        .unwrap()
        .summary
        .expiration;
    assert_eq!(got.as_deref(), Some(want.as_str()));
    // A re-post of the short leg does not shorten it either.
    w.store.upsert_leg(&short).unwrap();
    let got = w
        .store
        .get(id, &Scope::All)
        .unwrap()
        .unwrap()
        .summary
        .expiration;
    assert_eq!(got.as_deref(), Some(want.as_str()));
    // Past 90 days nothing goes; past 365 both legs' media go.
    let r = w.cycle("2026-07-01T00:00:00Z").await;
    assert_eq!(r.expired_media_deleted, 0);
    let r = w.cycle("2027-03-03T00:00:00Z").await;
    assert_eq!((r.expired_media_deleted, r.objects_deleted), (1, 6));
    assert!(w.mem.keys().is_empty());
}

async fn expiry_walks_in_batches_and_may_delete_metadata_on(w: World) {
    let ids: Vec<i64> = (0..5)
        .map(|i| {
            w.call(&leg(
                &format!("rec-b{i}"),
                "primary",
                &format!("kb{i}"),
                "oid-bob",
                &format!("2026-01-0{}T10:00:00Z", i + 1),
                30,
            ))
        })
        .collect();
    let kept = w.call(&leg(
        "rec-keep",
        "primary",
        "kk",
        "oid-bob",
        "2026-01-01T10:00:00Z",
        3650,
    ));
    let recording = {
        let mut l = leg(
            "rec-live",
            "primary",
            "kl",
            "oid-bob",
            "2026-01-01T10:00:00Z",
            1,
        );
        l.media_status = MediaStatus::Recording;
        w.call(&l)
    };
    let r = w.cycle("2026-03-01T00:00:00Z").await;
    assert_eq!((r.expired_deleted, r.deferred), (5, 1));
    for id in ids {
        assert_eq!(w.status(id), None);
    }
    assert_eq!(w.status(kept).as_deref(), Some("Available"));
    assert_eq!(w.status(recording).as_deref(), Some("Recording"));
    assert_eq!(
        w.mem.keys().len(),
        6,
        "the kept and the live call's objects"
    );
    w.audit_ok();
}

/// Runs each test body `<name>_on(world)` on SQLite as `<name>` and on PostgreSQL as
/// `pg_<name>`, with the retention configuration given.
macro_rules! on_both_backends {
    ($($body:ident => $name:ident, $pg:ident, $cfg:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            $body(world($cfg)).await
        }

        #[tokio::test]
        async fn $pg() {
            if let Some(w) = pg_world(stringify!($pg), $cfg) {
                $body(w).await
            }
        }
    )*};
}

on_both_backends! {
    the_issue_example_kept_until_september_first_on => the_issue_example_kept_until_september_first, pg_the_issue_example_kept_until_september_first, RetentionConfig::default();
    deletion_requests_run_in_the_next_cycle_for_both_scopes_on => deletion_requests_run_in_the_next_cycle_for_both_scopes, pg_deletion_requests_run_in_the_next_cycle_for_both_scopes, RetentionConfig::default();
    a_held_users_deletion_waits_for_the_release_on => a_held_users_deletion_waits_for_the_release, pg_a_held_users_deletion_waits_for_the_release, RetentionConfig::default();
    a_storage_failure_marks_nothing_and_the_next_cycle_retries_on => a_storage_failure_marks_nothing_and_the_next_cycle_retries, pg_a_storage_failure_marks_nothing_and_the_next_cycle_retries, RetentionConfig::default();
    an_unconfigured_storage_is_a_failure_not_a_deletion_on => an_unconfigured_storage_is_a_failure_not_a_deletion, pg_an_unconfigured_storage_is_a_failure_not_a_deletion, RetentionConfig::default();
    a_meeting_keeps_the_longest_retention_of_its_legs_on => a_meeting_keeps_the_longest_retention_of_its_legs, pg_a_meeting_keeps_the_longest_retention_of_its_legs, RetentionConfig::default();
    expiry_walks_in_batches_and_may_delete_metadata_on => expiry_walks_in_batches_and_may_delete_metadata, pg_expiry_walks_in_batches_and_may_delete_metadata, RetentionConfig {
            batch_size: 2,
            delete_metadata_on_expiry: true,
            ..Default::default()
        };
}

#[test]
fn the_schedule_starts_at_the_time_of_day_and_refuses_nonsense() {
    let cfg = RetentionConfig {
        time_of_day: Some("02:30".into()),
        ..Default::default()
    };
    let s = cfg.schedule().unwrap();
    assert_eq!(s.interval, Duration::hours(24));
    assert_eq!(
        s.first(t("2026-06-01T01:00:00Z")),
        t("2026-06-01T02:30:00Z")
    );
    assert_eq!(
        s.first(t("2026-06-01T03:00:00Z")),
        t("2026-06-02T02:30:00Z")
    );
    let plain = RetentionConfig::default().schedule().unwrap();
    assert_eq!(
        plain.first(t("2026-06-01T03:00:00Z")),
        t("2026-06-01T03:00:00Z")
    );
    for bad in [
        RetentionConfig {
            interval: "soon".into(),
            ..Default::default()
        },
        RetentionConfig {
            time_of_day: Some("25:00".into()),
            ..Default::default()
        },
        RetentionConfig {
            batch_size: 0,
            ..Default::default()
        },
    ] {
        assert!(bad.schedule().is_err(), "{bad:?}");
    }
}

/// Throughput of expiry: `cargo test -p recorder-daemon --release -- --ignored
/// expiry_throughput --nocapture` (figures in docs/retention.md).
#[tokio::test]
#[ignore]
async fn expiry_throughput() {
    let w = world(RetentionConfig::default());
    let n = 20_000;
    let legs: Vec<LegUpdate> = (0..n)
        .map(|i| {
            leg(
                &format!("rec-{i}"),
                "primary",
                &format!("k{i}"),
                "oid-bob",
                "2026-01-01T10:00:00Z",
                30,
            )
        })
        .collect();
    for chunk in legs.chunks(1000) {
        w.store.upsert_legs(chunk).unwrap();
    }
    for l in &legs {
        let path = crate::storage::media_path(&l.start_time, &l.recording_id);
        w.mem.insert(&format!("{path}/mixed.ogg"), &b"x"[..]);
    }
    let t0 = std::time::Instant::now();
    let r = w.cycle("2026-03-01T00:00:00Z").await;
    let el = t0.elapsed();
    assert_eq!(r.expired_media_deleted, n);
    println!(
        "expired {n} calls in {:.2} s: {:.0} calls/s",
        el.as_secs_f64(),
        n as f64 / el.as_secs_f64()
    );
    assert_eq!(w.audit_ok(), n as usize);
}
