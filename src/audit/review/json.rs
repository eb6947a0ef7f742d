//! A fast path for reading the writer's own lines: a strict subset of JSON
//! scanned in place, without allocating. The subset is one object of
//! fields whose values are strings without escapes or control characters,
//! unsigned integers without sign, fraction or exponent, `true`, `false`,
//! or objects of the same (at most [`MAX_DEPTH`] deep), with no whitespace
//! anywhere. That is every line the writer writes.
//!
//! Anything outside the subset is declined ([`Decline`]) and the caller
//! parses the line with `serde_json` instead, so this scanner only has to
//! agree with `serde_json` on what it accepts, never on what it rejects or
//! how it words an error. Callers decline too on what their `serde` types
//! would reject (duplicate or missing fields, a wrong type).
//!
//! A caller that knows the writer's keys and their order reads fields with
//! [`Fields::next_key`]: the next key is compared in place with the ones
//! the writer would write next ([`Key`]: 16 bytes at once), and only a key
//! elsewhere is searched for and matched as text; the value is then read
//! as the type the caller wants ([`Fields::str`], [`Fields::num`], a nested
//! object in place by [`Fields::object`]) or skipped. Either way the field
//! read is the same.

/// Objects nest at most this deep; deeper ones are declined.
const MAX_DEPTH: u32 = 4;

/// The line is outside the subset: parse it with `serde_json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decline;

/// One field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Bool(bool),
    /// A nested object, braces included; read it with [`Fields::of`].
    Obj(&'a str),
}

impl<'a> Value<'a> {
    pub(crate) fn str(self) -> Result<&'a str, Decline> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(Decline),
        }
    }

    pub(crate) fn num(self) -> Result<u64, Decline> {
        match self {
            Value::Num(n) => Ok(n),
            _ => Err(Decline),
        }
    }

    #[cfg(test)]
    pub(crate) fn obj(self) -> Result<Fields<'a>, Decline> {
        match self {
            Value::Obj(s) => Fields::of(s),
            _ => Err(Decline),
        }
    }
}

/// What [`Fields::next_key`] read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Next {
    /// The closing brace: no more fields.
    End,
    /// The key `keys[i]`; its value is next.
    Known(usize),
    /// Another key; its value is next.
    Other,
}

/// The fields of one object, in order.
#[derive(Clone)]
pub(crate) struct Fields<'a> {
    text: &'a str,
    pos: usize,
    first: bool,
    done: bool,
    depth: u32,
}

/// The fields of `line` if it is one object in the subset (no trailing
/// newline). Checks the whole line first: UTF-8, no control characters
/// and no backslash, so strings can be cut at the next `"`.
pub(crate) fn object(line: &[u8]) -> Result<Fields<'_>, Decline> {
    let odd = line.iter().fold(false, |acc, &b| acc | (b < 0x20) | (b == b'\\'));
    if odd {
        return Err(Decline);
    }
    let text = std::str::from_utf8(line).map_err(|_| Decline)?;
    Fields::of(text)
}

