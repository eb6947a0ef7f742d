//! Wire format for the fast path: read a plain query (header, one question,
//! optional OPT) without building a message, and write the few responses
//! the fast path gives. Anything unusual returns `None` and goes to the full
//! hickory-based path, which answers every case correctly.

use crate::matcher::NameBuf;

pub const HEADER: usize = 12;
const TYPE_OPT: u16 = 41;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
const TYPE_SOA: u16 = 6;
const TYPE_AXFR: u16 = 252;
const TYPE_IXFR: u16 = 251;
const CLASS_IN: u16 = 1;
pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_REFUSED: u8 = 5;

/// EDNS of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub payload: u16,
    pub dnssec_ok: bool,
}

/// A standard query the fast path can answer.
#[derive(Debug)]
pub struct Query<'a> {
    pub id: u16,
    pub recursion_desired: bool,
    pub checking_disabled: bool,
    pub qtype: u16,
    /// The question section exactly as sent (echoed in answers).
    pub question: &'a [u8],
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// Largest UDP response the client accepts (bounded by ours).
    pub fn udp_limit(&self) -> usize {
        super::answer::udp_limit_for(self.edns.map(|e| e.payload))
    }
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// Parse a plain query: QR=0, opcode QUERY, one IN question without
/// compression, no answer or authority records, at most an OPT (version 0)
/// as additional record, nothing after it. The question's name goes to
/// `name` (normalised), written in place rather than returned: the parsed
/// query stays a few words, and nothing 254 bytes long is moved.
pub fn parse_query<'a>(buf: &'a [u8], name: &mut NameBuf) -> Option<Query<'a>> {
    let flags = u16_at(buf, 2)?;
    let counts = (u16_at(buf, 4)?, u16_at(buf, 6)?, u16_at(buf, 8)?, u16_at(buf, 10)?);
    if flags & 0xf800 != 0 || counts.0 != 1 || counts.1 != 0 || counts.2 != 0 || counts.3 > 1 {
        return None;
    }
    let end = read_name(buf, HEADER, name)?;
    let qtype = u16_at(buf, end)?;
    if u16_at(buf, end + 2)? != CLASS_IN || matches!(qtype, TYPE_OPT | TYPE_AXFR | TYPE_IXFR) {
        return None;
    }
    let qend = end + 4;
    let edns = match counts.3 {
        0 if qend == buf.len() => None,
        1 => Some(read_opt(buf, qend)?),
        _ => return None,
    };
    Some(Query {
        id: u16_at(buf, 0)?,
        recursion_desired: flags & 0x0100 != 0,
        checking_disabled: flags & 0x0010 != 0,
        qtype,
        question: buf.get(HEADER..qend)?,
        edns,
    })
}

/// An uncompressed name of printable labels at `start`, lowercased and
/// dotted into `name`; returns where it ends. Whole-name passes instead of
/// a loop per byte: the label lengths are walked, the labels copied at
/// once (length bytes where the dots go), and the bytes checked and
/// lowercased in two passes the compiler vectorises.
fn read_name(buf: &[u8], start: usize, name: &mut NameBuf) -> Option<usize> {
    // The zero length that ends the name; labels of at most 63 bytes.
    let mut at = start;
    loop {
        let l = usize::from(*buf.get(at)?);
        if l == 0 {
            break;
        }
        if l > 63 {
            return None;
        }
        at += 1 + l;
    }
    // `span`: the labels with the length bytes between them (not the first).
    let span = buf.get(start + 1..at)?;
    let written = name.write_normalized(|out| {
        let out = out.get_mut(..span.len()).filter(|o| !o.is_empty())?;
        out.copy_from_slice(span);
        // The length byte before each label after the first, as offsets in
        // `out`. Where a dot goes, a byte that passes the check for now (a
        // length of 46 is a '.').
        let dots = |out: &mut [u8], dot: u8| {
            let mut i = usize::from(buf[start]);
            while i < span.len() {
                let next = usize::from(span[i]);
                out[i] = dot;
                i += 1 + next;
            }
        };
        dots(out, b'a');
        let bad = out.iter().fold(false, |acc, &b| acc | !(0x21..=0x7e).contains(&b) | (b == b'.') | (b == b'\\'));
        if bad {
            return None;
        }
        out.make_ascii_lowercase();
        dots(out, b'.');
        // Printable ASCII, lowercased, no trailing dot: what `normalize` makes.
        u8::try_from(out.len()).ok()
    });
    written.then_some(at + 1)
}

