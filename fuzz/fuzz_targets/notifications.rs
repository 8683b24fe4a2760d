#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bot_host::signaling::fuzz_notifications(data));
