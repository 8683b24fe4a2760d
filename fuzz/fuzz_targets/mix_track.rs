#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| media_core::mix::fuzz_read_track(data));
