//! Replays the recorder-daemon fuzz targets' corpora (`fuzz/corpus/<target>/`) on stable Rust
//! through the same entry points the cargo-fuzz targets call.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() {
            f(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}

#[test]
fn store_request_corpus() {
    replay("store_request", recorder_daemon::api::fuzz_request_input);
}

#[test]
fn azure_xml_corpus() {
    replay("azure_xml", recorder_daemon::storage::azure::fuzz_xml);
}
