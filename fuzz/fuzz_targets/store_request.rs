#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| recorder_daemon::api::fuzz_request_input(data));
