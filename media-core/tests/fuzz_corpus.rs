//! Replays every fuzz target's corpus (`fuzz/corpus/<target>/`) on stable Rust, through the
//! same entry points the cargo-fuzz targets call, so that every input that ever crashed or
//! widened coverage keeps being checked by `cargo test`.

fn replay(target: &str, f: fn(&[u8])) {
    media_core::fuzz_corpus::replay(env!("CARGO_MANIFEST_DIR"), target, f);
}

#[test]
fn rtp_corpus() {
    replay("rtp", media_core::rtp::fuzz_parse);
}

#[test]
fn rtcp_corpus() {
    replay("rtcp", media_core::rtcp::fuzz_parse);
}

#[test]
fn srtp_unprotect_corpus() {
    replay("srtp_unprotect", media_core::srtp::fuzz_unprotect);
}

#[test]
fn sdes_corpus() {
    replay("sdes", media_core::sdes::fuzz_parse);
}

#[test]
fn ingest_corpus() {
    replay("ingest", media_core::recording::fuzz_ingest);
}

#[test]
fn ogg_window_corpus() {
    replay("ogg_window", media_core::window::fuzz_cut);
}

#[test]
fn mix_track_corpus() {
    replay("mix_track", media_core::mix::fuzz_read_track);
}
