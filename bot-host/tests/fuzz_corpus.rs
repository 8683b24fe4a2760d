//! Replays the pcap, sdp and notifications fuzz targets' corpora on stable Rust (see media-core/tests/fuzz_corpus.rs).

#[test]
fn pcap_corpus() {
    media_core::fuzz_corpus::replay(
        env!("CARGO_MANIFEST_DIR"),
        "pcap",
        bot_host::capture::fuzz_read,
    );
}

#[test]
fn sdp_corpus() {
    media_core::fuzz_corpus::replay(
        env!("CARGO_MANIFEST_DIR"),
        "sdp",
        bot_host::live::sdp::fuzz_sdp,
    );
}

#[test]
fn notifications_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/notifications");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let data = std::fs::read(&path).unwrap();
            bot_host::signaling::fuzz_notifications(&data);
            // The hand-written seeds are real call flows: they must be accepted and acted on,
            // or the fuzzer starts from nothing useful.
            let name = path.file_name().unwrap().to_string_lossy();
            if name.ends_with(".json") && !name.starts_with("bad") && !name.starts_with("array") {
                let mut s = bot_host::signaling::Signaling::new(
                    bot_host::signaling::Profiles::embedded_default(),
                    bot_host::signaling::BotRole::Primary,
                );
                let cmds = s
                    .handle_notifications(&data, std::time::SystemTime::UNIX_EPOCH)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(!cmds.is_empty(), "{name}: {cmds:?}");
            }
            n += 1;
        }
    }
    assert!(n > 0, "{}: empty corpus", dir.display());
}

#[test]
fn whip_sdp_corpus() {
    media_core::fuzz_corpus::replay(
        env!("CARGO_MANIFEST_DIR"),
        "whip_sdp",
        bot_host::live::whip_sdp::fuzz_whip_sdp,
    );
}
