//! A bot-host that cannot record a call refuses it with the RecordingResourceUnavailable
//! alarm instead of answering it and recording nothing.

use std::time::Duration;

use bot_host::host::{Host, HostConfig};
use bot_host::simulate::run::{simulate, Pacing, SimulateOptions};

async fn metric(http: std::net::SocketAddr, name: &str) -> f64 {
    let text = reqwest::get(format!("http://{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_calls_with_the_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        data_dir: dir.path().to_path_buf(),
        profiles: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-profiles.toml")),
        // More free space than any disk has: every call to record is refused.
        min_free_mib: 1 << 40,
        ..HostConfig::default()
    };
    let host = Host::start(cfg).await.unwrap();
    let http = host.http_addr();
    let mut o = SimulateOptions::new(format!("http://{http}"));
    o.pacing = Pacing::Fast;
    o.scenarios = vec!["internal-p2p-in".into(), "unprofiled-user".into()];
    o.seal_timeout = Duration::from_secs(5);
    let report = simulate(o).await.unwrap();
    // The call to record fails (refused, nothing recorded); the one not to record is fine.
    assert_eq!(report.failures(), 1, "{report}");
    let refused = &report.legs[0];
    assert!(!refused.recorded, "{report}");
    assert!(refused.observed.contains("rejected"), "{report}");
    assert_eq!(refused.media.sent, 0, "no media for a refused call");
    assert_eq!(metric(http, "bothost_alarms_total").await, 1.0);
    assert_eq!(
        std::fs::read_dir(dir.path().join("spool/sealed"))
            .unwrap()
            .count(),
        0
    );
    host.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_without_mixing_seals_tracks_only() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = HostConfig {
        data_dir: dir.path().to_path_buf(),
        profiles: Some(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sim-profiles.toml")),
        mix_on_seal: false,
        ..HostConfig::default()
    };
    let host = Host::start(cfg).await.unwrap();
    let mut o = SimulateOptions::new(format!("http://{}", host.http_addr()));
    o.pacing = Pacing::Fast;
    o.scenarios = vec!["internal-p2p-in".into()];
    o.seal_timeout = Duration::from_secs(10);
    let report = simulate(o).await.unwrap();
    assert_eq!(report.failures(), 0, "{report}");
    let sealed = std::path::PathBuf::from(report.legs[0].sealed_path.clone().unwrap());
    assert!(!sealed.join("mixed.ogg").exists());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sealed.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["mixed"]["deferred"], true, "{meta}");
    assert!(meta["tracks"].as_array().unwrap().len() >= 2);
    host.shutdown().await.unwrap();
}
