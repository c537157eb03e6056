//! libFuzzer entry point of the `frame_decoder` target (see fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distarch_fuzz::frame_decoder(data));
