#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| thisthat_fuzz::cursor(data));
