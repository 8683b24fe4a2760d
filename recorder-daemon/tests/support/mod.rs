//! The daemon as a process, for the integration tests: a data directory, a spool and a
//! configuration; start, `kill -9`, HTTP calls, and sealed recordings written the way bot-host
//! writes them.
#![allow(dead_code)] // each test crate uses part of it

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_recorder-daemon");
pub const ADMIN: &str = "admin@contoso.example";
pub const TENANT: &str = "t-1";
pub const DAY: &str = "2026/11/26";

/// One HTTP/1.1 request; returns the status, the response head and the body.
pub fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    Resp {
        status: head[9..12].parse().unwrap(),
        head,
        body: raw[split + 4..].to_vec(),
    }
}

pub struct Resp {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }
}

/// A data directory, a spool and a configuration; starts and kills the daemon.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub addr: String,
    pub token: String,
}

impl Env {
    pub fn new(extra_config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let env = Env {
            dir,
            child: None,
            addr: String::new(),
            token: String::new(),
        };
        env.write_config(extra_config);
        env
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn config(&self) -> PathBuf {
        self.dir.path().join("daemon.toml")
    }

    pub fn write_config(&self, extra: &str) {
        std::fs::write(
            self.config(),
            format!(
                "global_admins = [\"{ADMIN}\"]\ningest_key = \"k-1\"\ntenant_id = \"{TENANT}\"\n\
                 spool_dirs = [\"{}\"]\n{extra}\n[upload]\npoll_ms = 50\nretry_base_ms = 100\n\
                 retry_max_ms = 400\nconcurrency = 2\n",
                self.spool().display()
            ),
        )
        .unwrap();
    }

    pub fn args(&self, sub: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = sub.iter().map(|s| s.to_string()).collect();
        v.extend([
            "--config".into(),
            self.config().display().to_string(),
            "--data-dir".into(),
            self.data().display().to_string(),
        ]);
        v
    }

    /// Starts `serve` (stderr to `<dir>/daemon-<n>.log`).
    pub fn start(&mut self, env: &[(&str, &str)]) {
        let n = std::fs::read_dir(self.dir.path()).unwrap().count();
        let log = std::fs::File::create(self.dir.path().join(format!("daemon-{n}.log"))).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(self.args(&["serve"]))
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        self.addr = line
            .trim()
            .strip_prefix("recorder-daemon serve: http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        self.child = Some(child);
        if self.token.is_empty() {
            let out = Command::new(BIN)
                .args(self.args(&["token", "--upn", ADMIN]))
                .output()
                .unwrap();
            assert!(out.status.success());
            self.token = String::from_utf8(out.stdout).unwrap().trim().to_string();
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "log") {
                s.push_str(&std::fs::read_to_string(p).unwrap());
            }
        }
        s
    }

    pub fn get(&self, path: &str) -> Resp {
        let auth = format!("Bearer {}", self.token);
        http(&self.addr, "GET", path, &[("Authorization", &auth)], "")
    }

    pub fn sealed(&self) -> Vec<String> {
        names(&self.spool().join("sealed"))
    }

    /// Nothing left in `sealed/` nor in `uploaded/` (the spool copy is removed after it left
    /// `sealed/`).
    pub fn spool_empty(&self) -> bool {
        self.sealed().is_empty() && names(&self.spool().join("uploaded")).is_empty()
    }

    pub fn wait(&self, what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}; log:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn active_alarms(&self) -> Vec<serde_json::Value> {
        let r = self.get("/api/v1/alarms");
        assert_eq!(r.status, 200);
        r.json()["items"].as_array().unwrap().clone()
    }

    pub fn activity_kinds(&self) -> Vec<(String, String)> {
        let r = self.get("/api/v1/activity?pageSize=1000");
        assert_eq!(r.status, 200);
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["kind"].as_str().unwrap().to_string(),
                    a["source"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The interactions, as the store has them.
    pub fn interactions(&self) -> Vec<serde_json::Value> {
        let r = self.get("/api/v1/interactions?pageSize=500");
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()["items"].as_array().unwrap().clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// Writes a sealed recording the way bot-host does (manifest with SHA-256s, atomic rename
/// into `sealed/`); returns the bytes of its `mixed.ogg`.
pub fn seal(spool: &Path, id: &str, storage: &str, kind: &str, size: usize) -> Vec<u8> {
    let sealed = spool.join("sealed");
    std::fs::create_dir_all(&sealed).unwrap();
    let tmp = spool.join(format!("tmp-{id}"));
    std::fs::create_dir_all(&tmp).unwrap();
    let mixed: Vec<u8> = (0..size).map(|i| (i * 7 + id.len()) as u8).collect();
    let meta = serde_json::json!({
        "recording_id": id,
        "status": "complete",
        "tracks": [],
        "interaction": {
            "callId": format!("call-{id}"),
            "recordingId": id,
            "botRole": "primary",
            "pairingKey": format!("pk-{id}"),
            "startTime": "2026-11-26T10:00:00Z",
            "direction": "Incoming",
            "callType": "PSTN p2p",
            "mediaStatus": "Recording",
            "storage": storage,
            "doubleRecordingType": kind,
            "retentionDays": 30,
            "targets": [{"kind": "user", "id": "u1", "displayName": "Ann", "upn": "ann@contoso.example"}],
        }
    });
    let files = [
        ("meta.json", serde_json::to_vec(&meta).unwrap()),
        ("mixed.ogg", mixed.clone()),
        ("segments.json", b"[]".to_vec()),
    ];
    let mut listed = Vec::new();
    for (name, data) in &files {
        std::fs::write(tmp.join(name), data).unwrap();
        listed.push(serde_json::json!({
            "file": name, "size": data.len(), "sha256": hex::encode(Sha256::digest(data)),
        }));
    }
    std::fs::write(
        tmp.join("manifest.json"),
        serde_json::to_vec(&serde_json::json!({"algorithm": "sha256", "files": listed})).unwrap(),
    )
    .unwrap();
    std::fs::rename(&tmp, sealed.join(id)).unwrap();
    mixed
}