impl<'a> Fields<'a> {
    /// The fields of `text`, which must be exactly one object. `text` must
    /// come from [`object`] (or a [`Value::Obj`] of it): checked already.
    pub(crate) fn of(text: &'a str) -> Result<Fields<'a>, Decline> {
        Fields::nested(text, 0)
    }

    fn nested(text: &'a str, depth: u32) -> Result<Fields<'a>, Decline> {
        if depth > MAX_DEPTH || text.as_bytes().first() != Some(&b'{') {
            return Err(Decline);
        }
        Ok(Fields { text, pos: 1, first: true, done: false, depth })
    }

    #[inline(always)]
    fn byte(&self) -> Result<u8, Decline> {
        self.text.as_bytes().get(self.pos).copied().ok_or(Decline)
    }

    /// The next field, or `None` after the closing brace. At the top
    /// level the brace must end the text.
    pub(crate) fn next_field(&mut self) -> Result<Option<(&'a str, Value<'a>)>, Decline> {
        if !self.separator()? {
            return Ok(None);
        }
        let key = self.key()?;
        let value = self.value()?;
        Ok(Some((key, value)))
    }

    /// The next key, looked up in `keys` (each written `"key":`, in the
    /// order the writer writes them): [`Next::Known`] for `keys[i]`,
    /// [`Next::Other`] for any other key; either way the value is next, to
    /// be read by [`Fields::str`], [`Fields::num`], [`Fields::object`] or
    /// [`Fields::skip`]. The keys from `*from` on are tried first against
    /// the text itself, so a key where the writer puts it is read without
    /// searching for its closing quote; `*from` then moves past the key
    /// found. What it reads is what [`Fields::next_field`] reads; the
    /// result is a small value, returned in registers.
    #[inline(always)]
    pub(crate) fn next_key(&mut self, keys: &[Key], from: &mut usize) -> Result<Next, Decline> {
        if !self.separator()? {
            return Ok(Next::End);
        }
        let rest = self.text.as_bytes().get(self.pos..).ok_or(Decline)?;
        let head = rest.first_chunk::<16>().map(|b| u128::from_le_bytes(*b));
        // With no backslash in the text, `"key":` is the key `key` whole.
        let ahead = keys.iter().zip(0..).skip(*from).find(|(k, _)| k.starts(rest, head));
        let known = match ahead {
            Some((k, i)) => {
                self.pos += k.text.len();
                Some(i)
            }
            None => {
                let key = self.key()?;
                keys.iter().position(|k| k.name() == Some(key))
            }
        };
        Ok(match known {
            Some(i) => {
                *from = i + 1;
                Next::Known(i)
            }
            None => Next::Other,
        })
    }

    /// The next value, which must be a string.
    #[inline(always)]
    pub(crate) fn str(&mut self) -> Result<&'a str, Decline> {
        self.string()
    }

    /// The next value, which must be a number.
    #[inline(always)]
    pub(crate) fn num(&mut self) -> Result<u64, Decline> {
        match self.byte()? {
            b'0'..=b'9' => self.number(),
            _ => Err(Decline),
        }
    }

    /// Reads past the next value, checking it.
    #[inline(always)]
    pub(crate) fn skip(&mut self) -> Result<(), Decline> {
        match self.byte()? {
            b'"' => self.string().map(drop),
            _ => self.value().map(drop),
        }
    }

    /// The next value, which must be an object, read in place by `read`
    /// (from its first field); whatever fields `read` leaves are checked,
    /// and reading goes on after the object's closing brace. The object is
    /// scanned once, not once to find its end and again to read it.
    #[inline]
    pub(crate) fn object<T>(&mut self, read: impl FnOnce(&mut Fields<'a>) -> Result<T, Decline>) -> Result<T, Decline> {
        let rest = self.text.get(self.pos..).ok_or(Decline)?;
        let mut inner = Fields::nested(rest, self.depth + 1)?;
        let got = read(&mut inner)?;
        inner.finish()?;
        self.pos += inner.pos;
        Ok(got)
    }

    /// Reads the separator before the next field: `false` after the
    /// closing brace (at the top level it must end the text).
    #[inline(always)]
    fn separator(&mut self) -> Result<bool, Decline> {
        if self.done {
            return Ok(false);
        }
        match (self.byte()?, self.first) {
            (b'}', _) => {
                self.pos += 1;
                self.done = true;
                return if self.depth > 0 || self.pos == self.text.len() { Ok(false) } else { Err(Decline) };
            }
            (b',', false) => self.pos += 1,
            (_, true) => {}
            _ => return Err(Decline),
        }
        self.first = false;
        Ok(true)
    }

    /// A key and its colon.
    fn key(&mut self) -> Result<&'a str, Decline> {
        let key = self.string()?;
        if self.byte()? != b':' {
            return Err(Decline);
        }
        self.pos += 1;
        Ok(key)
    }

    /// Reads to the closing brace, checking every field on the way.
    fn finish(&mut self) -> Result<(), Decline> {
        while self.next_field()?.is_some() {}
        Ok(())
    }

    #[inline(always)]
    fn string(&mut self) -> Result<&'a str, Decline> {
        if self.byte()? != b'"' {
            return Err(Decline);
        }
        let start = self.pos + 1;
        // Cut at a quote, both ends are char boundaries; cut as two
        // one-sided slices, each a check inlined.
        let rest = self.text.get(start..).ok_or(Decline)?;
        let len = find_quote(rest.as_bytes()).ok_or(Decline)?;
        self.pos = start + len + 1;
        rest.get(..len).ok_or(Decline)
    }

