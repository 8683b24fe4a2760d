//! API tests through the router (`oneshot`, no socket): ingest, every filter and wildcard,
//! every permission per access level, CSV, Range, bad input, audit tamper detection, and the
//! OpenAPI document against the router.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{app, AppState};
use crate::auth::{now_secs, Claims, TokenKeys, INGEST_ROLE};
use crate::store::postgres::scratch::{test_store, ScratchDb};
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

const TENANT: &str = "tenant-1";
const INGEST_KEY: &str = "ingest-secret";

struct Env {
    app: Router,
    keys: TokenKeys,
    dir: tempfile::TempDir,
    /// The scratch PostgreSQL database of a `pg_` test, dropped with the environment.
    pg: Option<ScratchDb>,
}

struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn ids(&self) -> Vec<i64> {
        self.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_i64().unwrap())
            .collect()
    }
}

impl Env {
    fn new(file_db: bool) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = if file_db {
            Arc::new(SqliteStore::open(&dir.path().join("store.db")).unwrap())
        } else {
            Arc::new(SqliteStore::in_memory().unwrap())
        };
        Env::with_store(dir, store, None)
    }

    /// On a scratch PostgreSQL database; `None` when the backend is skipped (see
    /// [`test_store`]).
    fn pg(test: &str) -> Option<Env> {
        let (store, db) = test_store(test)?;
        Some(Env::with_store(
            tempfile::tempdir().unwrap(),
            store,
            Some(db),
        ))
    }

    fn with_store(dir: tempfile::TempDir, store: Arc<dyn Store>, pg: Option<ScratchDb>) -> Env {
        let keys = TokenKeys::hs256(&[1; 32], TENANT);
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root).unwrap();
        let state = AppState::new(
            store.clone(),
            keys.clone(),
            Some(INGEST_KEY.into()),
            ["admin@contoso.example".to_string()],
            root,
            Some(dir.path().join("audit-head.json")),
            "http://test".into(),
            64 * 1024,
        );
        Env {
            app: app(state),
            keys,
            dir,
            pg,
        }
    }

    fn token_for(
        &self,
        upn: &str,
        oid: &str,
        groups: &[&str],
        roles: &[&str],
        exp: u64,
        tid: &str,
    ) -> String {
        self.keys
            .mint(&Claims {
                oid: oid.into(),
                upn: upn.into(),
                tid: tid.into(),
                groups: groups.iter().map(|s| s.to_string()).collect(),
                roles: roles.iter().map(|s| s.to_string()).collect(),
                exp,
                iat: now_secs(),
            })
            .unwrap()
    }

    fn token(&self, upn: &str, oid: &str, groups: &[&str]) -> String {
        self.token_for(upn, oid, groups, &[], now_secs() + 600, TENANT)
    }

    fn admin(&self) -> String {
        self.token("admin@contoso.example", "admin-oid", &[])
    }

    async fn raw(&self, req: Request<Body>) -> Resp {
        let r = self.app.clone().oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = r.into_body().collect().await.unwrap().to_bytes().to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string()))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        self.raw(req).await
    }

    async fn get(&self, uri: &str, token: &str) -> Resp {
        self.call(Method::GET, uri, Some(token), None).await
    }

    async fn ingest(&self, leg: &Value) -> Resp {
        self.call(
            Method::POST,
            &format!("/api/v1/interactions?ingestKey={INGEST_KEY}"),
            None,
            Some(leg.clone()),
        )
        .await
    }

    async fn total(&self) -> u64 {
        let t = self.admin();
        self.get("/api/v1/interactions?pageSize=500", &t)
            .await
            .json()["total"]
            .as_u64()
            .unwrap()
    }
}

fn user(kind: &str, id: &str, name: &str, upn: &str) -> Value {
    json!({"kind": kind, "id": id, "displayName": name, "upn": upn})
}

fn phone(number: &str, name: Option<&str>) -> Value {
    let mut v = json!({"kind": "phone", "id": format!("+{number}"), "number": number});
    if let Some(n) = name {
        v["displayName"] = json!(n);
    }
    v
}

fn alice() -> Value {
    user("user", "a-1", "Alice", "alice@contoso.example")
}

/// Four calls: alice's incoming PSTN call (Pro: two legs), bob's outgoing PSTN call, carol's
/// meeting, and a call of a user the directory does not know.
fn legs() -> Vec<Value> {
    let mut v = Vec::new();
    let base = json!({
        "callId": "c1", "recordingId": "r1", "botRole": "primary", "pairingKey": "chain:k1/a-1",
        "callChainId": "k1", "tenantId": TENANT,
        "targets": [alice()],
        "callingParty": phone("4420732111", Some("Bill Smith")),
        "calledParty": alice(), "answeredBy": alice(),
        "startTime": "2026-03-02T10:00:00Z", "answeredTime": "2026-03-02T10:00:02Z",
        "releaseTime": "2026-03-02T10:05:00Z",
        "direction": "Incoming", "callType": "PSTN p2p", "releaseCause": "Normal",
        "endReason": "terminated", "resultInfo": {"code": 200, "subcode": 4097, "message": "bye"},
        "participants": [
            {"participantId": "p1", "party": alice(), "msi": 17, "muted": false, "inLobby": false,
             "external": false, "joinTime": "2026-03-02T10:00:02Z", "leaveTime": "2026-03-02T10:05:00Z"},
            {"participantId": "p2", "party": phone("4420732111", Some("Bill Smith")), "muted": false,
             "inLobby": false, "external": true, "joinTime": "2026-03-02T10:00:02Z"}
        ],
        "profile": "Traders", "retentionDays": 2555, "expiration": "2033-03-01T10:00:00Z",
        "storage": "local", "doubleRecordingType": "Pro", "notification": "silent",
        "pairedRecorders": [{"id": "app2", "participantId": null}],
        "mediaStatus": "Available", "sysCallId": "c1", "waitTimeMs": 2000, "holdTimeMs": 0,
        "mediaPath": "rec1"
    });
    v.push(base.clone());
    let mut paired = base.clone();
    paired["callId"] = json!("c1-paired");
    paired["recordingId"] = json!("r1-paired");
    paired["botRole"] = json!("paired");
    paired["startTime"] = json!("2026-03-02T10:00:01Z");
    paired.as_object_mut().unwrap().remove("mediaPath");
    v.push(paired);
    v.push(json!({
        "callId": "c2", "recordingId": "r2", "botRole": "primary", "pairingKey": "chain:k2/b-1",
        "targets": [user("user", "b-1", "Bob", "bob@contoso.example")],
        "callingParty": user("user", "b-1", "Bob", "bob@contoso.example"),
        "calledParty": phone("7325550000", Some("Jane Roe")),
        "answeredBy": phone("7325550000", Some("Jane Roe")),
        "startTime": "2026-03-03T15:30:00Z", "direction": "Outgoing", "callType": "PSTN p2p",
        "releaseCause": "Failure", "participants": [], "profile": "Support", "retentionDays": 30,
        "storage": "local", "doubleRecordingType": "Essentials", "notification": "beep",
        "pairedRecorders": [], "mediaStatus": "Failed", "holdTimeMs": 0
    }));
    v.push(json!({
        "callId": "c3", "recordingId": "r3", "botRole": "primary", "pairingKey": "meeting:t3/Traders",
        "threadId": "19:meeting_x@thread.v2",
        "targets": [user("user", "c-1", "Carol", "carol@contoso.example")],
        "callingParty": user("user", "c-1", "Carol", "carol@contoso.example"),
        "startTime": "2026-03-04T08:00:00Z", "direction": "None", "callType": "Internal Meeting",
        "participants": [
            {"participantId": "p1", "party": user("user", "c-1", "Carol", "carol@contoso.example"),
             "muted": false, "inLobby": false, "external": false, "joinTime": "2026-03-04T08:00:00Z"},
            {"participantId": "p2", "party": user("user", "d-1", "Dave Billings", "dave@contoso.example"),
             "muted": true, "inLobby": false, "external": false, "joinTime": "2026-03-04T08:01:00Z"}
        ],
        "profile": "Traders", "retentionDays": 10, "storage": "local",
        "doubleRecordingType": "Essentials", "notification": "announce", "pairedRecorders": [],
        "mediaStatus": "Recording", "holdTimeMs": 0
    }));
    v.push(json!({
        "callId": "c4", "recordingId": "r4", "botRole": "primary", "pairingKey": "chain:k4/z-1",
        "targets": [user("user", "z-1", "Zed", "zed@contoso.example")],
        "callingParty": user("user", "y-1", "=SUM(A1)", "yan@contoso.example"),
        "calledParty": user("user", "z-1", "Zed", "zed@contoso.example"),
        "startTime": "2026-03-05T23:00:00Z", "direction": "Incoming", "callType": "Internal p2p",
        "releaseCause": "Missed", "participants": [], "profile": "Traders", "retentionDays": 10,
        "storage": "local", "doubleRecordingType": "Essentials", "notification": "silent",
        "pairedRecorders": [], "mediaStatus": "Unavailable", "holdTimeMs": 0
    }));
    v
}

