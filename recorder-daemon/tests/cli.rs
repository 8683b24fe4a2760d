//! The binary end to end on loopback: `serve` prints its URL, `token` mints a token it
//! accepts, bot-host's way of posting (ingest key on the store URL) works, SIGTERM stops it
//! cleanly, and `audit verify` checks what it wrote.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use support::BIN;

/// One HTTP/1.1 request; returns the status and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let r = support::http(addr, method, path, headers, body);
    (r.status, String::from_utf8_lossy(&r.body).into_owned())
}

#[test]
fn serve_token_ingest_and_audit_verify() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cfg = dir.path().join("daemon.toml");
    std::fs::write(
        &cfg,
        "global_admins = [\"admin@contoso.example\"]\ningest_key = \"k-123\"\ntenant_id = \"t-1\"\n",
    )
    .unwrap();
    let args = |sub: &[&str]| {
        let mut v: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--config".into(),
            cfg.display().to_string(),
            "--data-dir".into(),
            data.display().to_string(),
        ]);
        v
    };
    let mut child = Command::new(BIN)
        .args(args(&["serve"]))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("recorder-daemon serve: http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(url.starts_with("127.0.0.1:"), "{url}");

    let out = Command::new(BIN)
        .args(args(&[
            "token",
            "--upn",
            "admin@contoso.example",
            "--ttl",
            "10m",
        ]))
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let bearer = format!("Bearer {token}");

    let leg = r#"{"callId":"c1","recordingId":"r1","botRole":"primary","pairingKey":"chain:k/u",
        "targets":[{"kind":"user","id":"u1","upn":"alice@contoso.example"}],
        "startTime":"2026-03-02T10:00:00Z","direction":"Incoming","callType":"PSTN p2p",
        "participants":[],"profile":"p","retentionDays":1,"expiration":"2026-03-03T10:00:00Z",
        "storage":"local","doubleRecordingType":"Essentials","notification":"silent",
        "pairedRecorders":[],"mediaStatus":"Recording","holdTimeMs":0}"#;
    let json = ("Content-Type", "application/json");
    let (st, body) = http(
        &url,
        "POST",
        "/api/v1/interactions?ingestKey=k-123",
        &[json],
        leg,
    );
    assert_eq!(st, 201, "{body}");
    let (st, _) = http(
        &url,
        "POST",
        "/api/v1/interactions?ingestKey=k-123",
        &[json],
        leg,
    );
    assert_eq!(st, 200, "a retried post");
    let (st, _) = http(&url, "POST", "/api/v1/interactions", &[json], leg);
    assert_eq!(st, 401);
    let (st, body) = http(
        &url,
        "GET",
        "/api/v1/interactions/active",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("\"total\":1"), "{body}");
    let (st, body) = http(&url, "GET", "/api/v1/openapi.json", &[], "");
    assert_eq!(st, 200);
    assert!(body.contains("\"openapi\""));

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(child.wait().unwrap().success(), "graceful shutdown");

    let out = Command::new(BIN)
        .args(args(&["audit", "verify"]))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("anchor matches"), "{text}");
}
