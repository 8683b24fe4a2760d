//! `recorder-daemon retention run-once`: the operator's way to run a cycle, its `--now`, and
//! the `[retention]` configuration it checks.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_recorder-daemon");

fn run(dir: &std::path::Path, cfg: &str, extra: &[&str]) -> std::process::Output {
    let path = dir.join("daemon.toml");
    std::fs::write(&path, cfg).unwrap();
    Command::new(BIN)
        .args(["retention", "run-once", "--config"])
        .arg(&path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn run_once_prints_the_report_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = "[retention]\ninterval = \"12h\"\ntime_of_day = \"02:00\"\nbatch_size = 100\n";
    let out = run(dir.path(), cfg, &["--now", "2030-01-01T00:00:00Z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["now"], "2030-01-01T00:00:00.000Z");
    assert_eq!(report["storageFailures"], 0);

    let out = run(dir.path(), cfg, &["--now", "tomorrow"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
    let out = run(dir.path(), "[retention]\ninterval = \"often\"\n", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention.interval"));
    let out = run(dir.path(), "[retention]\nintervall = \"1h\"\n", &[]);
    assert!(!out.status.success(), "unknown keys are refused");
}