fn read_opt(buf: &[u8], at: usize) -> Option<Edns> {
    if *buf.get(at)? != 0 || u16_at(buf, at + 1)? != TYPE_OPT {
        return None;
    }
    let payload = u16_at(buf, at + 3)?;
    let (version, flags) = (*buf.get(at + 6)?, u16_at(buf, at + 7)?);
    let rdlen = usize::from(u16_at(buf, at + 9)?);
    if version != 0 || at + 11 + rdlen != buf.len() {
        return None;
    }
    Some(Edns { payload, dnssec_ok: flags & 0x8000 != 0 })
}

/// Response header + echoed question. (Each fixed part is put together on
/// the stack and appended at once: one capacity check and copy, not one
/// per field.)
pub fn begin(out: &mut Vec<u8>, q: &Query, rcode: u8, answers: u16, authorities: u16) {
    let flags =
        0x8080 | (u16::from(q.recursion_desired) << 8) | (u16::from(q.checking_disabled) << 4) | u16::from(rcode);
    let ([i0, i1], [f0, f1]) = (q.id.to_be_bytes(), flags.to_be_bytes());
    let ([a0, a1], [n0, n1]) = (answers.to_be_bytes(), authorities.to_be_bytes());
    out.clear();
    out.extend_from_slice(&[i0, i1, f0, f1, 0, 1, a0, a1, n0, n1, 0, u8::from(q.edns.is_some())]);
    out.extend_from_slice(q.question);
}

