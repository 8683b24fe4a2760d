#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bot_host::live::whip_sdp::fuzz_whip_sdp(data));
