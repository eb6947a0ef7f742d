//! DNS request handling: wire fast path and hickory full path, bytes in, response or drop out.
//! See warden::fuzzing (the corpus replay test calls the same entry point).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| warden::fuzzing::dns_request(data));
