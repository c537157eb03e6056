//! libFuzzer entry point of the `ssh_quote` target (see fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| distarch_fuzz::ssh_quote(data));