    fn value(&mut self) -> Result<Value<'a>, Decline> {
        match self.byte()? {
            b'"' => self.string().map(Value::Str),
            b'0'..=b'9' => self.number().map(Value::Num),
            b't' => self.literal("true").map(|()| Value::Bool(true)),
            b'f' => self.literal("false").map(|()| Value::Bool(false)),
            b'{' => {
                let start = self.pos;
                let rest = self.text.get(start..).ok_or(Decline)?;
                let mut inner = Fields::nested(rest, self.depth + 1)?;
                inner.finish()?;
                self.pos = start + inner.pos;
                self.text.get(start..self.pos).map(Value::Obj).ok_or(Decline)
            }
            _ => Err(Decline),
        }
    }

    /// Digits only; a leading zero only as `0` itself; within `u64`.
    #[inline(always)]
    fn number(&mut self) -> Result<u64, Decline> {
        let digits = self.text.as_bytes().get(self.pos..).ok_or(Decline)?;
        let len = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if len > 1 && digits[0] == b'0' {
            return Err(Decline);
        }
        let mut n: u64 = 0;
        for &d in &digits[..len] {
            n = n.checked_mul(10).and_then(|n| n.checked_add(u64::from(d - b'0'))).ok_or(Decline)?;
        }
        self.pos += len;
        Ok(n)
    }

    fn literal(&mut self, word: &str) -> Result<(), Decline> {
        if !self.text.as_bytes().get(self.pos..).is_some_and(|rest| rest.starts_with(word.as_bytes())) {
            return Err(Decline);
        }
        self.pos += word.len();
        Ok(())
    }
}

/// A key as the writer writes it, `"key":`, ready to be compared with the
/// first 16 bytes of the text at once (no call to `memcmp` per guess).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    text: &'static str,
    /// Its bytes (up to 16), little-endian, and which bytes they are.
    word: u128,
    mask: u128,
}

impl Key {
    /// `text` must be `"key":`.
    pub(crate) const fn new(text: &'static str) -> Key {
        let bytes = text.as_bytes();
        let (mut word, mut mask, mut i) = (0u128, 0u128, 0);
        while i < bytes.len() && i < 16 {
            word |= (bytes[i] as u128) << (8 * i);
            mask |= 0xff << (8 * i);
            i += 1;
        }
        Key { text, word, mask }
    }

    /// Whether `rest` (whose first 16 bytes are `head`, when it has 16)
    /// starts with the key.
    fn starts(&self, rest: &[u8], head: Option<u128>) -> bool {
        match head {
            Some(head) if self.text.len() <= 16 => head & self.mask == self.word,
            _ => rest.starts_with(self.text.as_bytes()),
        }
    }

    /// The key's name (between its quotes).
    fn name(&self) -> Option<&'static str> {
        self.text.strip_prefix('"')?.strip_suffix("\":")
    }
}

/// Position of the first `"` in `bytes`. On x86-64 by `memchr`'s SSE2
/// searcher, inlined (no call, no dispatch): the rest of a line is nearly
/// always 16 bytes or more, and one compare of the first 16 finds the end
/// of most strings; elsewhere eight bytes at a time.
fn find_quote(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if let Some(quote) = memchr::arch::x86_64::sse2::memchr::One::new(b'"') {
        return quote.find(bytes);
    }
    find_quote_by_words(bytes)
}

