#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convene_fuzz_entry::entry("session")(data));
