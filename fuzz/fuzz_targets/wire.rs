//! Ethernet/802.1Q/IPv4/IPv6/TCP/UDP headers on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = warden::packet::wire::parse_ethernet(data);
    let _ = warden::packet::wire::parse_ip(data);
});
