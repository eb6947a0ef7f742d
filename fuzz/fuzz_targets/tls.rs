//! TLS ClientHello (SNI, ECH, GREASE, multi-record) on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = warden::packet::tls::parse_client_hello(data);
});