fn directory() -> Value {
    let u = |id: &str, upn: &str, name: &str| json!({"id": id, "userPrincipalName": upn, "displayName": name});
    json!({
        "users": [
            u("a-1", "alice@contoso.example", "Alice"),
            u("b-1", "bob@contoso.example", "Bob"),
            u("c-1", "carol@contoso.example", "Carol"),
            u("d-1", "dave@contoso.example", "Dave Billings"),
        ],
        "groups": [
            {"id": "sales", "displayName": "Sales", "members": [
                {"@odata.type": "#microsoft.graph.user", "id": "a-1"}, {"id": "c-1"}]},
            {"id": "support", "displayName": "Support", "members": [{"id": "b-1"}]},
        ]
    })
}

const ALL_CALL_PERMS: &[&str] = &[
    "play",
    "download",
    "tag",
    "addNotes",
    "deleteOthersNotes",
    "deleteCalls",
];

fn profiles() -> Vec<Value> {
    let p = |name: &str, group: &str, access: &str, perms: &[&str]| {
        json!({"name": name, "groups": [group], "callAccess": access,
               "callAccessGroups": ["sales"], "permissions": perms})
    };
    vec![
        p("Nobody", "g-none", "none", &[]),
        p("Own", "g-own", "own", &["play"]),
        p(
            "Team",
            "g-team",
            "ownAndGroups",
            &["play", "download", "tag", "addNotes"],
        ),
        p("Compliance", "g-all", "all", ALL_CALL_PERMS),
        p("Auditors", "g-aud", "none", &["auditTrail"]),
        p("Taggers", "g-tagadm", "none", &["manageTags"]),
        p(
            "Sysadmins",
            "g-sys",
            "none",
            &["configureSystem", "manageAccessProfiles"],
        ),
    ]
}

/// The store with the fixture loaded; a `vip` tag; the media file of interaction 1.
async fn loaded(file_db: bool) -> Env {
    load(Env::new(file_db)).await
}

/// [`loaded`] on PostgreSQL; `None` when that backend is skipped.
async fn loaded_pg(test: &str) -> Option<Env> {
    Some(load(Env::pg(test)?).await)
}

/// Runs each test body `<name>_on(env)` on the loaded SQLite store as `<name>` and on the
/// loaded PostgreSQL store as `pg_<name>`: the two backends must behave the same.
macro_rules! on_both_backends {
    ($($body:ident => $name:ident, $pg:ident;)*) => {$(
        #[tokio::test]
        async fn $name() {
            $body(loaded(false).await).await
        }

        #[tokio::test]
        async fn $pg() {
            if let Some(env) = loaded_pg(stringify!($pg)).await {
                $body(env).await
            }
        }
    )*};
}

on_both_backends! {
    ingest_is_idempotent_and_pairs_the_two_legs_on => ingest_is_idempotent_and_pairs_the_two_legs, pg_ingest_is_idempotent_and_pairs_the_two_legs;
    ingest_needs_the_key_or_a_service_token_on => ingest_needs_the_key_or_a_service_token, pg_ingest_needs_the_key_or_a_service_token;
    every_filter_and_wildcard_on => every_filter_and_wildcard, pg_every_filter_and_wildcard;
    sql_metacharacters_are_only_text_on => sql_metacharacters_are_only_text, pg_sql_metacharacters_are_only_text;
    bad_input_is_a_4xx_and_changes_nothing_on => bad_input_is_a_4xx_and_changes_nothing, pg_bad_input_is_a_4xx_and_changes_nothing;
    permissions_per_access_level_on => permissions_per_access_level, pg_permissions_per_access_level;
    notes_of_others_need_the_permission_on => notes_of_others_need_the_permission, pg_notes_of_others_need_the_permission;
    legal_hold_blocks_deletion_on => legal_hold_blocks_deletion, pg_legal_hold_blocks_deletion;
    tokens_that_are_refused_are_audited_on => tokens_that_are_refused_are_audited, pg_tokens_that_are_refused_are_audited;
    csv_export_has_the_report_header_and_columns_on => csv_export_has_the_report_header_and_columns, pg_csv_export_has_the_report_header_and_columns;
    media_download_with_ranges_on => media_download_with_ranges, pg_media_download_with_ranges;
    media_takes_the_token_from_the_query_for_audio_elements_on => media_takes_the_token_from_the_query_for_audio_elements, pg_media_takes_the_token_from_the_query_for_audio_elements;
}

