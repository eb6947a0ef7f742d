//! TLS ClientHello: the server name (SNI) from the start of a TCP stream.
//! Handles a ClientHello spread over several TLS records and TCP segments
//! (the caller brings the bytes, see `flow`), extensions in any order,
//! GREASE values (RFC 8701) and Encrypted Client Hello, where the visible
//! SNI is the outer, public name. Total over any input; allocates only when
//! the handshake spans more than one record, bounded by [`MAX_HELLO`].

/// Largest ClientHello accepted (post-quantum key shares are ~1.2 KiB; the
/// protocol allows 16 MiB, which a hostile client could otherwise claim).
pub const MAX_HELLO: usize = 16 * 1024;

const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ECH: u16 = 0xfe0d;

/// What the bytes so far are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// A whole ClientHello.
    Complete(ClientHello),
    /// The start of a ClientHello; more bytes are needed.
    Partial,
    /// Not a TLS ClientHello, or malformed.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// Lowercase host name from the server_name extension (the outer,
    /// public name when ECH is used); `None` when absent or not a valid name.
    pub sni: Option<String>,
    /// The encrypted_client_hello extension is present.
    pub ech: bool,
}

/// Cheap test: could `payload` start a TLS handshake record?
pub fn looks_like_hello(payload: &[u8]) -> bool {
    matches!(payload, [HANDSHAKE, 3, 0..=4, ..]) && payload.get(5).is_none_or(|&t| t == CLIENT_HELLO)
}

/// Parses the ClientHello at the start of a client's byte stream.
pub fn parse_client_hello(stream: &[u8]) -> Hello {
    match handshake_message(stream) {
        Ok(body) => parse_body(&body).map_or(Hello::Invalid, Hello::Complete),
        Err(state) => state,
    }
}

/// Reassembles the first handshake message from one or more records.
fn handshake_message(stream: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, Hello> {
    let mut records = Reader(stream);
    let mut joined: Option<Vec<u8>> = None;
    loop {
        let Some(header) = records.take(5) else { return Err(Hello::Partial) };
        if header[0] != HANDSHAKE || header[1] != 3 {
            return Err(Hello::Invalid);
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > 16 * 1024 + 256 {
            return Err(Hello::Invalid);
        }
        let Some(fragment) = records.take(len) else { return Err(Hello::Partial) };
        let have: &[u8] = match &mut joined {
            None if is_whole(fragment)? => return Ok(fragment.into()),
            None => joined.insert(fragment.to_vec()),
            Some(buf) => {
                buf.extend_from_slice(fragment);
                buf
            }
        };
        if is_whole(have)? {
            return Ok(joined.unwrap_or_default().into());
        }
    }
}

/// Whether `msg` holds a whole ClientHello handshake message.
fn is_whole(msg: &[u8]) -> Result<bool, Hello> {
    let Some(header) = msg.get(..4) else { return Ok(false) };
    if header[0] != CLIENT_HELLO {
        return Err(Hello::Invalid);
    }
    let len = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    if len + 4 > MAX_HELLO {
        return Err(Hello::Invalid);
    }
    Ok(msg.len() >= len + 4)
}

fn parse_body(msg: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(msg);
    let header = r.take(4)?;
    let len = usize::from(header[1]) << 16 | usize::from(header[2]) << 8 | usize::from(header[3]);
    let mut r = Reader(r.take(len)?);
    r.take(2 + 32)?; // legacy_version, random
    r.vec8()?; // legacy_session_id
    r.vec16()?; // cipher_suites
    r.vec8()?; // legacy_compression_methods
    let mut hello = ClientHello::default();
    if r.0.is_empty() {
        return Some(hello); // no extensions (TLS 1.0 style)
    }
    let mut exts = Reader(r.vec16()?);
    while !exts.0.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        match kind {
            EXT_SERVER_NAME => hello.sni = server_name(data),
            EXT_ECH => hello.ech = true,
            _ => {} // GREASE and everything else
        }
    }
    Some(hello)
}

/// The first host_name entry of a server_name extension, if it is a name.
fn server_name(data: &[u8]) -> Option<String> {
    let mut list = Reader(Reader(data).vec16()?);
    while !list.0.is_empty() {
        let kind = list.take(1)?[0];
        let name = list.vec16()?;
        if kind == 0 {
            return host_name(name);
        }
    }
    None
}

/// Lowercase ASCII host name (letters, digits, `-`, `_`, `.`, at most 253
/// bytes, no empty label), trailing dot removed.
pub fn host_name(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(b".").unwrap_or(raw);
    let ok = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.');
    if raw.is_empty() || raw.len() > 253 || !raw.iter().all(ok) || raw.split(|&b| b == b'.').any(<[u8]>::is_empty) {
        return None;
    }
    let mut name = String::from_utf8(raw.to_vec()).ok()?;
    name.make_ascii_lowercase();
    Some(name)
}

/// A cursor whose every read is checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.take(1)?[0]);
        self.take(n)
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
}
