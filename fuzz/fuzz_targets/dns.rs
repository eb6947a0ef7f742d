//! DNS messages seen on the wire (UDP and TCP framing) on arbitrary bytes.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = warden::packet::dns::parse_udp(data);
    let _ = warden::packet::dns::parse_tcp(data);
});
