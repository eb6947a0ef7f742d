//! The review's view of one line: the fields reviews count, borrowed from
//! the line's bytes (no allocation for ordinary lines), plus instants as
//! comparable text, and the filters of `export`. [`Rec::parse`] reads the
//! writer's own lines with the in-place scanner of [`super::json`] and any
//! other line with `serde_json`, to the same result.

use std::borrow::Cow;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::Deserialize;

use super::json::{self, Decline, Key, Next, Seen};
use crate::audit::chain::format_ts;

/// The fields of a line that reviews use. Unknown fields are skipped.
#[derive(Debug, Deserialize)]
pub struct Rec<'a> {
    #[serde(borrow)]
    pub ts: Cow<'a, str>,
    #[serde(default)]
    pub seq: u64,
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub host: Cow<'a, str>,
    #[serde(default)]
    pub client: Option<IpAddr>,
    #[serde(default, borrow)]
    pub layer: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub qtype: Option<Cow<'a, str>>,
    #[serde(default)]
    pub dst: Option<IpAddr>,
    #[serde(default)]
    pub dport: Option<u16>,
    #[serde(default, borrow)]
    pub action: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub category: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub rule: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub phase: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub policy: Option<PolicyView<'a>>,
    /// Contacts this record stands for (aggregated repeats); absent: one.
    #[serde(default)]
    pub count: Option<u64>,
    /// Last of the repeats a `count` record stands for (its `ts` is the first).
    #[serde(default, borrow)]
    pub last_ts: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct PolicyView<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