/// [`find_quote`] eight bytes at a time.
fn find_quote_by_words(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTES: u64 = u64::from_ne_bytes([b'"'; 8]);
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let mut eight = [0; 8];
        eight.copy_from_slice(word);
        // A zero byte where `word` has a quote; the lowest flag is exact.
        let x = u64::from_le_bytes(eight) ^ QUOTES;
        let flags = x.wrapping_sub(ONES) & !x & HIGH;
        if flags != 0 {
            return Some(at + (flags.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words.remainder().iter().position(|&b| b == b'"').map(|i| at + i)
}

/// Which known fields were seen, to decline duplicates as `serde` rejects
/// them.
#[derive(Default)]
pub(crate) struct Seen(u64);

impl Seen {
    /// Marks field `bit`; a second time declines.
    pub(crate) fn mark(&mut self, bit: u32) -> Result<(), Decline> {
        let mask = 1u64 << bit;
        if self.0 & mask != 0 {
            return Err(Decline);
        }
        self.0 |= mask;
        Ok(())
    }

    pub(crate) fn has(&self, bit: u32) -> bool {
        self.0 & (1u64 << bit) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(line: &str) -> Result<Vec<(&str, Value<'_>)>, Decline> {
        let mut f = object(line.as_bytes())?;
        let mut out = Vec::new();
        while let Some(kv) = f.next_field()? {
            out.push(kv);
        }
        Ok(out)
    }

    #[test]
    fn reads_the_subset() {
        let got = all(r#"{"a":"x","b":0,"c":12,"d":true,"e":false,"f":{"g":{"h":"i"}},"":""}"#).unwrap();
        assert_eq!(
            got,
            vec![
                ("a", Value::Str("x")),
                ("b", Value::Num(0)),
                ("c", Value::Num(12)),
                ("d", Value::Bool(true)),
                ("e", Value::Bool(false)),
                ("f", Value::Obj(r#"{"g":{"h":"i"}}"#)),
                ("", Value::Str("")),
            ]
        );
        assert_eq!(all("{}").unwrap(), vec![]);
        let mut inner = Value::Obj(r#"{"g":{"h":"i"}}"#).obj().unwrap();
        assert_eq!(inner.next_field().unwrap(), Some(("g", Value::Obj(r#"{"h":"i"}"#))));
        assert_eq!(inner.next_field().unwrap(), None);
    }

    #[test]
    fn declines_everything_else() {
        for line in [
            "",
            " {}",
            "{} ",
            "{}x",
            "{}}",
            "[]",
            r#"{"a":1,}"#,
            r#"{,"a":1}"#,
            r#"{"a":1 }"#,
            r#"{"a" :1}"#,
            r#"{"a":null}"#,
            r#"{"a":-1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":[1]}"#,
            r#"{"a":"x\"y"}"#,
            r#"{"a\u0062":1}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a":tru}"#,
            r#"{"a":"x"#,
            r#"{"a""#,
            r#"{"a":{"b":1}"#,
            r#"{"a":{"b":{"c":{"d":{"e":{"f":1}}}}}}"#,
        ] {
            assert_eq!(all(line), Err(Decline), "{line}");
        }
        assert_eq!(all(r#"{"a":18446744073709551615}"#).unwrap(), vec![("a", Value::Num(u64::MAX))]);
        assert!(object(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn quotes_are_found_in_any_position() {
        for len in 0..40 {
            for at in 0..len {
                let mut bytes = vec![b'a'; len];
                bytes[at] = b'"';
                if at + 1 < len {
                    bytes[at + 1] = b'"';
                }
                bytes.iter_mut().skip(at + 2).for_each(|b| *b = 0x80 + (*b % 3));
                assert_eq!(find_quote(&bytes), Some(at), "{len} {at}");
                assert_eq!(find_quote_by_words(&bytes), Some(at), "{len} {at}");
            }
            assert_eq!(find_quote(&vec![0xa2; len]), None);
            assert_eq!(find_quote_by_words(&vec![0xa2; len]), None);
        }
    }

    /// Known keys read as any key is, wherever they are, in or out of
    /// the order given, and other keys too.
    #[test]
    fn known_keys_read_as_next_field_does() {
        const KEYS: &[Key] = &[
            Key::new("\"a\":"),
            Key::new("\"b\":"),
            Key::new("\"bb\":"),
            Key::new("\"c\":"),
            Key::new("\"a_key_longer_than_16\":"),
        ];
        for line in [
            r#"{"a":1,"b":"x","bb":{"a":2},"c":true}"#,
            r#"{"c":1,"b":"x","a":2,"a":3,"bb":4,"d":5}"#,
            r#"{"b":1,"bbb":2,"x":"\"c\":","":0}"#,
            r#"{"a_key_longer_than_16":1,"b":2,"a_key_longer_than_1":3,"a_key_longer_than_16x":4,"c":5}"#,
            r#"{"a_key_longer_than_16":{"c":1}}"#,
            r#"{"a" :1}"#,
            r#"{"a":1,}"#,
            r#"{}"#,
            r#"{"a":1}}"#,
            r#"{"b":1"#,
        ] {
            let plain = all(line);
            let known = (|| {
                let mut f = object(line.as_bytes())?;
                let (mut out, mut from) = (Vec::new(), 0);
                loop {
                    let i = match f.next_key(KEYS, &mut from)? {
                        Next::End => break,
                        Next::Known(i) => Some(i),
                        Next::Other => None,
                    };
                    typed_reads_agree(&f);
                    out.push((i, f.value()?));
                }
                Ok(out)
            })();
            let want = plain.map(|fields| {
                let name = |k: &str| KEYS.iter().position(|q| q.name() == Some(k));
                fields.into_iter().map(|(k, v)| (name(k), v)).collect::<Vec<_>>()
            });
            assert_eq!(known, want, "{line}");
        }
    }

    /// Each typed read of the value at `f` reads what [`Fields::value`]
    /// does, or declines if the value is of another type, and leaves the
    /// fields at the same place.
    fn typed_reads_agree(f: &Fields<'_>) {
        let mut plain = f.clone();
        let want = plain.value();
        let after = |f: &Fields<'_>| f.pos;
        let mut g = f.clone();
        let got = g.str();
        assert_eq!(got, want.and_then(Value::str));
        if got.is_ok() {
            assert_eq!(after(&g), after(&plain));
        }
        let mut g = f.clone();
        let got = g.num();
        assert_eq!(got, want.and_then(Value::num));
        if got.is_ok() {
            assert_eq!(after(&g), after(&plain));
        }
        let mut g = f.clone();
        let got = g.object(|inner| {
            let mut fields = Vec::new();
            while let Some(kv) = inner.next_field()? {
                fields.push(kv);
            }
            Ok(fields)
        });
        let whole = want.and_then(|v| {
            let mut inner = v.obj()?;
            let mut fields = Vec::new();
            while let Some(kv) = inner.next_field()? {
                fields.push(kv);
            }
            Ok(fields)
        });
        assert_eq!(got, whole);
        if got.is_ok() {
            assert_eq!(after(&g), after(&plain));
        }
        let mut g = f.clone();
        assert_eq!(g.skip(), want.map(drop));
        if want.is_ok() {
            assert_eq!(after(&g), after(&plain));
        }
    }

    /// A nested object read only in part by [`Fields::object`] is still
    /// checked to its end, and reading goes on after it.
    #[test]
    fn objects_read_in_part_are_checked_whole() {
        let first = |line: &str| {
            let mut f = object(line.as_bytes())?;
            let mut from = 0;
            assert_eq!(f.next_key(&[Key::new("\"p\":")], &mut from)?, Next::Known(0));
            let id = f.object(|inner| Ok(inner.next_field()?.map(|(k, _)| k.to_owned())))?;
            let rest = f.next_field()?.map(|(k, _)| k.to_owned());
            Ok::<_, Decline>((id, rest, f.next_field()?.is_none()))
        };
        assert_eq!(first(r#"{"p":{"a":1,"b":{"c":"d"}},"q":2}"#), Ok((Some("a".into()), Some("q".into()), true)));
        assert_eq!(first(r#"{"p":{},"q":2}"#), Ok((None, Some("q".into()), true)));
        for bad in [r#"{"p":{"a":1,"b":},"q":2}"#, r#"{"p":{"a":1,"b":1 },"q":2}"#, r#"{"p":{"a":1"#, r#"{"p":1}"#] {
            assert_eq!(first(bad), Err(Decline), "{bad}");
        }
    }

    #[test]
    fn duplicates_are_seen() {
        let mut seen = Seen::default();
        assert!(seen.mark(3).is_ok() && seen.has(3) && !seen.has(2));
        assert_eq!(seen.mark(3), Err(Decline));
    }
}
