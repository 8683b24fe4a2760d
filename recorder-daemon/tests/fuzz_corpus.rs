//! Replays the recorder-daemon fuzz targets' corpora (`fuzz/corpus/<target>/`) on stable Rust
//! through the same entry points the cargo-fuzz targets call.

fn replay(target: &str, f: fn(&[u8])) {
    media_core::fuzz_corpus::replay(env!("CARGO_MANIFEST_DIR"), target, f);
}

#[test]
fn store_request_corpus() {
    replay("store_request", recorder_daemon::api::fuzz_request_input);
}

#[test]
fn azure_xml_corpus() {
    replay("azure_xml", recorder_daemon::storage::azure::fuzz_xml);
}
