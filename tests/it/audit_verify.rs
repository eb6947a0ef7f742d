//! `warden audit verify`: every kind of tampering is reported with its
//! position; a rewritten chain fails the signature check; a torn tail is a
//! crash, not tampering.

use warden::audit::{Checkpoint, Record, RecordType, check_line, encode, sign};

use crate::audit_fixture::*;

/// Writes the gw1 log, applies `edit` to its lines, verifies.
fn tampered(edit: impl FnOnce(&mut Vec<String>)) -> (std::process::Output, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.jsonl");
    let mut lines = chain(&gw1(), "gw1");
    edit(&mut lines);
    write(&path, &lines);
    let out = audit(&["verify", p(&path)]);
    let text = stdout(&out);
    (out, text)
}

#[test]
fn an_intact_log_verifies_and_says_signatures_were_not_checked() {
    let (out, text) = tampered(|_| {});
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK: 1 files, 11 records, 0 problem(s)"), "{text}");
    assert!(text.contains("signatures NOT checked"), "{text}");
}

#[test]
fn an_edited_line_is_reported_at_its_line() {
    let (out, text) = tampered(|l| l[4] = l[4].replace("192.168.1.20", "192.168.1.99"));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("audit.jsonl:5: [bad-hash] hash mismatch"), "{text}");
    assert_eq!(text.matches("FAIL").count(), 2, "one problem line and the verdict: {text}");
}

#[test]
fn a_deleted_line_is_reported_where_the_chain_breaks() {
    let (out, text) = tampered(|l| {
        l.remove(6);
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("audit.jsonl:7: [broken-link]"), "{text}");
    assert!(text.contains("audit.jsonl:7: [seq-gap] seq gap: seq is 8, expected 7"), "{text}");
}

#[test]
fn reordered_lines_are_reported() {
    let (out, text) = tampered(|l| l.swap(2, 3));
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("audit.jsonl:3: [broken-link]"), "{text}");
    assert!(text.contains("audit.jsonl:4: [broken-link]"), "{text}");
}

#[test]
fn an_inserted_line_is_reported_even_with_a_valid_own_hash() {
    let (out, text) = tampered(|l| {
        // A well-formed line that names line 3 as its predecessor.
        let prev = check_line(&l[2]).expect("line 3").hash;
        let fake =
            contact("2024-09-28T12:00:00Z", "192.168.1.50", "x.kaspersky.com", "update", warden::audit::Layer::Dns);
        l.insert(3, encode(&fake, 4, &prev, "gw1").expect("encode"));
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("audit.jsonl:5: [broken-link]"), "{text}");
    assert!(text.contains("audit.jsonl:5: [seq-gap] seq gap: seq is 4, expected 5"), "{text}");
}

#[test]
fn malformed_lines_are_reported_by_number_and_the_rest_is_still_checked() {
    let (out, text) = tampered(|l| {
        l.insert(2, "this is not json\n".into());
        l[9] = l[9].replace("update", "updat3");
    });
    assert_eq!(out.status.code(), Some(1));
    assert!(text.contains("audit.jsonl:3: [bad-hash]"), "{text}");
    assert!(text.contains("audit.jsonl:10: [bad-hash]"), "{text}");
}

/// `records` chained, then a checkpoint over them signed with `key`.
fn signed_log(records: &[Record], key: &ed25519_dalek::SigningKey) -> Vec<String> {
    let mut lines = chain(records, "gw1");
    let head = check_line(lines.last().expect("lines")).expect("check");
    let ts = "2024-10-02T10:00:00.000Z";
    let cp: Checkpoint = sign::sign(key, "gw1", head.seq, &head.hash, ts);
    let record = Record { checkpoint: Some(cp), ..event(ts, RecordType::Checkpoint, "checkpoint") };
    lines.push(encode(&record, head.seq + 1, &head.hash, "gw1").expect("encode"));
    lines
}

#[test]
fn a_rewritten_chain_fails_the_signature_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).expect("mkdir");
    let out = audit(&["keygen", "--out", p(&keys)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = sign::load_signing_key(&keys.join(sign::SECRET_FILE)).expect("key");
    let public = keys.join(sign::PUBLIC_FILE);
    let path = dir.path().join("audit.jsonl");

    write(&path, &signed_log(&gw1(), &key));
    let ok = audit(&["verify", "--key", p(&public), p(&path)]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("1 signature(s) valid"), "{}", stdout(&ok));

    // The attacker removes a contact and recomputes every hash; the old
    // checkpoint no longer matches, so they drop it too.
    let mut records = gw1();
    records.remove(3);
    write(&path, &chain(&records, "gw1"));
    let plain = audit(&["verify", p(&path)]);
    assert!(plain.status.success(), "without a key a rewritten chain passes: {}", stdout(&plain));
    let keyed = audit(&["verify", "--key", p(&public), p(&path)]);
    assert_eq!(keyed.status.code(), Some(1));
    assert!(stdout(&keyed).contains("[unsigned]"), "{}", stdout(&keyed));

    // Re-signed with the attacker's own key: still refused.
    let theirs = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    write(&path, &signed_log(&records, &theirs));
    let keyed = audit(&["verify", "--key", p(&public), p(&path)]);
    assert_eq!(keyed.status.code(), Some(1));
    assert!(stdout(&keyed).contains("audit.jsonl:11: [bad-signature]"), "{}", stdout(&keyed));
}

#[test]
fn a_torn_tail_is_reported_as_a_crash_not_as_tampering() {
    let (out, text) = tampered(|l| {
        let last = l.pop().expect("line");
        l.push(last[..40].to_owned());
    });
    assert!(out.status.success(), "a torn tail is a warning: {text}");
    assert!(text.contains("audit.jsonl:11: [torn-tail] torn last line: 40 bytes"), "{text}");
    assert!(!text.contains("FAIL"), "{text}");
}

#[test]
fn gateways_are_verified_as_separate_chains_and_json_lists_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (dir.path().join("gw1.jsonl"), dir.path().join("gw2.jsonl.gz"));
    write(&a, &chain(&gw1(), "gw1"));
    let gz = chain(&gw2(), "gw2").concat();
    warden::audit::compress::write_compressed(&b, gz.as_bytes(), warden::audit::compress::Compression::Gzip)
        .expect("gz");
    let out = audit(&["verify", "--json", p(&b), p(&a)]);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    let hosts: Vec<_> =
        v["chains"].as_array().expect("chains").iter().map(|c| (c["host"].clone(), c["records"].clone())).collect();
    assert_eq!(hosts, [("gw1".into(), 11.into()), ("gw2".into(), 4.into())]);
}
