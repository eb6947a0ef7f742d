//! Building responses: refusals for blocked names (NXDOMAIN + SOA + EDE by
//! default), error responses that echo ID and question, EDNS, truncation.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Deserialize;

/// Our advertised and accepted UDP payload size (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;

/// How a blocked name is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BlockMode {
    /// NXDOMAIN with an SOA (negative caching) and an Extended DNS Error.
    Nxdomain,
    /// NOERROR without answers, with an SOA and an Extended DNS Error.
    Nodata,
    /// REFUSED with an Extended DNS Error.
    Refused,
    /// A 0.0.0.0 / AAAA ::, other types NODATA.
    Sinkhole,
}

/// A response skeleton for `req`: ID, opcode, RD and the question echoed,
/// RA set, EDNS added when the client used it.
pub fn response_to(req: &Message, rcode: ResponseCode) -> Message {
    let mut msg = Message::new(req.metadata.id, MessageType::Response, req.metadata.op_code);
    msg.metadata.recursion_desired = req.metadata.recursion_desired;
    msg.metadata.recursion_available = true;
    msg.metadata.checking_disabled = req.metadata.checking_disabled;
    msg.metadata.response_code = rcode;
    msg.add_queries(req.queries.iter().cloned());
    if req.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        if let Some(dnssec_ok) = req.edns.as_ref().map(|e| e.flags().dnssec_ok) {
            edns.set_dnssec_ok(dnssec_ok);
        }
        msg.set_edns(edns);
    }
    msg
}

/// A bare error response when the request could not be parsed: the ID (and
/// opcode) taken from the raw header, no question.
pub fn raw_error(req: &[u8], rcode: ResponseCode) -> Option<Vec<u8>> {
    let id = u16::from_be_bytes([*req.first()?, *req.get(1)?]);
    let opcode = OpCode::from_u8((req.get(2)? >> 3) & 0x0f);
    let mut msg = Message::error_msg(id, opcode, rcode);
    msg.metadata.recursion_desired = req[2] & 1 == 1;
    msg.metadata.recursion_available = true;
    msg.to_vec().ok()
}

/// Attach an Extended DNS Error (RFC 8914) if the client speaks EDNS.
pub fn add_ede(msg: &mut Message, info_code: u16, text: &str) {
    if let Some(edns) = msg.edns.as_mut() {
        let mut data = info_code.to_be_bytes().to_vec();
        data.extend_from_slice(text.as_bytes());
        edns.options_mut().insert(EdnsOption::Unknown(u16::from(EdnsCode::Unknown(15)), data));
    }
}

/// The SOA we put in negative and blocked answers.
fn soa(owner: &Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("warden.invalid.").unwrap_or_default();
    let rname = Name::from_ascii("hostmaster.warden.invalid.").unwrap_or_default();
    let data = SOA::new(mname, rname, 1, 3600, 600, 86400, ttl);
    Record::from_rdata(owner.clone(), ttl, RData::SOA(data))
}

/// The refusal for a blocked query.
pub fn blocked(req: &Message, query: &Query, mode: BlockMode, ttl: u32, ede: u16, text: &str) -> Message {
    let rcode = match mode {
        BlockMode::Nxdomain => ResponseCode::NXDomain,
        BlockMode::Refused => ResponseCode::Refused,
        BlockMode::Nodata | BlockMode::Sinkhole => ResponseCode::NoError,
    };
    let mut msg = response_to(req, rcode);
    let name = query.name().clone();
    let sink = match (mode, query.query_type()) {
        (BlockMode::Sinkhole, RecordType::A) => Some(RData::A(A(Ipv4Addr::UNSPECIFIED))),
        (BlockMode::Sinkhole, RecordType::AAAA) => Some(RData::AAAA(AAAA(Ipv6Addr::UNSPECIFIED))),
        _ => None,
    };
    match sink {
        Some(rdata) => {
            msg.add_answer(Record::from_rdata(name, ttl, rdata));
        }
        None if mode != BlockMode::Refused => {
            msg.add_authority(soa(&name, ttl));
        }
        None => {}
    }
    add_ede(&mut msg, ede, text);
    msg
}

/// Encode `msg`, truncating to `limit` bytes (UDP) by dropping all records
/// and setting TC so the client retries over TCP. Never over `limit`: when
/// the question section alone does not fit, it goes too.
pub fn encode(msg: &Message, limit: Option<usize>) -> Option<Vec<u8>> {
    let bytes = msg.to_vec().ok()?;
    let Some(limit) = limit.filter(|&l| bytes.len() > l) else { return Some(bytes) };
    let mut truncated = msg.truncate();
    let bytes = truncated.to_vec().ok()?;
    if bytes.len() <= limit {
        return Some(bytes);
    }
    truncated.queries.clear();
    truncated.to_vec().ok().filter(|b| b.len() <= limit)
}

/// UDP payload the client accepts: 512 without EDNS, else its advertised
/// size bounded by ours.
pub fn udp_limit(req: &Message) -> usize {
    udp_limit_for(req.edns.as_ref().map(|e| e.max_payload()))
}

/// UDP payload for a client that advertised `payload` (None: no EDNS).
pub fn udp_limit_for(payload: Option<u16>) -> usize {
    payload.map_or(512, |p| usize::from(p.clamp(512, EDNS_PAYLOAD)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_udp_answer_never_exceeds_the_limit_even_when_its_questions_do() {
        let mut req = Message::new(7, MessageType::Query, OpCode::Query);
        // Names that share no label but the last two: compression saves little.
        for i in 0..18 {
            let name = Name::from_ascii(format!("q{i:02}-{}.example.test.", "x".repeat(50))).unwrap();
            req.add_query(Query::query(name, RecordType::A));
        }
        let reply = response_to(&req, ResponseCode::FormErr);
        assert!(reply.to_vec().unwrap().len() > 512, "the questions alone are over the limit");
        let bytes = encode(&reply, Some(512)).unwrap();
        assert!(bytes.len() <= 512, "{} bytes", bytes.len());
        let sent = Message::from_vec(&bytes).unwrap();
        assert_eq!((sent.metadata.id, sent.metadata.response_code), (7, ResponseCode::FormErr));
        assert!(sent.metadata.truncation, "TC: the client may retry over TCP");
        // Over TCP (no limit) it is sent whole.
        assert_eq!(Message::from_vec(&encode(&reply, None).unwrap()).unwrap().queries.len(), 18);
    }
}