/// A record owned by the question name (compression pointer to offset 12).
pub fn record(out: &mut Vec<u8>, rtype: u16, ttl: u32, rdata: &[u8]) {
    let ([t0, t1], [c0, c1]) = (rtype.to_be_bytes(), CLASS_IN.to_be_bytes());
    let ([s0, s1, s2, s3], [l0, l1]) = (ttl.to_be_bytes(), (rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&[0xc0, 0x0c, t0, t1, c0, c1, s0, s1, s2, s3, l0, l1]);
    out.extend_from_slice(rdata);
}

/// The SOA of blocked answers: `warden.invalid. hostmaster.warden.invalid.`.
pub fn soa(out: &mut Vec<u8>, ttl: u32) {
    const NAMES: &[u8] = b"\x06warden\x07invalid\x00\x0ahostmaster\x06warden\x07invalid\x00";
    let mut rdata = [0u8; NAMES.len() + 20];
    rdata[..NAMES.len()].copy_from_slice(NAMES);
    for (slot, v) in rdata[NAMES.len()..].chunks_exact_mut(4).zip([1u32, 3600, 600, 86400, ttl]) {
        slot.copy_from_slice(&v.to_be_bytes());
    }
    record(out, TYPE_SOA, ttl, &rdata);
}

/// The OPT record of a response, with an Extended DNS Error when given.
pub fn opt(out: &mut Vec<u8>, q: &Query, ede: Option<(u16, &str)>) {
    let Some(edns) = q.edns else { return };
    let ([o0, o1], [p0, p1]) = (TYPE_OPT.to_be_bytes(), super::answer::EDNS_PAYLOAD.to_be_bytes());
    let flags = if edns.dnssec_ok { 0x80 } else { 0 };
    // RDLENGTH: one option (code 15, length, info code, text) or none.
    let [r0, r1] = (ede.map_or(0, |(_, text)| text.len() + 6) as u16).to_be_bytes();
    out.extend_from_slice(&[0, o0, o1, p0, p1, 0, 0, flags, 0, r0, r1]);
    if let Some((code, text)) = ede {
        let ([e0, e1], [l0, l1], [c0, c1]) =
            (15u16.to_be_bytes(), ((text.len() + 2) as u16).to_be_bytes(), code.to_be_bytes());
        out.extend_from_slice(&[e0, e1, l0, l1, c0, c1]);
        out.extend_from_slice(text.as_bytes());
    }
}

/// End of the (single) question of an encoded message.
pub fn question_end(msg: &[u8]) -> Option<usize> {
    (u16_at(msg, 4)? == 1).then_some(())?;
    let end = skip_name(msg, HEADER)? + 4;
    (end <= msg.len()).then_some(end)
}

/// Offsets of the TTL fields of every record after the question, except
/// OPT; `None` if the message does not walk cleanly.
pub fn ttl_offsets(msg: &[u8], question_end: usize) -> Option<Vec<usize>> {
    let total = usize::from(u16_at(msg, 6)?) + usize::from(u16_at(msg, 8)?) + usize::from(u16_at(msg, 10)?);
    let mut at = question_end;
    let mut offsets = Vec::with_capacity(total);
    for _ in 0..total {
        at = skip_name(msg, at)?;
        let rtype = u16_at(msg, at)?;
        let rdlen = usize::from(u16_at(msg, at + 8)?);
        if rtype != TYPE_OPT {
            offsets.push(at + 4);
        }
        at += 10 + rdlen;
    }
    (at == msg.len()).then_some(offsets)
}

fn skip_name(msg: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let l = *msg.get(at)?;
        match l {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return Some(at + 2),
            l if l <= 63 => at += 1 + usize::from(l),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, opt: bool) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(opt)];
        q.extend_from_slice(name);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        if opt {
            q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]);
        }
        q
    }

    #[test]
    fn a_refusal_written_from_parts_reads_as_the_full_paths() {
        use hickory_proto::op::Message;
        let text = "blocked by policy us-bis-kaspersky-2024 (update)";
        for (edns, dnssec_ok) in [(false, false), (true, false), (true, true)] {
            let mut bytes = query(b"\x03S10\x03upd\x09kaspersky\x03com\x00", TYPE_AAAA, edns);
            if edns && !dnssec_ok {
                let n = bytes.len();
                bytes[n - 4] = 0; // the DO bit
            }
            let mut name = NameBuf::new();
            let q = parse_query(&bytes, &mut name).unwrap();
            let mut fast = Vec::new();
            begin(&mut fast, &q, RCODE_NXDOMAIN, 0, 1);
            soa(&mut fast, 60);
            opt(&mut fast, &q, Some((16, text)));
            let req = Message::from_vec(&bytes).unwrap();
            let full = super::super::answer::blocked(
                &req,
                &req.queries[0],
                super::super::answer::BlockMode::Nxdomain,
                60,
                16,
                text,
            );
            let full = super::super::answer::encode(&full, None).unwrap();
            let (fast, full) = (Message::from_vec(&fast).unwrap(), Message::from_vec(&full).unwrap());
            assert_eq!(fast, full, "EDNS {edns}, DO {dnssec_ok}");
            // Records compare without their TTLs.
            let ttls = |m: &Message| m.authorities.iter().map(|r| r.ttl).collect::<Vec<_>>();
            assert_eq!((ttls(&fast), ttls(&full)), (vec![60], vec![60]));
        }
    }

    #[test]
    fn reads_plain_queries() {
        let q = query(b"\x03S10\x03upd\x09kaspersky\x03com\x00", 28, true);
        let mut name = NameBuf::new();
        let p = parse_query(&q, &mut name).unwrap();
        assert_eq!((p.id, name.as_str(), p.qtype), (0x1234, "s10.upd.kaspersky.com", 28));
        assert_eq!(p.edns, Some(Edns { payload: 1232, dnssec_ok: true }));
        assert!(p.recursion_desired);
        assert_eq!(p.question.len(), q.len() - 12 - 11);
    }

    #[test]
    fn leaves_unusual_queries_to_the_full_path() {
        let parse_query = |q: &[u8]| parse_query(q, &mut NameBuf::new()).map(|p| p.qtype);
        assert!(parse_query(&query(b"\xc0\x0c", 1, false)).is_none(), "compression");
        assert!(parse_query(&query(b"\x00", 1, false)).is_none(), "root");
        assert!(parse_query(&query(b"\x03a.b\x00", 1, false)).is_none(), "dot inside a label");
        assert!(parse_query(&query(b"\x01a\x00", 252, false)).is_none(), "AXFR");
        let mut trailing = query(b"\x01a\x00", 1, false);
        trailing.push(0);
        assert!(parse_query(&trailing).is_none(), "trailing bytes");
        assert!(parse_query(&[0; 5]).is_none());
    }

    /// The name reader before it worked on whole names: a label at a time,
    /// each byte checked and lowercased on its own.
    fn read_name_bytewise(buf: &[u8], mut at: usize) -> Option<(String, usize)> {
        let mut out = String::new();
        loop {
            let l = usize::from(*buf.get(at)?);
            at += 1;
            if l == 0 {
                break;
            }
            if l > 63 || out.len() + l + usize::from(!out.is_empty()) > 253 {
                return None;
            }
            if !out.is_empty() {
                out.push('.');
            }
            for &b in buf.get(at..at + l)? {
                if !(0x21..=0x7e).contains(&b) || b == b'.' || b == b'\\' {
                    return None;
                }
                out.push(char::from(b.to_ascii_lowercase()));
            }
            at += l;
        }
        (!out.is_empty()).then_some((out, at))
    }

    #[test]
    fn reads_every_name_as_the_bytewise_reader_did() {
        // Names built from label lengths that are themselves printable
        // bytes ('.' is 46, '!' 33, '?' 63), bytes that are not allowed,
        // uppercase, overlong names and labels, and cut-off buffers.
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        let alphabet = b"aZz09-_.\\\x00\x7f\x20!~Q";
        let mut names = 0;
        for _ in 0..20_000 {
            let mut wire = Vec::new();
            for _ in 0..next(8) {
                let l = match next(4) {
                    0 => next(64) + 1,
                    1 => [33, 46, 63, 64, 92][next(5) as usize],
                    _ => next(12) + 1,
                };
                wire.push(l as u8);
                for _ in 0..l {
                    let b = if next(60) == 0 {
                        alphabet[next(alphabet.len() as u64) as usize]
                    } else {
                        b'a' + next(26) as u8
                    };
                    wire.push(b);
                }
            }
            wire.push(0);
            let cut = if next(10) == 0 { next(wire.len() as u64 + 1) as usize } else { wire.len() };
            let buf = &wire[..cut];
            let mut name = NameBuf::new();
            let ours = read_name(buf, 0, &mut name).map(|end| (name.as_str().to_owned(), end));
            assert_eq!(ours, read_name_bytewise(buf, 0), "{buf:?}");
            names += usize::from(ours.is_some());
        }
        assert!(names > 5_000, "enough valid names among the cases: {names}");
    }

    #[test]
    fn walks_ttls_of_a_response() {
        let bytes = query(b"\x01a\x04test\x00", 1, true);
        let q = parse_query(&bytes, &mut NameBuf::new()).unwrap();
        let mut out = Vec::new();
        begin(&mut out, &q, RCODE_NOERROR, 1, 1);
        record(&mut out, TYPE_A, 300, &[198, 18, 0, 1]);
        soa(&mut out, 60);
        opt(&mut out, &q, Some((16, "x")));
        let offsets = ttl_offsets(&out, 12 + q.question.len()).unwrap();
        assert_eq!(offsets.len(), 2);
        assert_eq!(u32::from_be_bytes(out[offsets[0]..offsets[0] + 4].try_into().unwrap()), 300);
    }
}