async fn load(env: Env) -> Env {
    let admin = env.admin();
    let r = env
        .call(
            Method::POST,
            "/api/v1/directory/import",
            Some(&admin),
            Some(directory()),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    for p in profiles() {
        let r = env
            .call(
                Method::POST,
                "/api/v1/access-profiles",
                Some(&admin),
                Some(p),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    for l in legs() {
        let r = env.ingest(&l).await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = env
        .call(
            Method::POST,
            "/api/v1/tags",
            Some(&admin),
            Some(json!({"name": "vip", "description": "important"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let rec = env.dir.path().join("storage/rec1");
    std::fs::create_dir_all(&rec).unwrap();
    let media: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(rec.join("mixed.ogg"), media).unwrap();
    let segs = json!([{"participant": "17", "start_ms": 0.0, "end_ms": 1200.5},
                      {"participant": "p2", "start_ms": 900.0, "end_ms": 2000.0}]);
    std::fs::write(rec.join("segments.json"), segs.to_string()).unwrap();
    env
}

async fn ingest_is_idempotent_and_pairs_the_two_legs_on(env: Env) {
    let admin = env.admin();
    // Five legs, four interactions: the paired leg joined the primary's.
    assert_eq!(env.total().await, 4);
    let d = env.get("/api/v1/interactions/1", &admin).await.json();
    assert_eq!(d["legs"].as_array().unwrap().len(), 2, "{d}");
    assert_eq!(d["pairedCall"], "c1-paired");
    assert_eq!(d["callId"], "c1");
    assert_eq!(d["participants"], json!(["Alice", "Bill Smith"]));
    assert_eq!(d["expiration"], "2033-03-01T10:00:00.000Z");

    // A retried post changes nothing; an update changes the leg in place.
    let r = env.ingest(&legs()[0]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["interactionId"], 1);
    let mut upd = legs()[3].clone();
    upd["mediaStatus"] = json!("Available");
    upd["releaseTime"] = json!("2026-03-04T09:00:00Z");
    let r = env.ingest(&upd).await;
    assert_eq!(
        (r.status, r.json()["createdLeg"].clone()),
        (StatusCode::OK, json!(false))
    );
    assert_eq!(env.total().await, 4);
    let d = env.get("/api/v1/interactions/3", &admin).await.json();
    assert_eq!(
        (d["mediaStatus"].as_str(), d["releaseTime"].as_str()),
        (Some("Available"), Some("2026-03-04T09:00:00.000Z"))
    );
    // Expiration from the retention when the leg carries none.
    assert_eq!(d["expiration"], "2026-03-14T08:00:00.000Z");

    // A transfer leg: same pairing key, same role, new recording -> a new interaction.
    let mut transfer = legs()[0].clone();
    transfer["recordingId"] = json!("r1-transfer");
    transfer["callId"] = json!("c1b");
    transfer["startTime"] = json!("2026-03-02T10:05:00Z");
    let r = env.ingest(&transfer).await;
    assert_eq!(r.json()["createdInteraction"], true);
    assert_eq!(env.total().await, 5);

    // The same recording id under the other role is a conflict.
    let mut wrong = legs()[0].clone();
    wrong["botRole"] = json!("paired");
    assert_eq!(env.ingest(&wrong).await.status, StatusCode::CONFLICT);
}

async fn ingest_needs_the_key_or_a_service_token_on(env: Env) {
    let leg = legs()[2].clone();
    let post = |uri: &str, hdr: Option<(&str, String)>| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "application/json");
        if let Some((k, v)) = hdr {
            b = b.header(k, v);
        }
        b.body(Body::from(leg.to_string())).unwrap()
    };
    let u = "/api/v1/interactions";
    assert_eq!(
        env.raw(post(u, None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.raw(post(&format!("{u}?ingestKey=nope"), None))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.raw(post(u, Some(("x-ingest-key", "nope".into()))))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let user = env.token("alice@contoso.example", "a-1", &["g-all"]);
    assert_eq!(
        env.raw(post(u, Some(("authorization", format!("Bearer {user}")))))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        env.raw(post(u, Some(("x-ingest-key", INGEST_KEY.into()))))
            .await
            .status,
        StatusCode::OK
    );
    let svc = env.token_for(
        "bot-host",
        "svc",
        &[],
        &[INGEST_ROLE],
        now_secs() + 60,
        TENANT,
    );
    assert_eq!(
        env.raw(post(u, Some(("authorization", format!("Bearer {svc}")))))
            .await
            .status,
        StatusCode::OK
    );
    let audit = env
        .get(
            "/api/v1/audit?action=login&text=refused&pageSize=500",
            &env.admin(),
        )
        .await
        .json();
    assert!(audit["total"].as_u64().unwrap() >= 4, "{audit}");
}

async fn every_filter_and_wildcard_on(env: Env) {
    let admin = env.admin();
    let t = env.get("/api/v1/tags", &admin).await.json();
    let vip = t[0]["id"].as_i64().unwrap();
    let r = env
        .call(
            Method::PUT,
            "/api/v1/interactions/tags",
            Some(&admin),
            Some(json!({"interactionIds": [2, 3], "tagIds": [vip]})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = env
        .call(
            Method::POST,
            "/api/v1/interactions/3/notes",
            Some(&admin),
            Some(json!({"text": "Discuss the budgets, then the budget review."})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);

    let cases: &[(&str, &[i64])] = &[
        ("mediaStatus=Available", &[1]),
        ("mediaStatus=Failed&mediaStatus=Recording", &[2, 3]),
        ("user=alice@contoso.example", &[1]),
        ("user=ALICE@contoso.example", &[1]),
        ("user=b-1", &[2]),
        ("group=sales", &[1, 3]),
        ("group=support&group=sales", &[1, 2, 3]),
        ("from=2026-03-03T00:00:00Z&to=2026-03-05T00:00:00Z", &[2, 3]),
        ("from=2026-03-03T16:30:00%2B01:00", &[2, 3, 4]),
        ("timeFrom=09:00&timeTo=16:00", &[1, 2]),
        ("direction=None", &[3]),
        ("direction=Incoming", &[1, 4]),
        ("tag=vip", &[2, 3]),
        ("callingParty=4420732", &[1]),
        ("callingParty=732", &[1]),
        ("callingParty=4420*", &[1]),
        ("callingParty=732*", &[]),
        ("calledParty=732*", &[2]),
        ("calledParty=732", &[2]),
        ("calledParty=555", &[2]),
        ("calledParty=55", &[2]),
        ("calledParty=CONTOSO", &[1, 4]),
        ("callingParty=*Bill", &[1]),
        ("callingParty=*bill", &[1]),
        ("calledParty=*Jane", &[2]),
        ("answeredBy=*Alice", &[1]),
        ("answeredBy=7325*", &[2]),
        ("participant=Billings", &[3]),
        ("participant=4420732111", &[1]),
        ("callType=PSTN%20p2p", &[1, 2]),
        ("callType=Internal+Meeting&callType=Internal+p2p", &[3, 4]),
        ("releaseCause=Failure", &[2]),
        ("releaseCause=Missed&releaseCause=Normal", &[1, 4]),
        ("notes=budget", &[3]),
        ("notes=Budget+review", &[3]),
        ("notes=budg", &[]),
        ("notes=budget+salary", &[]),
        (
            "mediaStatus=Failed&direction=Outgoing&tag=vip&calledParty=732*",
            &[2],
        ),
        ("mediaStatus=Failed&direction=Incoming", &[]),
    ];
    for (q, want) in cases {
        let r = env
            .get(
                &format!("/api/v1/interactions?{q}&sort=id&order=asc"),
                &admin,
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{q}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.ids(), *want, "{q}");
    }

    // Sorting and paging.
    let ids = |q: &str| {
        let q = q.to_string();
        let env = &env;
        let admin = admin.clone();
        async move {
            env.get(&format!("/api/v1/interactions?{q}"), &admin)
                .await
                .ids()
        }
    };
    assert_eq!(ids("sort=startTime&order=asc").await, vec![1, 2, 3, 4]);
    assert_eq!(ids("").await, vec![4, 3, 2, 1], "default: newest first");
    assert_eq!(ids("sort=callType&order=asc").await, vec![3, 4, 1, 2]);
    assert_eq!(ids("sort=calledParty&order=desc").await, vec![4, 2, 1, 3]);
    let p = env
        .get(
            "/api/v1/interactions?sort=startTime&order=asc&page=2&pageSize=3",
            &admin,
        )
        .await;
    assert_eq!((p.ids(), p.json()["total"].as_u64()), (vec![4], Some(4)));
    let a = env.get("/api/v1/interactions/active", &admin).await;
    assert_eq!(a.ids(), vec![3]);
    assert_eq!(
        env.get("/api/v1/interactions/active?tag=nothing", &admin)
            .await
            .ids(),
        Vec::<i64>::new()
    );

    // Saved searches run the same query.
    let r = env
        .call(
            Method::POST,
            "/api/v1/saved-searches",
            Some(&admin),
            Some(json!({"name": "vip", "query": "tag=vip"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let saved = env.get("/api/v1/saved-searches", &admin).await.json();
    assert_eq!(saved[0]["query"], "tag=vip");
    let other = env.token("dave@contoso.example", "d-1", &["g-all"]);
    assert_eq!(
        env.get("/api/v1/saved-searches", &other).await.json(),
        json!([])
    );
    let r = env
        .call(
            Method::POST,
            "/api/v1/saved-searches",
            Some(&admin),
            Some(json!({"name": "bad", "query": "colour=red"})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

async fn sql_metacharacters_are_only_text_on(env: Env) {
    let admin = env.admin();
    let hostile = [
        "' OR 1=1 --",
        "\"; DROP TABLE interactions; --",
        "%",
        "_",
        "\\",
        "*%*",
        "') OR ('a'='a",
        "NEAR(a b)",
        "\" OR \"",
        "a\"b\"c*",
        "AND \"x",
    ];
    let keys = [
        "user",
        "group",
        "tag",
        "calledParty",
        "callingParty",
        "answeredBy",
        "participant",
        "notes",
    ];
    for h in hostile {
        let enc: String = form_urlencoded::byte_serialize(h.as_bytes()).collect();
        for k in keys {
            let r = env
                .get(&format!("/api/v1/interactions?{k}={enc}"), &admin)
                .await;
            assert!(
                r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST,
                "{k}={h}: {}",
                r.status
            );
            if r.status == StatusCode::OK {
                assert_eq!(r.ids(), Vec::<i64>::new(), "{k}={h}");
            } else {
                assert!(r.json()["error"].is_string());
            }
        }
        let r = env
            .get(
                &format!("/api/v1/audit?text={enc}&name={enc}&item={enc}"),
                &admin,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{h}");
        assert_eq!(r.json()["total"], 0, "{h}");
    }
    assert_eq!(env.total().await, 4);
}

async fn bad_input_is_a_4xx_and_changes_nothing_on(env: Env) {
    let admin = env.admin();
    let before = env.get("/api/v1/interactions/1", &admin).await.json();
    let tags_before = env.get("/api/v1/tags", &admin).await.json();
    let send = |method: Method, uri: &str, body: String| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {admin}"))
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    };
    let ingest = format!("/api/v1/interactions?ingestKey={INGEST_KEY}");
    let mut unknown = legs()[0].clone();
    unknown["colour"] = json!("red");
    let mut nested_unknown = legs()[0].clone();
    nested_unknown["targets"][0]["nickname"] = json!("al");
    let mut traversal = legs()[0].clone();
    traversal["mediaPath"] = json!("../../etc");
    let mut absolute = legs()[0].clone();
    absolute["mediaPath"] = json!("/etc");
    let mut bad_enum = legs()[0].clone();
    bad_enum["direction"] = json!("Sideways");
    let mut changed = legs()[0].clone();
    changed["callType"] = json!("Queue Call");
    let mut huge = changed.clone();
    huge["profile"] = json!("x".repeat(100 * 1024));
    let cases: Vec<(Request<Body>, &str)> = vec![
        (send(Method::POST, &ingest, "{not json".into()), "malformed"),
        (
            send(Method::POST, &ingest, unknown.to_string()),
            "unknown field",
        ),
        (
            send(Method::POST, &ingest, nested_unknown.to_string()),
            "nested unknown field",
        ),
        (
            send(Method::POST, &ingest, traversal.to_string()),
            "mediaPath traversal",
        ),
        (
            send(Method::POST, &ingest, absolute.to_string()),
            "absolute mediaPath",
        ),
        (
            send(Method::POST, &ingest, bad_enum.to_string()),
            "bad enum",
        ),
        (send(Method::POST, &ingest, huge.to_string()), "huge body"),
        (
            send(
                Method::POST,
                "/api/v1/tags",
                json!({"name": "x", "colour": 1}).to_string(),
            ),
            "tag unknown field",
        ),
        (
            send(
                Method::POST,
                "/api/v1/tags",
                json!({"name": ""}).to_string(),
            ),
            "empty tag",
        ),
        (
            send(
                Method::PUT,
                "/api/v1/interactions/tags",
                json!({"interactionIds": [1, 99], "tagIds": [1]}).to_string(),
            ),
            "unknown interaction: all or nothing",
        ),
        (
            send(
                Method::PUT,
                "/api/v1/interactions/tags",
                json!({"interactionIds": [1], "tagIds": [42]}).to_string(),
            ),
            "unknown tag",
        ),
        (
            send(
                Method::POST,
                "/api/v1/interactions/1/notes",
                json!({"text": ""}).to_string(),
            ),
            "empty note",
        ),
        (
            send(Method::POST, "/api/v1/interactions/1/notes", "[]".into()),
            "note not an object",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions/..%2F..%2Fetc%2Fpasswd",
                String::new(),
            ),
            "traversal id",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions/1%3BDROP%20TABLE%20interactions",
                String::new(),
            ),
            "sql id",
        ),
        (
            send(Method::GET, "/api/v1/interactions/-1", String::new()),
            "negative id",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions/1/media?leg=../../etc",
                String::new(),
            ),
            "bad leg",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?colour=red",
                String::new(),
            ),
            "unknown parameter",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?sort=password",
                String::new(),
            ),
            "bad sort",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?sort=id%3B%20DROP%20TABLE%20x",
                String::new(),
            ),
            "sql sort",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?pageSize=100000",
                String::new(),
            ),
            "page too big",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?from=yesterday",
                String::new(),
            ),
            "bad time",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?timeFrom=25:00",
                String::new(),
            ),
            "bad time of day",
        ),
        (
            send(
                Method::GET,
                "/api/v1/interactions?notes=%2B%2B%2B",
                String::new(),
            ),
            "notes without words",
        ),
        (
            send(Method::GET, "/api/v1/nowhere", String::new()),
            "unknown endpoint",
        ),
        (
            send(Method::PATCH, "/api/v1/tags", String::new()),
            "unknown method",
        ),
    ];
    for (req, what) in cases {
        let r = env.raw(req).await;
        assert!(r.status.is_client_error(), "{what}: {}", r.status);
        assert!(
            r.json()["error"].is_string(),
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    let r = env.raw(send(Method::POST, &ingest, huge.to_string())).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    let after = env.get("/api/v1/interactions/1", &admin).await.json();
    assert_eq!(before["legs"], after["legs"]);
    assert_eq!(after["callType"], "PSTN p2p");
    assert_eq!(after["tags"], json!([]));
    assert_eq!(env.get("/api/v1/tags", &admin).await.json(), tags_before);
    assert_eq!(env.total().await, 4);
}

/// What each caller gets from each endpoint. Columns: no token, and users whose groups give
/// them the profiles of [`profiles`] (none, own, own+groups, all), the global administrator,
/// and the auditor, tag manager and system administrator profiles (no call access).
async fn permissions_per_access_level_on(env: Env) {
    let callers: Vec<(&str, Option<String>)> = vec![
        ("anonymous", None),
        (
            "none",
            Some(env.token("nobody@contoso.example", "n-1", &["g-none"])),
        ),
        (
            "own",
            Some(env.token("alice@contoso.example", "a-1", &["g-own"])),
        ),
        (
            "groups",
            Some(env.token("bob@contoso.example", "b-1", &["g-team"])),
        ),
        (
            "all",
            Some(env.token("dave@contoso.example", "d-1", &["g-all"])),
        ),
        ("admin", Some(env.admin())),
        (
            "auditor",
            Some(env.token("eve@contoso.example", "e-1", &["g-aud"])),
        ),
        (
            "tagadmin",
            Some(env.token("tom@contoso.example", "t-1", &["g-tagadm"])),
        ),
        (
            "sysadmin",
            Some(env.token("sam@contoso.example", "s-1", &["g-sys"])),
        ),
    ];
    const A: u16 = 401;
    const F: u16 = 403;
    const N: u16 = 404;
    let vip = json!({"interactionIds": [1], "tagIds": [1]});
    // (method, uri, body, expected per caller)
    let table: Vec<(Method, &str, Option<Value>, [u16; 9])> = vec![
        (
            Method::GET,
            "/api/v1/me",
            None,
            [A, 200, 200, 200, 200, 200, 200, 200, 200],
        ),
        (Method::GET, "/api/v1/openapi.json", None, [200; 9]),
        (
            Method::GET,
            "/api/v1/interactions",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/active",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/1",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/2",
            None,
            [A, F, N, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/3",
            None,
            [A, F, N, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/4",
            None,
            [A, F, N, N, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/1/media",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/1/segments",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/2/segments",
            None,
            [A, F, N, N, N, N, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/1/media?download=true",
            None,
            [A, F, F, 200, 200, 200, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/interactions/export",
            None,
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::POST,
            "/api/v1/interactions/export",
            Some(json!({"interactionIds": [1, 4]})),
            [A, F, 200, 200, 200, 200, F, F, F],
        ),
        (
            Method::PUT,
            "/api/v1/interactions/tags",
            Some(vip.clone()),
            [A, F, F, 204, 204, 204, F, F, F],
        ),
        (
            Method::PUT,
            "/api/v1/interactions/tags",
            Some(json!({"interactionIds": [4], "tagIds": [1]})),
            [A, F, F, N, 204, 204, F, F, F],
        ),
        (
            Method::POST,
            "/api/v1/interactions/1/notes",
            Some(json!({"text": "seen"})),
            [A, F, F, 201, 201, 201, F, F, F],
        ),
        (
            Method::POST,
            "/api/v1/interactions/4/notes",
            Some(json!({"text": "seen"})),
            [A, F, F, N, 201, 201, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/tags",
            None,
            [A, 200, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/tags",
            Some(json!({"name": "t-{caller}"})),
            [A, F, F, F, F, 201, F, 201, F],
        ),
        (
            Method::PUT,
            "/api/v1/tags/1",
            Some(json!({"name": "vip", "description": "{caller}"})),
            [A, F, F, F, F, 200, F, 200, F],
        ),
        (
            Method::GET,
            "/api/v1/users",
            None,
            [A, F, F, F, F, 200, F, F, 200],
        ),
        (
            Method::POST,
            "/api/v1/directory/import",
            Some(directory()),
            [A, F, F, F, F, 200, F, F, 200],
        ),
        (
            Method::PUT,
            "/api/v1/users/d-1/legal-hold",
            Some(json!({"legalHold": true})),
            [A, F, F, F, F, 204, F, F, 204],
        ),
        (
            Method::GET,
            "/api/v1/access-profiles",
            None,
            [A, F, F, F, F, 200, F, F, 200],
        ),
        (
            Method::POST,
            "/api/v1/access-profiles",
            Some(json!({"name": "p-{caller}", "groups": ["x"], "callAccess": "own"})),
            [A, F, F, F, F, 201, F, F, 201],
        ),
        (
            Method::POST,
            "/api/v1/access-profiles",
            Some(
                json!({"name": "ga-{caller}", "groups": ["x"], "callAccess": "all", "globalAdmin": true}),
            ),
            [A, F, F, F, F, 201, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/saved-searches",
            None,
            [A, 200, 200, 200, 200, 200, 200, 200, 200],
        ),
        (
            Method::POST,
            "/api/v1/saved-searches",
            Some(json!({"name": "s", "query": "tag=vip"})),
            [A, F, 201, 201, 201, 201, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/audit",
            None,
            [A, F, F, F, F, 200, 200, F, F],
        ),
        (
            Method::GET,
            "/api/v1/audit/export",
            None,
            [A, F, F, F, F, 200, 200, F, F],
        ),
        (
            Method::PUT,
            "/api/v1/recording-profiles/Perm",
            Some(json!({"users": ["u-{caller}"], "retention_days": 30})),
            [A, F, F, F, F, 201, F, F, F],
        ),
        (
            Method::GET,
            "/api/v1/recording-profiles",
            None,
            [A, F, F, F, F, 200, F, F, 200],
        ),
        (
            Method::GET,
            "/api/v1/recording-profiles/file",
            None,
            [A, A, A, A, A, 200, A, A, A],
        ),
        (
            Method::DELETE,
            "/api/v1/recording-profiles/Perm",
            None,
            [A, F, F, F, F, 204, F, F, F],
        ),
    ];
    for (method, uri, body, want) in &table {
        for ((name, token), want) in callers.iter().zip(want) {
            let body = body
                .as_ref()
                .map(|b| serde_json::from_str(&b.to_string().replace("{caller}", name)).unwrap());
            let r = env.call(method.clone(), uri, token.as_deref(), body).await;
            assert_eq!(
                r.status.as_u16(),
                *want,
                "{method} {uri} as {name}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }

    // What each level sees.
    for (name, want) in [
        ("own", vec![1]),
        ("groups", vec![1, 2, 3]),
        ("all", vec![1, 2, 3, 4]),
    ] {
        let t = callers
            .iter()
            .find(|c| c.0 == name)
            .unwrap()
            .1
            .clone()
            .unwrap();
        let r = env.get("/api/v1/interactions?sort=id&order=asc", &t).await;
        assert_eq!(r.ids(), want, "{name}");
        let csv = env.get("/api/v1/interactions/export", &t).await;
        let lines = String::from_utf8(csv.body).unwrap().lines().count();
        assert_eq!(lines, 4 + want.len(), "{name}: export rows");
    }
    // The selection leaves out what the caller may not see.
    let own = callers[2].1.clone().unwrap();
    let r = env
        .call(
            Method::POST,
            "/api/v1/interactions/export",
            Some(&own),
            Some(json!({"interactionIds": [1, 4]})),
        )
        .await;
    assert_eq!(String::from_utf8(r.body).unwrap().lines().count(), 5);
}

async fn notes_of_others_need_the_permission_on(env: Env) {
    let bob = env.token("bob@contoso.example", "b-1", &["g-team"]);
    let dave = env.token("dave@contoso.example", "d-1", &["g-all"]);
    let carol = env.token("carol@contoso.example", "c-1", &["g-team"]);
    let add = |t: String| {
        let env = &env;
        async move {
            env.call(
                Method::POST,
                "/api/v1/interactions/1/notes",
                Some(&t),
                Some(json!({"text": "check"})),
            )
            .await
            .json()["id"]
                .as_i64()
                .unwrap()
        }
    };
    let n1 = add(bob.clone()).await;
    let n2 = add(bob.clone()).await;
    let del = |t: &str, n: i64| {
        let (uri, t) = (format!("/api/v1/interactions/1/notes/{n}"), t.to_string());
        let env = &env;
        async move { env.call(Method::DELETE, &uri, Some(&t), None).await }
    };
    assert_eq!(
        del(&carol, n1).await.status,
        StatusCode::FORBIDDEN,
        "another's note"
    );
    assert_eq!(
        del(&bob, n1).await.status,
        StatusCode::NO_CONTENT,
        "one's own"
    );
    assert_eq!(del(&bob, n1).await.status, StatusCode::NOT_FOUND, "gone");
    assert_eq!(
        del(&dave, n2).await.status,
        StatusCode::NO_CONTENT,
        "with deleteOthersNotes"
    );
    let d = env.get("/api/v1/interactions/1", &dave).await.json();
    assert_eq!(d["noteDetails"], json!([]));
}

async fn legal_hold_blocks_deletion_on(env: Env) {
    let admin = env.admin();
    let hold = |on: bool| {
        let (env, admin) = (&env, admin.clone());
        async move {
            let r = env
                .call(
                    Method::PUT,
                    "/api/v1/users/a-1/legal-hold",
                    Some(&admin),
                    Some(json!({"legalHold": on})),
                )
                .await;
            assert_eq!(r.status, StatusCode::NO_CONTENT);
        }
    };
    let delete = |scope: &'static str| {
        let (env, admin) = (&env, admin.clone());
        async move {
            env.call(
                Method::POST,
                "/api/v1/interactions/1/deletion",
                Some(&admin),
                Some(json!({"scope": scope, "authorizedBy": "DPO", "note": "GDPR erasure"})),
            )
            .await
        }
    };
    hold(true).await;
    let users = env.get("/api/v1/users", &admin).await.json();
    assert_eq!(users[0]["upn"], "alice@contoso.example");
    assert_eq!(users[0]["legalHold"], true);
    let r = delete("metadataAndMedia").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.json()["error"].as_str().unwrap().contains("legal hold"));
    hold(false).await;
    let r = delete("metadataAndMedia").await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.json());
    assert_eq!(r.json()["scope"], "metadataAndMedia");
    assert_eq!(
        delete("mediaOnly").await.status,
        StatusCode::CONFLICT,
        "already pending"
    );
    let r = env
        .call(
            Method::POST,
            "/api/v1/interactions/2/deletion",
            Some(&admin),
            Some(json!({"scope": "everything", "authorizedBy": "x", "note": "y"})),
        )
        .await;
    assert!(r.status.is_client_error());
    let a = env
        .get("/api/v1/audit?action=delete&item=1", &admin)
        .await
        .json();
    assert_eq!(a["total"], 3, "two refusals and the request: {a}");
    let a = env
        .get("/api/v1/audit?action=legal%20hold", &admin)
        .await
        .json();
    assert_eq!(a["total"], 2);
    // The call is still there until the retention cycle runs.
    assert_eq!(env.total().await, 4);
}

async fn tokens_that_are_refused_are_audited_on(env: Env) {
    let expired = env.token_for("a@x", "a", &["g-all"], &[], now_secs() - 3600, TENANT);
    let other_tenant = env.token_for("a@x", "a", &["g-all"], &[], now_secs() + 600, "tenant-2");
    let forged = TokenKeys::hs256(&[2; 32], TENANT)
        .mint(&Claims {
            oid: "a".into(),
            upn: "admin@contoso.example".into(),
            tid: TENANT.into(),
            groups: vec![],
            roles: vec![],
            exp: now_secs() + 600,
            iat: 0,
        })
        .unwrap();
    for (t, why) in [
        (expired.as_str(), "token expired"),
        (other_tenant.as_str(), "another tenant"),
        (forged.as_str(), "InvalidSignature"),
        ("garbage", "invalid token"),
    ] {
        let r = env.get("/api/v1/interactions", t).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(r.headers["www-authenticate"], "Bearer");
        assert!(
            r.json()["error"].as_str().unwrap().contains(why),
            "{}",
            r.json()
        );
    }
    let a = env
        .get(
            "/api/v1/audit?action=login&name=anonymous&pageSize=100",
            &env.admin(),
        )
        .await
        .json();
    let descs: Vec<&str> = a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    for why in [
        "token expired",
        "another tenant",
        "InvalidSignature",
        "invalid token",
    ] {
        assert!(
            descs.iter().any(|d| d.contains(why)),
            "{why} not audited: {descs:?}"
        );
    }
}

async fn csv_export_has_the_report_header_and_columns_on(env: Env) {
    let admin = env.admin();
    env.call(
        Method::PUT,
        "/api/v1/interactions/tags",
        Some(&admin),
        Some(json!({"interactionIds": [1], "tagIds": [1]})),
    )
    .await;
    env.call(
        Method::POST,
        "/api/v1/interactions/1/notes",
        Some(&admin),
        Some(json!({"text": "first, \"quoted\""})),
    )
    .await;
    let r = env
        .get(
            "/api/v1/interactions/export?callType=PSTN+p2p&sort=id&order=asc",
            &admin,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&r.body[..]);
    let rows: Vec<Vec<String>> = rd
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows[0], vec!["Requested By", "admin@contoso.example"]);
    assert_eq!(rows[1][0], "Created At");
    assert!(chrono::DateTime::parse_from_rfc3339(&rows[1][1]).is_ok());
    assert_eq!(
        rows[2],
        vec!["Search Criteria", "callType=PSTN+p2p&sort=id&order=asc"]
    );
    assert_eq!(rows[3], super::export::COLUMNS);
    assert_eq!(rows.len(), 6);
    let row: std::collections::HashMap<&str, &str> = super::export::COLUMNS
        .iter()
        .copied()
        .zip(rows[4].iter().map(String::as_str))
        .collect();
    let want = [
        ("Call Id", "c1"),
        ("Target Display Name", "Alice"),
        ("Target Upn", "alice@contoso.example"),
        ("Called Party", "Alice"),
        ("Calling Party", "Bill Smith"),
        ("Answered By", "Alice"),
        ("Answered time", "2026-03-02T10:00:02.000Z"),
        ("Start Time", "2026-03-02T10:00:00.000Z"),
        ("Release Time", "2026-03-02T10:05:00.000Z"),
        ("SysCallId", "c1"),
        ("Call Direction", "Incoming"),
        ("Call Type", "PSTN p2p"),
        ("Release Cause", "Normal"),
        ("Notes", "first, \"quoted\""),
        ("Participants", "Alice; Bill Smith"),
        ("Media Audio Status", "Available"),
        ("Expiration", "2033-03-01T10:00:00.000Z"),
        ("DoubleRecordingType", "Pro"),
        ("PairedCall", "c1-paired"),
        ("Tags", "vip"),
        ("Call Link", "http://test/api/v1/interactions/1"),
    ];
    for (k, v) in want {
        assert_eq!(row[k], v, "{k}");
    }
    assert_eq!(rows[5][0], "c2");
    // A formula in a name is neutralised.
    let r = env
        .call(
            Method::POST,
            "/api/v1/interactions/export",
            Some(&admin),
            Some(json!({"interactionIds": [4]})),
        )
        .await;
    let text = String::from_utf8(r.body).unwrap();
    assert!(text.contains("'=SUM(A1)"), "{text}");
    assert!(text.contains("Search Criteria,selection: 4"), "{text}");
}

async fn media_download_with_ranges_on(env: Env) {
    let admin = env.admin();
    let media: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let get = |range: Option<&'static str>, q: &'static str| {
        let mut b = Request::builder()
            .uri(format!("/api/v1/interactions/1/media{q}"))
            .header("authorization", format!("Bearer {admin}"));
        if let Some(r) = range {
            b = b.header("range", r);
        }
        env.raw(b.body(Body::empty()).unwrap())
    };
    let r = get(None, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, media);
    assert_eq!(r.headers["accept-ranges"], "bytes");
    assert_eq!(r.headers["content-type"], "audio/ogg");
    assert!(r.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let r = get(Some("bytes=100-199"), "?leg=primary").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers["content-range"], "bytes 100-199/1000");
    assert_eq!(r.headers["content-length"], "100");
    assert_eq!(r.body, &media[100..200]);
    let r = get(Some("bytes=-10"), "?download=true").await;
    assert_eq!(
        (r.status, &r.body[..]),
        (StatusCode::PARTIAL_CONTENT, &media[990..])
    );
    assert!(r.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    let r = get(Some("bytes=900-"), "?leg=merged").await;
    assert_eq!((r.status, r.body.len()), (StatusCode::PARTIAL_CONTENT, 100));
    let r = get(Some("bytes=1000-"), "").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers["content-range"], "bytes */1000");
    // The paired leg has no stored media yet; interaction 2 has none at all.
    assert_eq!(get(None, "?leg=paired").await.status, StatusCode::NOT_FOUND);
    let r = env.get("/api/v1/interactions/2/media", &admin).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let s = env
        .get("/api/v1/interactions/1/segments?leg=primary", &admin)
        .await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(
        s.json()["segments"][1],
        json!({"participant": "p2", "start_ms": 900.0, "end_ms": 2000.0})
    );
    assert_eq!(
        env.get("/api/v1/interactions/1/segments?leg=paired", &admin)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The first request of a play is audited, not every seek.
    let a = env
        .get("/api/v1/audit?action=play&item=1", &admin)
        .await
        .json();
    assert_eq!(a["total"], 1, "{a}");
    let a = env
        .get("/api/v1/audit?action=download&item=1", &admin)
        .await
        .json();
    assert_eq!(a["total"], 0, "a suffix range does not start at 0: {a}");
}

fn audit_verify(cfg: &crate::config::Config) -> anyhow::Result<String> {
    let store = crate::store::open(cfg)?;
    crate::audit::verify_store(store.as_ref(), &cfg.audit_anchor())
}

#[tokio::test]
async fn the_audit_trail_detects_tampering() {
    let env = loaded(true).await;
    let admin = env.admin();
    env.get("/api/v1/interactions/1", &admin).await;
    env.get("/api/v1/interactions/1/media", &admin).await;
    let cfg = crate::config::Config {
        data_dir: env.dir.path().to_path_buf(),
        ..Default::default()
    };
    audit_verify(&cfg).unwrap();
    let page = env
        .get("/api/v1/audit?item=1&action=view", &admin)
        .await
        .json();
    assert!(page["total"].as_u64().unwrap() >= 1);

    let db = env.dir.path().join("store.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    // Append-only in the database itself.
    assert!(conn
        .execute("UPDATE audit SET description = 'x' WHERE id = 2", [])
        .is_err());
    assert!(conn.execute("DELETE FROM audit WHERE id = 2", []).is_err());
    conn.execute_batch("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;")
        .unwrap();

    let (id, desc): (i64, String) = conn
        .query_row("SELECT id, description FROM audit WHERE id = 3", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    conn.execute(
        "UPDATE audit SET description = 'nothing happened' WHERE id = ?",
        [id],
    )
    .unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entry 3") && e.contains("edited"), "{e}");
    conn.execute(
        "UPDATE audit SET description = ? WHERE id = ?",
        rusqlite::params![desc, id],
    )
    .unwrap();
    audit_verify(&cfg).unwrap();

    // The newest entry deleted: the chain is still whole, the anchor is not.
    let last: i64 = conn
        .query_row("SELECT MAX(id) FROM audit", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM audit WHERE id = ?", [last])
        .unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entries deleted"), "{e}");
    // An entry in the middle deleted.
    conn.execute("DELETE FROM audit WHERE id = 2", []).unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entry 2 is missing"), "{e}");
}

/// The same tamper drill on PostgreSQL: the trail is append-only in the database (a trigger),
/// and `audit verify` (through `database_url`) finds an edit and deletions.
#[tokio::test]
async fn pg_the_audit_trail_detects_tampering() {
    let Some(env) = loaded_pg("pg_the_audit_trail_detects_tampering").await else {
        return;
    };
    let admin = env.admin();
    env.get("/api/v1/interactions/1", &admin).await;
    env.get("/api/v1/interactions/1/media", &admin).await;
    let db = env.pg.as_ref().unwrap();
    let cfg = crate::config::Config {
        data_dir: env.dir.path().to_path_buf(),
        database_url: Some(db.url().expect("RECORDER_TEST_PG_URL is a URL")),
        ..Default::default()
    };
    audit_verify(&cfg).unwrap();
    let page = env
        .get("/api/v1/audit?item=1&action=view", &admin)
        .await
        .json();
    assert!(page["total"].as_u64().unwrap() >= 1);

    let pg = db.config();
    // One statement on its own connection, off the test's runtime thread.
    let sql = |q: String| {
        let pg = pg.clone();
        std::thread::spawn(move || {
            let mut c = pg.connect(postgres::NoTls).unwrap();
            c.batch_execute(&q)
                .map_err(|e| crate::store::StoreError::from(e).to_string())
        })
        .join()
        .unwrap()
    };
    let e = sql("UPDATE audit SET description = 'x' WHERE id = 2".into()).unwrap_err();
    assert!(e.contains("append-only"), "{e}");
    assert!(sql("DELETE FROM audit WHERE id = 2".into()).is_err());
    assert!(sql("TRUNCATE audit".into()).is_err());
    sql("ALTER TABLE audit DISABLE TRIGGER USER".into()).unwrap();

    sql("UPDATE audit SET description = description || ' (edited)' WHERE id = 3".into()).unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entry 3") && e.contains("edited"), "{e}");
    sql("UPDATE audit SET description = left(description, -9) WHERE id = 3".into()).unwrap();
    audit_verify(&cfg).unwrap();

    sql("DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit)".into()).unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entries deleted"), "{e}");
    sql("DELETE FROM audit WHERE id = 2".into()).unwrap();
    let e = audit_verify(&cfg).unwrap_err().to_string();
    assert!(e.contains("entry 2 is missing"), "{e}");
}

#[tokio::test]
async fn the_openapi_document_is_served_and_names_every_route() {
    let env = Env::new(false);
    let r = env
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let served = r.json();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/api/openapi.json"
        ))
        .unwrap(),
    )
    .unwrap();
    assert_eq!(served, file);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let mut in_router = BTreeSet::new();
    for (path, method, _) in super::routes() {
        in_router.insert((path.to_string(), method.as_str().to_lowercase()));
    }
    let mut in_doc = BTreeSet::new();
    for (path, ops) in served["paths"].as_object().unwrap() {
        for (m, op) in ops.as_object().unwrap() {
            if m == "parameters" {
                continue;
            }
            in_doc.insert((path.clone(), m.clone()));
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{m} {path}"
            );
        }
    }
    assert_eq!(in_router, in_doc, "router and document differ");
    // Every query parameter of the search is documented.
    let params: BTreeSet<String> = served["paths"]["/api/v1/interactions"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let p = if let Some(r) = p["$ref"].as_str() {
                let name = r.rsplit('/').next().unwrap();
                &served["components"]["parameters"][name]
            } else {
                p
            };
            p["name"].as_str().unwrap().to_string()
        })
        .collect();
    for k in super::params::SEARCH_KEYS {
        assert!(params.contains(*k), "search parameter {k} undocumented");
    }
}

#[tokio::test]
async fn recording_profiles_are_checked_as_a_set_and_served_as_a_bot_host_file() {
    let env = Env::new(false);
    let admin = env.admin();
    let put = |name: &'static str, body: Value| {
        let env = &env;
        let admin = admin.clone();
        async move {
            env.call(
                Method::PUT,
                &format!("/api/v1/recording-profiles/{name}"),
                Some(&admin),
                Some(body),
            )
            .await
        }
    };
    // No profile stored yet: bots keep their own file.
    let r = env
        .call(
            Method::GET,
            "/api/v1/recording-profiles/file",
            Some(INGEST_KEY),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let traders = json!({"users": ["alice", "bob"], "retention_days": 2555,
                         "double_recording": true, "call_types": {"pstn_p2p": "incoming"}});
    assert_eq!(
        put("Traders", traders.clone()).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        put("Support", json!({"users": ["carol"]})).await.status,
        StatusCode::CREATED
    );
    // Bob in two profiles: refused with the users and profiles named, nothing changed.
    let r = put("Support", json!({"users": ["carol", "bob"]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.json());
    let msg = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        msg.contains("bob") && msg.contains("Traders") && msg.contains("Support"),
        "{msg}"
    );
    // A profile bot-host would refuse is refused here.
    let r = put(
        "Bad",
        json!({"users": ["dan"], "call_types": {"pstn_p2p": "sideways"}}),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    let r = put("Bad", json!({"users": ["dan"], "no_such_key": 1})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.json());
    let r = put("Bad", json!({"name": "Other", "users": ["dan"]})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = put("Bad", json!(["not", "an", "object"])).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let list = env.get("/api/v1/recording-profiles", &admin).await.json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Support", "Traders"]);
    assert_eq!(list[0]["profile"]["users"], json!(["carol"]));
    assert_eq!(list[1]["updatedBy"], "admin@contoso.example");

    // Replacing keeps one row; the file is what bot-host loads.
    assert_eq!(
        put("Support", json!({"users": ["carol", "erin"]}))
            .await
            .status,
        StatusCode::OK
    );
    let file = env
        .call(
            Method::GET,
            "/api/v1/recording-profiles/file",
            Some(INGEST_KEY),
            None,
        )
        .await;
    assert_eq!(file.status, StatusCode::OK);
    let loaded =
        bot_host::signaling::Profiles::from_json_str(&String::from_utf8(file.body).unwrap())
            .unwrap();
    let names: Vec<&str> = loaded.profiles().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Support", "Traders"]);

    let r = env
        .call(
            Method::DELETE,
            "/api/v1/recording-profiles/support",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "names are case-insensitive"
    );
    let r = env
        .call(
            Method::DELETE,
            "/api/v1/recording-profiles/Support",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let audit = env.get("/api/v1/audit?pageSize=200", &admin).await;
    let actions: Vec<String> = audit.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["itemType"] == "recording profile")
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect();
    for a in ["add", "modify", "delete", "view"] {
        assert!(
            actions.iter().any(|x| x == a),
            "{a} not audited: {actions:?}"
        );
    }
}

async fn media_takes_the_token_from_the_query_for_audio_elements_on(env: Env) {
    let admin = env.admin();
    let outsider = env.token("out@contoso.example", "out-oid", &[]);
    let media: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let get = |uri: String, bearer: Option<String>, range: Option<&'static str>| {
        let mut b = Request::builder().uri(uri);
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Some(r) = range {
            b = b.header("range", r);
        }
        env.raw(b.body(Body::empty()).unwrap())
    };
    let media_uri = |q: &str| format!("/api/v1/interactions/1/media?{q}");
    let r = get(
        media_uri(&format!("leg=primary&access_token={admin}")),
        None,
        Some("bytes=0-9"),
    )
    .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &media[..10]);
    let r = get(
        media_uri(&format!("access_token={admin}&download=true")),
        None,
        None,
    )
    .await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 1000));
    assert!(r.headers["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    // Audited like a play and a download with the header.
    for action in ["play", "download"] {
        let a = env
            .get(&format!("/api/v1/audit?action={action}&item=1"), &admin)
            .await
            .json();
        assert_eq!(a["total"], 1, "{action}: {a}");
        assert_eq!(a["items"][0]["userUpn"], "admin@contoso.example");
    }
    // A bad token, a user without access, and the header winning over the query.
    let r = get(media_uri("access_token=not-a-token"), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = get(media_uri(&format!("access_token={outsider}")), None, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = get(
        media_uri(&format!("access_token={admin}")),
        Some(outsider.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // No other route accepts it.
    let r = get(
        format!("/api/v1/interactions?access_token={admin}"),
        None,
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = get(
        format!("/api/v1/interactions/1/segments?access_token={admin}"),
        Some(admin.clone()),
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_web_interface_is_served_at_ui() {
    let env = Env::new(false);
    let r = env.call(Method::GET, "/ui/", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&r.body).contains("/ui/js/app.js"));
    assert!(r.headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("script-src 'self'"));
    let r = env.call(Method::GET, "/ui/js/app.js", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/javascript; charset=utf-8");
    let r = env
        .call(Method::GET, "/ui/interactions/7", None, None)
        .await;
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    let r = env.call(Method::GET, "/ui/js/none.js", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = env.call(Method::GET, "/", None, None).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.headers["location"], "/ui/");
}

/// Found by schemathesis: a leg whose start plus retention days leaves the calendar made the
/// expiry sum panic inside the store. Now it is a clear 400, nothing is stored, and the store
/// keeps answering.
#[tokio::test]
async fn a_retention_past_the_calendar_is_refused_and_the_store_keeps_working() {
    let env = Env::new(false);
    let admin = env.admin();
    for (days, start) in [
        (4_294_967_295u64, "2026-03-02T10:00:00Z"),
        (36_501, "2026-03-02T10:00:00Z"),
    ] {
        let mut leg = legs()[0].clone();
        leg["retentionDays"] = json!(days);
        leg["startTime"] = json!(start);
        let r = env.ingest(&leg).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.json()["error"]
            .as_str()
            .unwrap()
            .contains("retentionDays"));
    }
    let r = env.get("/api/v1/interactions", &admin).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["total"], 0);
    let mut leg = legs()[0].clone();
    leg["retentionDays"] = json!(36_500);
    assert_eq!(env.ingest(&leg).await.status, StatusCode::CREATED);
}
