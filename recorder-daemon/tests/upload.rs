//! The uploader end to end, through the built binary: sealed recordings dropped into a spool
//! reach storage verified, the store says Available, the spool empties and the download serves
//! them with Range; `kill -9` mid-upload and a restart lose and duplicate nothing; a full
//! storage raises ConnectionFailed once and clears it after the quota is raised; a corrupt
//! entry is set aside, an unknown storage is held, both with alarms.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const FILES: [&str; 4] = ["manifest.json", "meta.json", "mixed.ogg", "segments.json"];

#[test]
fn sealed_recordings_reach_storage_the_store_and_the_download() {
    let mut env = Env::new(
        "[[storage]]\nname = \"local\"\nkind = \"local\"\npaired = \"geo\"\n\
         [[storage]]\nname = \"geo\"\nkind = \"local\"\n",
    );
    let ess = seal(&env.spool(), "rec-ess", "local", "Essentials", 5000);
    let pro = seal(&env.spool(), "rec-pro", "local", "Pro", 3000);
    env.start(&[]);
    env.wait("the spool to empty", || env.spool_empty());
    let local = env.data().join("storage").join(DAY);
    let geo = env.data().join("storage-geo").join(DAY);
    assert_eq!(names(&local), ["rec-ess", "rec-pro"]);
    assert_eq!(names(&geo), ["rec-pro"], "only Pro gets the paired copy");
    for dir in [
        local.join("rec-ess"),
        local.join("rec-pro"),
        geo.join("rec-pro"),
    ] {
        assert_eq!(names(&dir), FILES);
    }
    assert_eq!(std::fs::read(local.join("rec-pro/mixed.ogg")).unwrap(), pro);
    assert_eq!(std::fs::read(geo.join("rec-pro/mixed.ogg")).unwrap(), pro);

    let items = env.interactions();
    assert_eq!(items.len(), 2);
    let ess_item = items
        .iter()
        .find(|i| i["callId"] == "call-rec-ess")
        .unwrap();
    let id = ess_item["id"].as_i64().unwrap();
    let detail = env.get(&format!("/api/v1/interactions/{id}")).json();
    assert_eq!(detail["mediaStatus"], "Available");
    assert_eq!(detail["legs"][0]["mediaPath"], format!("{DAY}/rec-ess"));

    let auth = format!("Bearer {}", env.token);
    let r = http(
        &env.addr,
        "GET",
        &format!("/api/v1/interactions/{id}/media?download=true"),
        &[("Authorization", &auth)],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, ess);
    let r = http(
        &env.addr,
        "GET",
        &format!("/api/v1/interactions/{id}/media"),
        &[("Authorization", &auth), ("Range", "bytes=100-199")],
        "",
    );
    assert_eq!(r.status, 206);
    assert!(r.head.contains("bytes 100-199/5000"), "{}", r.head);
    assert_eq!(r.body, &ess[100..200]);

    // A late, retried post from bot-host cannot move the leg back to Pending.
    let mut leg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(local.join("rec-ess/meta.json")).unwrap()).unwrap();
    leg["interaction"]["mediaStatus"] = "Pending".into();
    let r = http(
        &env.addr,
        "POST",
        "/api/v1/interactions",
        &[
            ("X-Ingest-Key", "k-1"),
            ("Content-Type", "application/json"),
        ],
        &leg["interaction"].to_string(),
    );
    assert!(r.status < 300, "{}", String::from_utf8_lossy(&r.body));
    let detail = env.get(&format!("/api/v1/interactions/{id}")).json();
    assert_eq!(detail["mediaStatus"], "Available");
    assert_eq!(detail["legs"][0]["mediaPath"], format!("{DAY}/rec-ess"));

    let st = env.get("/api/v1/storages").json();
    let items = st["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    for s in items {
        assert_eq!(s["connection"], "ok");
        assert_eq!(s["recordingsWaiting"], 0);
    }
    let local_status = items.iter().find(|s| s["name"] == "local").unwrap();
    assert!(local_status["consumedBytes"].as_u64().unwrap() > 8000);
    assert!(env.active_alarms().is_empty());
}

#[test]
fn kill_9_mid_upload_and_a_restart_lose_and_duplicate_nothing() {
    let mut env = Env::new("");
    let n = 16;
    let mut contents = Vec::new();
    for i in 0..n {
        contents.push(seal(
            &env.spool(),
            &format!("rec-{i:02}"),
            "local",
            "Essentials",
            2000 + i,
        ));
    }
    // 4 files a recording, 40 ms after each: a pass takes about a second.
    env.start(&[("RECORDER_DAEMON_TEST_PUT_DELAY_MS", "40")]);
    let stored = env.data().join("storage").join(DAY);
    env.wait("some recordings to be stored", || {
        let left = env.sealed().len();
        left < n - 2 && left > 2
    });
    env.kill();
    let after_kill = env.sealed().len();
    assert!(after_kill > 0 && after_kill < n, "{after_kill}");
    env.start(&[]);
    env.wait("the spool to empty", || env.spool_empty());
    let dirs = names(&stored);
    assert_eq!(dirs.len(), n);
    for (i, d) in dirs.iter().enumerate() {
        assert_eq!(d, &format!("rec-{i:02}"));
        // Exactly the recording's files, no partial file left beside them.
        let dir = stored.join(d);
        let mut all = names(&dir);
        all.retain(|f| !FILES.contains(&f.as_str()));
        assert!(all.is_empty(), "{d}: stray files {all:?}");
        assert_eq!(names(&dir), FILES);
        assert_eq!(std::fs::read(dir.join("mixed.ogg")).unwrap(), contents[i]);
    }
    let items = env.interactions();
    assert_eq!(items.len(), n, "one interaction per recording");
    for i in &items {
        assert_eq!(i["mediaStatus"], "Available");
    }
}

