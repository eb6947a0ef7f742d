//! Test support: a fake upstream DNS server, a small blocking DNS client,
//! and a runner for the real `warden` binary.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod fake_upstream;
pub mod warden;

pub use client::{
    a_records, aaaa_records, build_query, ede, query_tcp, query_udp, query_udp_opts, rcode, send_raw_tcp, send_raw_udp,
    try_query_udp,
};
pub use fake_upstream::{FakeUpstream, Mode, Zone};
pub use hickory_proto::op::{Message, ResponseCode};
pub use hickory_proto::rr::RecordType;
pub use warden::{Warden, contacts, read_records};
