//! Replays the pcap and sdp fuzz targets' corpora on stable Rust (see media-core/tests/fuzz_corpus.rs).

use std::path::Path;

#[test]
fn pcap_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/pcap");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bot_host::capture::fuzz_read(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}

#[test]
fn sdp_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/sdp");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            bot_host::live::sdp::fuzz_sdp(&std::fs::read(&path).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}
