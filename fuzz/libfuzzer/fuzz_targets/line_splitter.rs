//! libFuzzer entry point of the `line_splitter` target (see fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distarch_fuzz::line_splitter(data));
