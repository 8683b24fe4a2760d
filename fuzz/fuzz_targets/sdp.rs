#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bot_host::live::sdp::fuzz_sdp(data));
