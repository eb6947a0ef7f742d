//! The whole per-frame path (parse, reassembly, decide) on a sequence of
//! frames: the input is split at 0xff 0x00 into frames fed in order, so
//! the flow table sees multi-segment streams.
#![no_main]
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use warden::packet::flow::FlowLimits;
use warden::packet::{Inspector, PacketStats};

fn policy() -> Arc<ArcSwap<warden::policy::Policy>> {
    static POLICY: OnceLock<Arc<ArcSwap<warden::policy::Policy>>> = OnceLock::new();
    POLICY.get_or_init(|| Arc::new(ArcSwap::from_pointee(warden::policy::builtin().expect("policy")))).clone()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let limits = FlowLimits { max_flows: 8, max_bytes: 4096, timeout_ms: 1000 };
    let mut inspector = Inspector::new(policy(), vec![], limits, Arc::new(PacketStats::default()));
    let mut events = Vec::new();
    for (i, frame) in data.split(|&b| b == 0xff).enumerate() {
        inspector.inspect(frame, i as i64, &mut events);
        assert!(inspector.flows().held_bytes() <= 8 * 4096);
    }
});
