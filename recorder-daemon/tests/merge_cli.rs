//! `recorder-daemon merge --once`: the operator's way to run one merge round (the merge itself
//! is tested in `src/merge/tests.rs`).

const BIN: &str = env!("CARGO_BIN_EXE_recorder-daemon");

#[test]
fn merge_once_prints_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["merge", "--once", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        r,
        serde_json::json!({"merged": 0, "failed": 0, "waiting": 0})
    );
    // The store it opened is migrated (the merge columns exist).
    assert!(dir.path().join("store.db").is_file());
}
