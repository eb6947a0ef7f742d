//! HTTP/1.x requests: method, path and Host header from the start of a
//! client's byte stream, and the vendor's known update paths (reference
//! 5.4), which catch updaters that fetch from bare IP addresses. Total over
//! any input; looks at no more than [`MAX_HEAD`] bytes.

/// Request line and headers are searched in at most this many bytes.
pub const MAX_HEAD: usize = 8 * 1024;

const METHODS: &[&[u8]] = &[b"GET ", b"POST ", b"HEAD ", b"PUT ", b"OPTIONS ", b"DELETE ", b"PATCH ", b"CONNECT "];

/// The vendor's plain-HTTP update paths (reference 5.4, S9, S11): prefix,
/// a text the rest must contain, and the pattern as audit records name it.
const UPDATE_PATHS: &[(&str, &str, &str)] = &[
    ("/updaters/updater.xml", "", "/updaters/updater.xml*"),
    ("/index/u", ".xml", "/index/u*.xml*"),
    ("/updates/kdb/", "", "/updates/kdb/*"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Request line and Host header found (or the header block ended).
    Complete(HttpRequest),
    /// Starts like a request; the headers have not ended yet.
    Partial,
    /// Not an HTTP/1.x request.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// Request target as sent (origin form or absolute form), at most 512 bytes.
    pub path: String,
    /// Host header, lowercased, port removed; `None` when absent or unusable.
    pub host: Option<String>,
}

/// Cheap test: does `payload` start with a known method?
pub fn looks_like_request(payload: &[u8]) -> bool {
    METHODS.iter().any(|m| payload.starts_with(m))
}

/// Parses the request head at the start of `stream`.
pub fn parse_request(stream: &[u8]) -> Request {
    let head = &stream[..stream.len().min(MAX_HEAD)];
    let mut lines = head.split(|&b| b == b'\n');
    let Some(first) = lines.next() else { return Request::Invalid };
    let first = trim_cr(first);
    if !looks_like_request(first) {
        return Request::Invalid;
    }
    let mut parts = first.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return partial_or_invalid(head);
    };
    if !version.starts_with(b"HTTP/1.") || target.is_empty() {
        return partial_or_invalid(head);
    }
    let mut host = None;
    let mut ended = false;
    let mut lines = lines.peekable();
    // Only lines ended by `\n`: the last piece is unfinished (or empty).
    while let Some(line) = lines.next() {
        if lines.peek().is_none() {
            break;
        }
        let line = trim_cr(line);
        if line.is_empty() {
            ended = true;
            break;
        }
        if let Some(value) = header_value(line, b"host") {
            host = host_value(value);
            ended = true; // enough to decide
            break;
        }
    }
    if !ended {
        return if stream.len() >= MAX_HEAD { Request::Invalid } else { Request::Partial };
    }
    let path = String::from_utf8_lossy(&target[..target.len().min(512)]).into_owned();
    Request::Complete(HttpRequest { method: String::from_utf8_lossy(method).into_owned(), path, host })
}

/// The request line has not arrived whole yet, or is not HTTP.
fn partial_or_invalid(head: &[u8]) -> Request {
    if head.contains(&b'\n') || head.len() >= MAX_HEAD { Request::Invalid } else { Request::Partial }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (key, value) = line.split_at(colon);
    key.eq_ignore_ascii_case(name).then(|| value[1..].trim_ascii())
}

/// `example.com`, `example.com:8080`, `198.18.0.1:80`, `[fd00::1]:80`.
fn host_value(value: &[u8]) -> Option<String> {
    let bare = if let Some(rest) = value.strip_prefix(b"[") {
        rest.split(|&b| b == b']').next()?
    } else {
        value.split(|&b| b == b':').next()?
    };
    if bare.contains(&b':') {
        let text = std::str::from_utf8(bare).ok()?;
        return text.parse::<std::net::Ipv6Addr>().ok().map(|a| a.to_string());
    }
    super::tls::host_name(bare)
}

/// The vendor update-path pattern `path` matches, if any.
pub fn update_path(path: &str) -> Option<&'static str> {
    let path = path.strip_prefix("http://").map_or(path, |rest| rest.find('/').map_or("/", |i| &rest[i..]));
    let hit =
        |(prefix, inner, _): &&(&str, &str, &str)| path.strip_prefix(prefix).is_some_and(|rest| rest.contains(inner));
    UPDATE_PATHS.iter().find(hit).map(|(_, _, pattern)| *pattern)
}
