//! The audit-log reader: check_line per line, verify_reader on the whole input.
//! See warden::fuzzing (the corpus replay test calls the same entry point).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::audit_log(data));