#[test]
fn a_full_storage_raises_one_alarm_and_recordings_wait_for_more_room() {
    let full = "[[storage]]\nname = \"local\"\nkind = \"local\"\nmax_bytes = 1000\n";
    let mut env = Env::new(full);
    for i in 0..3 {
        seal(
            &env.spool(),
            &format!("rec-{i}"),
            "local",
            "Essentials",
            4000,
        );
    }
    env.start(&[]);
    env.wait("the ConnectionFailed alarm", || {
        !env.active_alarms().is_empty()
    });
    // Several retries later: still one alarm, raised once, the recordings still waiting.
    std::thread::sleep(Duration::from_millis(1200));
    let alarms = env.active_alarms();
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(alarms[0]["name"], "ConnectionFailed");
    assert_eq!(alarms[0]["oid"], ".1.3.6.1.4.1.5003.9.40.3.2.0.101");
    assert_eq!(alarms[0]["source"], format!("{TENANT}/local"));
    assert!(alarms[0]["text"].as_str().unwrap().contains("full"));
    let raised = |env: &Env| {
        env.activity_kinds()
            .iter()
            .filter(|(k, _)| k == "alarmRaised")
            .count()
    };
    assert_eq!(raised(&env), 1);
    assert_eq!(env.sealed().len(), 3);
    let st = env.get("/api/v1/storages").json();
    assert_eq!(st["items"][0]["connection"], "failed");
    assert_eq!(st["items"][0]["recordingsWaiting"], 3);
    assert!(env.logs().contains("storage local (local) failed"));

    // More room, a restart: everything uploads, the alarm clears (raised once in all).
    env.kill();
    env.write_config("[[storage]]\nname = \"local\"\nkind = \"local\"\nmax_bytes = 1000000\n");
    env.start(&[]);
    env.wait("the spool to empty", || env.sealed().is_empty());
    env.wait("the alarm to clear", || env.active_alarms().is_empty());
    assert_eq!(raised(&env), 1);
    assert!(env
        .activity_kinds()
        .contains(&("alarmCleared".into(), format!("{TENANT}/local"))));
    assert_eq!(names(&env.data().join("storage").join(DAY)).len(), 3);
}

#[test]
fn a_corrupt_entry_is_set_aside_and_an_unknown_storage_is_held() {
    let mut env = Env::new("");
    seal(&env.spool(), "rec-good", "local", "Essentials", 1000);
    seal(&env.spool(), "rec-bad", "local", "Essentials", 1000);
    seal(&env.spool(), "rec-lost", "nowhere", "Essentials", 1000);
    // Changed after sealing: the manifest no longer matches.
    std::fs::write(env.spool().join("sealed/rec-bad/mixed.ogg"), b"tampered").unwrap();
    env.start(&[]);
    env.wait("the good recording to upload", || {
        env.sealed() == ["rec-lost"]
    });
    env.wait("two alarms", || env.active_alarms().len() == 2);
    let rejected = env.spool().join("rejected");
    assert_eq!(names(&rejected), ["rec-bad", "rec-bad.reason.txt"]);
    assert_eq!(names(&rejected.join("rec-bad")), FILES, "nothing deleted");
    let reason = std::fs::read_to_string(rejected.join("rec-bad.reason.txt")).unwrap();
    assert!(reason.contains("manifest"), "{reason}");
    let alarms = env.active_alarms();
    let names_of: Vec<&str> = alarms.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names_of, ["RecordingRejected", "UnknownStorage"]);
    assert_eq!(alarms[1]["source"], format!("{TENANT}/nowhere"));
    let logs = env.logs();
    assert!(logs.contains("recording rec-bad REJECTED"), "{logs}");
    assert!(logs.contains("unknown storage \"nowhere\""), "{logs}");
    let items = env.interactions();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["mediaStatus"], "Available");

    // The operator removes the rejected entry: its alarm clears.
    std::fs::remove_dir_all(rejected.join("rec-bad")).unwrap();
    env.wait("the rejection alarm to clear", || {
        env.active_alarms().len() == 1
    });
    // Users without configureSystem see none of this.
    let out = Command::new(BIN)
        .args(env.args(&["token", "--upn", "someone@contoso.example"]))
        .output()
        .unwrap();
    let t = String::from_utf8(out.stdout).unwrap();
    let auth = format!("Bearer {}", t.trim());
    for p in ["/api/v1/alarms", "/api/v1/activity", "/api/v1/storages"] {
        assert_eq!(
            http(&env.addr, "GET", p, &[("Authorization", &auth)], "").status,
            403,
            "{p}"
        );
    }
}
