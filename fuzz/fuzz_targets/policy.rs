//! The policy compiler (TOML text to Policy, every problem with its position).
//! See warden::fuzzing (the corpus replay test calls the same entry point).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::policy(data));
