//! The reviews (summary, hosts, timeline) on arbitrary log bytes: no panic,
//! and one thread agrees with two threads reading tiny chunks.
//! See warden::fuzzing (the corpus replay test calls the same entry point).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::audit_review(data));
