//! Blocklist parsing (plain, hosts and adblock lines) beside a small policy.
//! See warden::fuzzing (the corpus replay test calls the same entry point).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::blocklist(data));
