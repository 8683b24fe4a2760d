//! The Azure Blob backend against a real Azurite (npm package `azurite`, installed by
//! `bash scripts/azurite.sh install`). Each test starts its own Azurite on a free loopback port
//! with a temporary data folder and stops it at the end. Without Azurite the tests are skipped
//! with a message, except under CI (`CI` set), where that is a failure.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use md5::{Digest, Md5};

use recorder_daemon::storage::azure::{container_sas_url, AzureConfig, AzureStorage};
use recorder_daemon::storage::{Storage, StorageError};

/// The emulator's well-known account (public, documented by Microsoft).
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "recordings";

fn azurite_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AZURITE_BLOB") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let home = std::env::var_os("AZURITE_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/recorder-azurite"))
        });
    if let Some(h) = home {
        let p = h.join("node_modules/.bin/azurite-blob");
        if p.exists() {
            return Some(p);
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("azurite-blob"))
            .find(|p| p.exists())
    })
}

/// The Azurite binary, or `None` (skip) outside CI.
fn azurite_or_skip(test: &str) -> Option<PathBuf> {
    let found = azurite_bin().filter(|_| {
        Command::new("node")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "Azurite (node + npm package azurite) is missing under CI: run bash scripts/azurite.sh install"
        );
        eprintln!("SKIPPED {test}: Azurite not installed (bash scripts/azurite.sh install)");
    }
    found
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Azurite, killed on drop.
struct Azurite {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    location: PathBuf,
}

impl Azurite {
    fn start(bin: &Path, location: &Path) -> Azurite {
        let mut a = Azurite {
            bin: bin.to_path_buf(),
            child: None,
            port: free_port(),
            location: location.to_path_buf(),
        };
        a.spawn();
        a
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.location.join("azurite.log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort"])
            .arg(self.port.to_string())
            .arg("--location")
            .arg(&self.location)
            .args(["--skipApiVersionCheck", "--loose"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting azurite-blob");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "azurite exited ({st}): {}",
                    std::fs::read_to_string(self.location.join("azurite.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "azurite did not listen within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops Azurite as an outage would, with SIGTERM: Azurite keeps its metadata in memory and
    /// saves it on the way out, so a SIGKILL would also lose the container itself, which no
    /// outage of the real service does. In-flight requests are cut all the same.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while c.try_wait().unwrap().is_none() {
                if Instant::now() > deadline {
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    fn container_url(&self) -> String {
        format!("{}/{CONTAINER}", self.endpoint())
    }

    fn sas(&self, perms: &str, valid_for: chrono::Duration) -> String {
        container_sas_url(
            &self.container_url(),
            ACCOUNT,
            KEY,
            perms,
            chrono::Utc::now() + valid_for,
        )
        .unwrap()
    }

    fn key_config(&self) -> AzureConfig {
        AzureConfig::from_account_key(ACCOUNT, KEY, CONTAINER, Some(&self.endpoint()))
    }

    async fn with_container(&self) {
        let s = AzureStorage::connect("setup", &self.key_config())
            .await
            .unwrap();
        s.create_container().await.unwrap();
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        self.kill();
    }
}

fn small_blocks(mut cfg: AzureConfig) -> AzureConfig {
    cfg.block_size = 64 * 1024;
    cfg.single_put_max = 100 * 1024;
    cfg.concurrency = 2;
    cfg.retry.base_ms = 20;
    cfg.retry.max_ms = 100;
    cfg
}

/// Deterministic bytes that differ from block to block.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> (PathBuf, u64, [u8; 16]) {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    (p, data.len() as u64, Md5::digest(data).into())
}

async fn read_all(s: &AzureStorage, key: &str, range: Option<std::ops::Range<u64>>) -> Vec<u8> {
    let chunks: Vec<bytes::Bytes> = s
        .get(key, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    chunks.concat()
}

async fn round_trip(s: &AzureStorage, dir: &Path) {
    s.probe().await.unwrap();
    let small = content(10_000, 1);
    let large = content(700_000, 2); // 11 blocks of 64 KiB
    let (ps, ns, ms) = write(dir, "small", &small);
    let (pl, nl, ml) = write(dir, "large", &large);
    let ks = "2026/11/26/rec 1/meta.json";
    let kl = "2026/11/26/rec 1/mixed.ogg";

    let meta = s.put_file(ks, &ps, ns, ms).await.unwrap();
    assert_eq!((meta.size, meta.md5), (ns, Some(ms)));
    let meta = s.put_file(kl, &pl, nl, ml).await.unwrap();
    assert_eq!((meta.size, meta.md5), (nl, Some(ml)));
    // Repeating a put is safe (the uploader's journal replays).
    s.put_file(kl, &pl, nl, ml).await.unwrap();

    assert_eq!(s.head(ks).await.unwrap().unwrap().md5, Some(ms));
    assert_eq!(read_all(s, ks, None).await, small);
    assert_eq!(read_all(s, kl, None).await, large);
    // A range across block boundaries.
    assert_eq!(
        read_all(s, kl, Some(60_000..200_001)).await,
        &large[60_000..200_001]
    );
    assert!(read_all(s, kl, Some(5..5)).await.is_empty());

    let mut listed = s.list("2026/11/26/rec 1/").await.unwrap();
    listed.sort_by(|a, b| a.key.cmp(&b.key));
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[0].key.as_str(), listed[0].md5), (ks, Some(ms)));
    assert_eq!((listed[1].key.as_str(), listed[1].size), (kl, nl));
    assert!(s.list("2026/11/27/").await.unwrap().is_empty());

    s.delete(ks).await.unwrap();
    s.delete(ks).await.unwrap();
    assert!(s.head(ks).await.unwrap().is_none());
    assert!(matches!(
        s.get(ks, None).await.err(),
        Some(StorageError::NotFound { .. })
    ));
    s.delete(kl).await.unwrap();
    assert!(s.list("2026/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_a_sas_url() {
    let Some(bin) = azurite_or_skip("round_trip_with_a_sas_url") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let az = Azurite::start(&bin, tmp.path());
    az.with_container().await;
    let cfg = small_blocks(AzureConfig::from_sas_url(
        &az.sas("racwdl", chrono::Duration::hours(1)),
    ));
    let s = AzureStorage::connect("byos", &cfg).await.unwrap();
    round_trip(&s, tmp.path()).await;
    assert!(s.stats().blocks_staged >= 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_an_account_key() {
    let Some(bin) = azurite_or_skip("round_trip_with_an_account_key") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let az = Azurite::start(&bin, tmp.path());
    az.with_container().await;
    let s = AzureStorage::connect("keyed", &small_blocks(az.key_config()))
        .await
        .unwrap();
    round_trip(&s, tmp.path()).await;
}

/// `create_container = true` (what scripts/run.sh --azurite configures): the daemon's `open`
/// creates a missing container, and a second `open` on the existing one is fine; without it
/// nothing is created and the probe reports the missing container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_creates_the_container_when_configured() {
    let Some(bin) = azurite_or_skip("open_creates_the_container_when_configured") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let az = Azurite::start(&bin, tmp.path());
    let plain = AzureStorage::open("plain", &az.key_config()).await.unwrap();
    assert!(plain.probe().await.is_err(), "no container yet");
    let cfg = AzureConfig {
        create_container: true,
        ..small_blocks(az.key_config())
    };
    let s = AzureStorage::open("created", &cfg).await.unwrap();
    round_trip(&s, tmp.path()).await;
    let again = AzureStorage::open("again", &cfg).await.unwrap();
    again.probe().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_interrupted_by_an_outage_resumes_its_staged_blocks() {
    let Some(bin) = azurite_or_skip("an_upload_interrupted_by_an_outage_resumes") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("azurite");
    std::fs::create_dir(&data_dir).unwrap();
    let mut az = Azurite::start(&bin, &data_dir);
    az.with_container().await;
    let mut cfg = AzureConfig::from_sas_url(&az.sas("racwdl", chrono::Duration::hours(1)));
    cfg.block_size = 256 * 1024;
    cfg.single_put_max = 1024 * 1024;
    cfg.concurrency = 2;
    cfg.retry.max_retries = 2;
    cfg.retry.base_ms = 20;
    cfg.retry.max_ms = 50;
    let s = Arc::new(AzureStorage::connect("byos", &cfg).await.unwrap());
    let data = content(20 * 1024 * 1024, 3);
    let (p, n, m) = write(tmp.path(), "long.ogg", &data);
    let total = n.div_ceil(256 * 1024);
    let key = "2026/11/26/rec-long/mixed.ogg";

    let put = {
        let (s, p) = (s.clone(), p.clone());
        tokio::spawn(async move { s.put_file(key, &p, n, m).await })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.stats().blocks_staged < total / 4 {
        assert!(!put.is_finished(), "the put ended before the outage");
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::task::block_in_place(|| az.stop());
    let err = put.await.unwrap().unwrap_err();
    assert!(
        matches!(err, StorageError::Unreachable { .. }),
        "expected Unreachable, got {err}"
    );
    assert!(err.is_storage_down());
    let first = s.stats();
    assert!(first.blocks_staged < total, "{first:?}");

    tokio::task::block_in_place(|| az.spawn());
    let meta = s.put_file(key, &p, n, m).await.unwrap();
    assert_eq!((meta.size, meta.md5), (n, Some(m)));
    let second = s.stats();
    let resent = second.blocks_staged - first.blocks_staged;
    let skipped = second.blocks_skipped - first.blocks_skipped;
    eprintln!(
        "{total} blocks: {} before the outage, {skipped} skipped, {resent} re-sent",
        first.blocks_staged
    );
    assert!(skipped > 0, "{second:?}");
    assert!(resent < total, "{second:?}");
    assert_eq!(resent + skipped, total);
    assert_eq!(Md5::digest(read_all(&s, key, None).await).as_slice(), &m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_sas_or_one_without_write_is_an_auth_error() {
    let Some(bin) = azurite_or_skip("an_expired_sas_or_one_without_write") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let az = Azurite::start(&bin, tmp.path());
    az.with_container().await;
    let (p, n, m) = write(tmp.path(), "a.ogg", &content(5000, 4));

    let expired = AzureConfig::from_sas_url(&az.sas("racwdl", -chrono::Duration::minutes(5)));
    let s = AzureStorage::connect("expired", &expired).await.unwrap();
    let e = s.probe().await.unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e}");
    assert!(!e.to_string().contains("sig="), "the SAS leaked: {e}");
    let e = s.put_file("x/a.ogg", &p, n, m).await.unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e}");

    // A SAS for a container that does not exist (deleted, or a typo): a storage failure too.
    let missing = container_sas_url(
        &format!("{}/nosuch", az.endpoint()),
        ACCOUNT,
        KEY,
        "racwdl",
        chrono::Utc::now() + chrono::Duration::hours(1),
    )
    .unwrap();
    let s = AzureStorage::connect("missing", &AzureConfig::from_sas_url(&missing))
        .await
        .unwrap();
    let e = s.probe().await.unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e}");
    let e = s.head("x/a.ogg").await.unwrap_err();
    assert!(e.is_storage_down(), "{e}");

    let read_only = AzureConfig::from_sas_url(&az.sas("rl", chrono::Duration::hours(1)));
    let s = AzureStorage::connect("read-only", &read_only)
        .await
        .unwrap();
    s.probe().await.unwrap();
    let e = s.put_file("x/a.ogg", &p, n, m).await.unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e}");
    // Nor through blocks.
    let s = AzureStorage::connect("read-only", &small_blocks(read_only))
        .await
        .unwrap();
    let (p, n, m) = write(tmp.path(), "b.ogg", &content(300_000, 5));
    let e = s.put_file("x/b.ogg", &p, n, m).await.unwrap_err();
    assert!(matches!(e, StorageError::Auth { .. }), "{e}");
    assert!(s.list("x/").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_catches_a_wrong_md5_and_a_changed_stored_blob() {
    let Some(bin) = azurite_or_skip("verification_catches") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let az = Azurite::start(&bin, tmp.path());
    az.with_container().await;
    let s = AzureStorage::connect("byos", &small_blocks(az.key_config()))
        .await
        .unwrap();
    let (ps, ns, _) = write(tmp.path(), "s.ogg", &content(5000, 6));
    let (pl, nl, ml) = write(tmp.path(), "l.ogg", &content(400_000, 7));
    let wrong = [0xAB; 16];

    // A spool file that does not match its hash is refused, by the single put and by blocks
    // (staged, but never committed).
    let e = s.put_file("r/s.ogg", &ps, ns, wrong).await.unwrap_err();
    assert!(matches!(e, StorageError::Mismatch { .. }), "{e}");
    let e = s.put_file("r/l.ogg", &pl, nl, wrong).await.unwrap_err();
    assert!(matches!(e, StorageError::Mismatch { .. }), "{e}");
    assert!(s.head("r/s.ogg").await.unwrap().is_none());
    assert!(s.head("r/l.ogg").await.unwrap().is_none());
    // A wrong size too.
    let e = s.put_file("r/l.ogg", &pl, nl + 1, ml).await.unwrap_err();
    assert!(matches!(e, StorageError::Mismatch { .. }), "{e}");

    // The stored copy replaced behind our back no longer verifies.
    s.put_file("r/l.ogg", &pl, nl, ml).await.unwrap();
    s.verify("r/l.ogg", nl, ml).await.unwrap();
    let (po, no, mo) = write(tmp.path(), "other.ogg", &content(400_000, 8));
    s.put_file("r/l.ogg", &po, no, mo).await.unwrap();
    let e = s.verify("r/l.ogg", nl, ml).await.unwrap_err();
    assert!(matches!(e, StorageError::Mismatch { .. }), "{e}");
    let e = s.verify("r/missing.ogg", nl, ml).await.unwrap_err();
    assert!(matches!(e, StorageError::Mismatch { .. }), "{e}");
}

#[tokio::test]
async fn a_storage_nobody_listens_on_is_unreachable_after_bounded_retries() {
    let port = free_port();
    let mut cfg = AzureConfig::from_account_key(
        ACCOUNT,
        KEY,
        CONTAINER,
        Some(&format!("http://127.0.0.1:{port}/{ACCOUNT}")),
    );
    cfg.retry.max_retries = 2;
    cfg.retry.base_ms = 10;
    let s = AzureStorage::connect("down", &cfg).await.unwrap();
    let e = s.probe().await.unwrap_err();
    assert!(matches!(e, StorageError::Unreachable { .. }), "{e}");
    assert_eq!(s.stats().retries, 2);
}

/// The daemon's uploader to an Azure storage, as a process: Azurite stopped in the middle of the
/// uploads and restarted, then an expired SAS. No recording lost or stored twice, the
/// `ConnectionFailed` alarm raised once per outage with the storage's friendly name and
/// cleared on recovery, recordings waiting in the spool meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_uploader_rides_out_an_azurite_outage_and_an_expired_sas() {
    let Some(bin) = azurite_or_skip("the_uploader_rides_out_an_azurite_outage") else {
        return;
    };
    let loc = tempfile::tempdir().unwrap();
    let mut az = Azurite::start(&bin, loc.path());
    az.with_container().await;
    let config = |sas: &str| {
        format!(
            "[[storage]]\nname = \"vault\"\nkind = \"azure\"\n[storage.azure]\nsas_url = \"{sas}\"\n\
             block_size = 65536\nsingle_put_max = 65536\nconcurrency = 2\nrequest_timeout_secs = 5\n\
             [storage.azure.retry]\nmax_retries = 1\nbase_ms = 20\nmax_ms = 50\n"
        )
    };
    let good = az.sas("racwdl", chrono::Duration::hours(1));
    let mut env = support::Env::new(&config(&good));
    let n = 6;
    for i in 0..n {
        support::seal(
            &env.spool(),
            &format!("az-{i}"),
            "vault",
            "Essentials",
            200_000,
        );
    }
    // Slow puts (each file waits 150 ms), so that the outage lands mid-upload.
    env.start(&[("RECORDER_DAEMON_TEST_PUT_DELAY_MS", "150")]);
    env.wait("a first recording stored", || env.sealed().len() < n);
    az.stop();
    env.wait("the ConnectionFailed alarm", || {
        env.active_alarms().iter().any(|a| {
            a["name"] == "ConnectionFailed" && a["source"] == format!("{}/vault", support::TENANT)
        })
    });
    assert!(
        !env.sealed().is_empty(),
        "recordings wait in the spool during the outage"
    );
    let st = env.get("/api/v1/storages").json();
    assert_eq!(st["items"][0]["connection"], "failed", "{st}");
    az.spawn();
    env.wait("the spool to empty", || env.spool_empty());
    env.wait("the alarm to clear", || env.active_alarms().is_empty());

    // Every recording exactly once: one interaction each, Available, every file stored once.
    let items = env.interactions();
    assert_eq!(items.len(), n, "{items:?}");
    assert!(
        items.iter().all(|i| i["mediaStatus"] == "Available"),
        "{items:?}"
    );
    let s = AzureStorage::connect("check", &az.key_config())
        .await
        .unwrap();
    let stored = s.list("").await.unwrap();
    assert_eq!(stored.len(), n * 4, "{stored:?}");
    let raised = |env: &support::Env| {
        env.activity_kinds()
            .iter()
            .filter(|(k, src)| k == "alarmRaised" && src.ends_with("/vault"))
            .count()
    };
    assert_eq!(raised(&env), 1);
    assert!(env.logs().contains("vault"), "the log names the storage");

    // An expired SAS: the recording waits, the alarm says credentials; a fresh SAS recovers.
    env.kill();
    let expired = az.sas("racwdl", chrono::Duration::hours(-1));
    env.write_config(&config(&expired));
    support::seal(&env.spool(), "az-late", "vault", "Essentials", 1000);
    env.start(&[]);
    env.wait("the ConnectionFailed alarm for the expired SAS", || {
        env.active_alarms()
            .iter()
            .any(|a| a["name"] == "ConnectionFailed")
    });
    let alarm = env.active_alarms()[0].clone();
    assert!(
        alarm["text"].as_str().unwrap().contains("credentials"),
        "{alarm}"
    );
    assert!(
        !alarm["text"].as_str().unwrap().contains("sig="),
        "no secret in the alarm"
    );
    assert_eq!(env.sealed(), ["az-late"]);
    env.kill();
    env.write_config(&config(&good));
    env.start(&[]);
    env.wait("the late recording stored", || env.spool_empty());
    env.wait("the alarm to clear", || env.active_alarms().is_empty());
    assert_eq!(env.interactions().len(), n + 1);
    assert_eq!(raised(&env), 2);
}
