#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| recorder_daemon::storage::azure::fuzz_xml(data));
