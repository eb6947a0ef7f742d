//! Per-flow reassembly of the first bytes a client sends on a TCP
//! connection, until the ClientHello or HTTP request head is whole. Bounded
//! three ways: bytes per flow, number of flows, and age. In-order segments
//! only: a gap (lost or reordered segment) gives up on the flow, a
//! retransmission of bytes already held is ignored. Owned by one capture
//! thread; no locking.

use std::collections::HashMap;
use std::net::IpAddr;

/// Direction-specific key: the client's side first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
}

/// What the held bytes are expected to become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tls,
    Http,
}

#[derive(Debug, Clone, Copy)]
pub struct FlowLimits {
    pub max_flows: usize,
    pub max_bytes: usize,
    pub timeout_ms: i64,
}

impl Default for FlowLimits {
    fn default() -> Self {
        FlowLimits { max_flows: 4096, max_bytes: super::tls::MAX_HELLO, timeout_ms: 5_000 }
    }
}

/// Result of offering a segment to the table.
#[derive(Debug, PartialEq, Eq)]
pub enum Append<'a> {
    /// No flow is being reassembled under this key.
    Untracked,
    /// The segment was appended: everything held so far.
    Appended(&'a [u8], Proto),
    /// A retransmission of bytes already held; nothing new.
    Duplicate,
    /// Gap, overflow or expiry: the flow was given up.
    Dropped,
}

struct Flow {
    proto: Proto,
    next_seq: u32,
    started_ms: i64,
    bytes: Vec<u8>,
}

pub struct FlowTable {
    limits: FlowLimits,
    flows: HashMap<FlowKey, Flow>,
    last_sweep_ms: i64,
}

impl FlowTable {
    pub fn new(limits: FlowLimits) -> FlowTable {
        FlowTable { limits, flows: HashMap::new(), last_sweep_ms: 0 }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Bytes held across all flows.
    pub fn held_bytes(&self) -> usize {
        self.flows.values().map(|f| f.bytes.len()).sum()
    }

    /// Offers the segment `payload` starting at sequence number `seq`.
    pub fn append(&mut self, key: &FlowKey, seq: u32, payload: &[u8], now_ms: i64) -> Append<'_> {
        let Some(flow) = self.flows.get(key) else { return Append::Untracked };
        let late = now_ms - flow.started_ms > self.limits.timeout_ms;
        let offset = seq.wrapping_sub(flow.next_seq);
        let end = flow.bytes.len() + payload.len();
        if late || (offset != 0 && offset < 1 << 31) || (offset == 0 && end > self.limits.max_bytes) {
            self.flows.remove(key);
            return Append::Dropped;
        }
        if offset != 0 {
            return Append::Duplicate; // seq before next_seq: already held
        }
        let Some(flow) = self.flows.get_mut(key) else { return Append::Untracked };
        flow.bytes.extend_from_slice(payload);
        flow.next_seq = seq.wrapping_add(payload.len() as u32);
        Append::Appended(&flow.bytes, flow.proto)
    }

    /// Starts reassembling a flow whose first segment is `payload`. Returns
    /// false (and tracks nothing) when the table is full of live flows or
    /// the segment is already too large.
    pub fn track(&mut self, key: FlowKey, proto: Proto, seq: u32, payload: &[u8], now_ms: i64) -> bool {
        if payload.len() > self.limits.max_bytes {
            return false;
        }
        if self.flows.len() >= self.limits.max_flows || now_ms - self.last_sweep_ms > 1_000 {
            self.sweep(now_ms);
        }
        if self.flows.len() >= self.limits.max_flows {
            return false;
        }
        let next_seq = seq.wrapping_add(payload.len() as u32);
        self.flows.insert(key, Flow { proto, next_seq, started_ms: now_ms, bytes: payload.to_vec() });
        true
    }

    pub fn remove(&mut self, key: &FlowKey) {
        self.flows.remove(key);
    }

    /// Forgets flows older than the timeout.
    pub fn sweep(&mut self, now_ms: i64) {
        let timeout = self.limits.timeout_ms;
        self.flows.retain(|_, f| now_ms - f.started_ms <= timeout);
        self.last_sweep_ms = now_ms;
    }
}