impl<'a> PolicyView<'a> {
    /// Reads the object `fields` is at the start of, in place.
    fn fast(fields: &mut json::Fields<'a>) -> Result<PolicyView<'a>, Decline> {
        // The writer's keys, in its order: `id`, then `hash` (not read).
        const KEYS: &[Key] = &[Key::new(r#""id":"#), Key::new(r#""hash":"#)];
        let (mut id, mut from) = (None, 0);
        loop {
            match fields.next_key(KEYS, &mut from)? {
                Next::End => break,
                Next::Known(0) if id.is_none() => id = Some(Cow::Borrowed(fields.str()?)),
                Next::Known(0) => return Err(Decline),
                _ => fields.skip()?,
            }
        }
        id.map(|id| PolicyView { id }).ok_or(Decline)
    }
}

/// Most attempts one record counts for (a writer window holds far fewer).
pub const MAX_ATTEMPTS: u64 = u32::MAX as u64;

impl<'a> Rec<'a> {
    /// Reads one line (without its `\n`): what `serde_json::from_slice`
    /// gives, faster for lines in the writer's own shape.
    pub fn parse(line: &'a [u8]) -> Result<Rec<'a>, serde_json::Error> {
        match Rec::fast(line) {
            Ok(rec) => Ok(rec),
            Err(Decline) => serde_json::from_slice(line),
        }
    }

    /// The in-place reading; declines whatever `serde` would not read the
    /// same way (duplicate, missing or mistyped fields, `null`s, ...).
    pub(super) fn fast(line: &'a [u8]) -> Result<Rec<'a>, Decline> {
        const TS: u32 = 0;
        const KIND: u32 = 2;
        const POLICY: u32 = 14;
        const SKIP: u32 = u32::MAX;
        // The keys in the order the writer writes them (see
        // `audit::chain`), with the field of each (`SKIP`: not read here).
        const KEYS: &[Key] = &[
            Key::new(r#""ts":"#),
            Key::new(r#""seq":"#),
            Key::new(r#""type":"#),
            Key::new(r#""host":"#),
            Key::new(r#""client":"#),
            Key::new(r#""layer":"#),
            Key::new(r#""name":"#),
            Key::new(r#""qtype":"#),
            Key::new(r#""dst":"#),
            Key::new(r#""dport":"#),
            Key::new(r#""action":"#),
            Key::new(r#""category":"#),
            Key::new(r#""rule":"#),
            Key::new(r#""phase":"#),
            Key::new(r#""policy":"#),
            Key::new(r#""count":"#),
            Key::new(r#""first_ts":"#),
            Key::new(r#""last_ts":"#),
            Key::new(r#""prev_hash":"#),
            Key::new(r#""hash":"#),
        ];
        const FIELDS: &[u32] = &[TS, 1, KIND, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, POLICY, 15, SKIP, 16, SKIP, SKIP];
        let mut fields = json::object(line)?;
        let mut seen = Seen::default();
        let mut r = Rec {
            ts: Cow::Borrowed(""),
            seq: 0,
            kind: Cow::Borrowed(""),
            host: Cow::Borrowed(""),
            client: None,
            layer: None,
            name: None,
            qtype: None,
            dst: None,
            dport: None,
            action: None,
            category: None,
            rule: None,
            phase: None,
            policy: None,
            count: None,
            last_ts: None,
        };
        let mut from = 0;
        loop {
            let field = match fields.next_key(KEYS, &mut from)? {
                Next::End => break,
                Next::Known(i) => FIELDS.get(i).copied().unwrap_or(SKIP),
                Next::Other => SKIP,
            };
            if field == SKIP {
                fields.skip()?;
                continue;
            }
            seen.mark(field)?;
            let ip = |s: &str| s.parse::<IpAddr>().map(Some).map_err(|_| Decline);
            match field {
                1 => r.seq = fields.num()?,
                9 => r.dport = Some(u16::try_from(fields.num()?).map_err(|_| Decline)?),
                15 => r.count = Some(fields.num()?),
                POLICY => r.policy = Some(fields.object(PolicyView::fast)?),
                _ => {
                    // Every other field is a string, read by one copy of
                    // the (inlined) string scan.
                    let s = fields.str()?;
                    match field {
                        TS => r.ts = Cow::Borrowed(s),
                        KIND => r.kind = Cow::Borrowed(s),
                        3 => r.host = Cow::Borrowed(s),
                        4 => r.client = ip(s)?,
                        5 => r.layer = Some(Cow::Borrowed(s)),
                        6 => r.name = Some(Cow::Borrowed(s)),
                        7 => r.qtype = Some(Cow::Borrowed(s)),
                        8 => r.dst = ip(s)?,
                        10 => r.action = Some(Cow::Borrowed(s)),
                        11 => r.category = Some(Cow::Borrowed(s)),
                        12 => r.rule = Some(Cow::Borrowed(s)),
                        13 => r.phase = Some(Cow::Borrowed(s)),
                        16 => r.last_ts = Some(Cow::Borrowed(s)),
                        _ => {}
                    }
                }
            }
        }
        if !(seen.has(TS) && seen.has(KIND)) {
            return Err(Decline);
        }
        Ok(r)
    }

    pub fn is_contact(&self) -> bool {
        self.kind == "contact"
    }

    /// The attempts a contact record stands for: its `count` (aggregated
    /// repeats, see docs/audit-log.md), or one. At most [`MAX_ATTEMPTS`],
    /// so that no sum over a log (of fewer than 2^32 records) overflows,
    /// whatever a damaged or forged line claims.
    pub fn attempts(&self) -> u64 {
        self.count.unwrap_or(1).min(MAX_ATTEMPTS)
    }

    /// The latest instant the record stands for, canonical: its `last_ts`
    /// when it is a later valid instant (aggregated repeats), else `ts`
    /// (the record's canonical `ts`).
    pub fn last_seen<'s>(&'s self, ts: &'s str) -> Cow<'s, str> {
        match self.last_ts.as_deref().and_then(canonical) {
            Some(last) if last.as_ref() > ts => last,
            _ => Cow::Borrowed(ts),
        }
    }

    /// `ts` in the writer's canonical form (`2024-09-29T04:00:01.123Z`), so
    /// instants compare as text. Other RFC 3339 forms are converted.
    pub fn canonical_ts(&self) -> Option<Cow<'_, str>> {
        canonical(&self.ts)
    }
}

/// Canonical text of an RFC 3339 instant; `None` if it is not one.
pub fn canonical(ts: &str) -> Option<Cow<'_, str>> {
    let b = ts.as_bytes();
    let quick = b.len() == 24
        && b[4] == b'-'
        && b[10] == b'T'
        && b[19] == b'.'
        && b[23] == b'Z'
        && b.iter().enumerate().all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit());
    if quick {
        return Some(Cow::Borrowed(ts));
    }
    let t = DateTime::parse_from_rfc3339(ts).ok()?.with_timezone(&Utc);
    Some(Cow::Owned(format_ts(&t)))
}

/// Unix milliseconds of a canonical instant (any RFC 3339 instant works).
pub fn millis(canonical: &str) -> Option<i64> {
    quick_millis(canonical.as_bytes())
        .or_else(|| DateTime::parse_from_rfc3339(canonical).ok().map(|t| t.timestamp_millis()))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` with a real date and no leap second, by
/// arithmetic; anything else is left to chrono.
fn quick_millis(b: &[u8]) -> Option<i64> {
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if b[19] != b'.' || b[23] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        b.get(range)?.iter().try_fold(0i64, |n, &d| d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let days_in_month = *month_days.get(usize::try_from(month).ok()?.checked_sub(1)?)?;
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days from 1970-01-01 to the date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + ms)
}

/// Canonical text of Unix milliseconds.
pub fn from_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map(|t| format_ts(&t)).unwrap_or_default()
}

/// Which contacts an export (or report) keeps. Instants are canonical.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub since: Option<String>,
    pub until: Option<String>,
    pub clients: Vec<IpNet>,
    pub categories: Vec<String>,
    pub layers: Vec<String>,
    /// Keep only contacts at or after this instant (the prohibition).
    pub after: Option<String>,
}

impl Filter {
    /// Whether a contact passes (non-contacts never do).
    pub fn keep(&self, r: &Rec<'_>, ts: &str) -> bool {
        r.is_contact()
            && self.since.as_deref().is_none_or(|s| ts >= s)
            && self.until.as_deref().is_none_or(|u| ts < u)
            && self.after.as_deref().is_none_or(|a| ts >= a)
            && (self.clients.is_empty() || r.client.is_some_and(|c| self.clients.iter().any(|n| n.contains(&c))))
            && (self.categories.is_empty()
                || r.category.as_deref().is_some_and(|c| self.categories.iter().any(|x| x == c)))
            && (self.layers.is_empty() || r.layer.as_deref().is_some_and(|l| self.layers.iter().any(|x| x == l)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_in_other_rfc3339_forms_become_canonical() {
        assert_eq!(canonical("2024-09-29T04:00:01.123Z").unwrap(), "2024-09-29T04:00:01.123Z");
        assert_eq!(canonical("2024-09-29T00:00:01-04:00").unwrap(), "2024-09-29T04:00:01.000Z");
        assert!(canonical("yesterday").is_none());
        assert_eq!(from_millis(millis("2024-09-29T04:00:01.123Z").unwrap()), "2024-09-29T04:00:01.123Z");
    }

    #[test]
    fn quick_millis_agrees_with_chrono() {
        let chrono = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.timestamp_millis());
        let mut ms = -62_135_596_800_000i64; // 0001-01-01
        while ms < 253_402_300_799_000 {
            let t = from_millis(ms);
            assert_eq!(quick_millis(t.as_bytes()), chrono(&t), "{t}");
            ms += 86_399_999 * 7 + 12_345;
        }
        for t in [
            "2024-02-29T23:59:59.999Z",
            "2023-02-29T00:00:00.000Z",
            "2000-02-29T00:00:00.000Z",
            "1900-02-29T00:00:00.000Z",
            "2024-04-31T00:00:00.000Z",
            "2024-13-01T00:00:00.000Z",
            "2024-00-01T00:00:00.000Z",
            "2024-01-00T00:00:00.000Z",
            "2024-01-01T24:00:00.000Z",
            "2024-01-01T23:60:00.000Z",
            "2024-06-30T23:59:60.000Z",
            "2024-01-01T00:00:00.000+",
            "2024-01-01 00:00:00.000Z",
            "2024-01-01T00:00:00,000Z",
            "+024-01-01T00:00:00.000Z",
            "2024-01-01T00:00:0a.000Z",
            "1969-12-31T23:59:59.999Z",
            "0000-03-01T00:00:00.000Z",
        ] {
            if let Some(quick) = quick_millis(t.as_bytes()) {
                assert_eq!(Some(quick), chrono(t), "{t}");
            }
            assert_eq!(millis(t), chrono(t), "{t}");
        }
    }
}
