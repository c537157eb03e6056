//! libFuzzer entry point of the `config_loader` target (see fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distarch_fuzz::config_loader(data));
