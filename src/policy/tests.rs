use super::*;

const POLICY: &str = r#"
[policy]
id = "test-policy"
title = "Test"
legal_basis = "none"
reference_url = "https://example.org/"

[categories]
update = "updates"
telemetry = "telemetry"
vendor = "anything else of the vendor"
ti = "threat intelligence (exempt)"
net = "vendor networks"

[[phases]]
name = "before"
default = "monitor"
actions = { ti = "allow" }

[[phases]]
name = "after"
start = "2024-09-29T04:00:00Z"
default = "block"
actions = { ti = "allow" }
prohibition = true

[[rules]]
category = "vendor"
domains = ["kaspersky.com", "kaspersky-labs.com"]

[[rules]]
category = "update"
domains = ["upd.kaspersky.com", "geo.kaspersky.com"]
wildcards = ["dnl-*.geo.kaspersky.com"]

[[rules]]
category = "telemetry"
wildcards = ["ksn-*-geo.kaspersky-labs.com"]
hosts = ["ds.kaspersky.com"]

[[rules]]
category = "ti"
hosts = ["tip.kaspersky.com", "opentip.kaspersky.com"]

[[rules]]
category = "net"
networks = ["77.74.176.0/21", "2a03:2480:8000::/48"]
"#;

const BEFORE: i64 = 1_727_582_399_000; // 2024-09-29T03:59:59Z
const AFTER: i64 = 1_727_582_400_000; // 2024-09-29T04:00:00Z

fn policy() -> Policy {
    compile(POLICY, "test.toml").unwrap()
}

fn decide(p: &Policy, name: &str, at: i64) -> (Action, Option<String>, String) {
    let v = p.decide(Subject::Name(name), at);
    let rule = p.rule_label_for(&v, name);
    let cat = v.matched.map(|(_, c)| p.category(c).name.clone()).unwrap_or_default();
    (v.action, rule, cat)
}

#[test]
fn most_specific_rule_names_the_category() {
    let p = policy();
    assert_eq!(
        decide(&p, "s10.upd.kaspersky.com", AFTER),
        (Action::Block, Some("domain:upd.kaspersky.com".into()), "update".into())
    );
    assert_eq!(decide(&p, "www.kaspersky.com", AFTER).2, "vendor");
    assert_eq!(decide(&p, "kaspersky.com", AFTER).2, "vendor");
    assert_eq!(decide(&p, "dnl-07.geo.kaspersky.com", AFTER).1, Some("wildcard:dnl-*.geo.kaspersky.com".into()));
    assert_eq!(decide(&p, "x.dnl-07.geo.kaspersky.com", AFTER).1, Some("wildcard:dnl-*.geo.kaspersky.com".into()));
    assert_eq!(decide(&p, "edge.geo.kaspersky.com", AFTER).1, Some("domain:geo.kaspersky.com".into()));
    assert_eq!(decide(&p, "ksn-url-geo.kaspersky-labs.com", AFTER).2, "telemetry");
    assert_eq!(decide(&p, "ksn-url-geox.kaspersky-labs.com", AFTER).2, "vendor");
    assert_eq!(decide(&p, "ds.kaspersky.com", AFTER).2, "telemetry");
    assert_eq!(decide(&p, "a.ds.kaspersky.com", AFTER).2, "vendor", "a host rule covers the name only");
}

#[test]
fn whole_labels_only_and_normalised() {
    let p = policy();
    for other in ["notkaspersky.com", "xkaspersky.com", "kaspersky.com.example.org", "com", "kaspersky", "example.org"]
    {
        assert_eq!(decide(&p, other, AFTER), (Action::Allow, None, String::new()), "{other}");
    }
    assert_eq!(decide(&p, "S10.UPD.Kaspersky.COM.", AFTER).0, Action::Block);
}

#[test]
fn exceptions_are_allowed_in_every_phase() {
    let p = policy();
    assert_eq!(decide(&p, "tip.kaspersky.com", AFTER).0, Action::Allow);
    assert_eq!(decide(&p, "opentip.kaspersky.com", BEFORE).0, Action::Allow);
    assert_eq!(decide(&p, "x.tip.kaspersky.com", AFTER).0, Action::Block);
}

#[test]
fn phase_changes_at_the_instant() {
    let p = policy();
    let before = p.decide(Subject::Name("s1.upd.kaspersky.com"), BEFORE);
    let after = p.decide(Subject::Name("s1.upd.kaspersky.com"), AFTER);
    assert_eq!((before.action, p.phase(before.phase).name.as_str()), (Action::Monitor, "before"));
    assert_eq!((after.action, p.phase(after.phase).name.as_str()), (Action::Block, "after"));
    assert_eq!(before.valid_until, Some(AFTER), "monitor verdict expires at the block instant");
    assert_eq!(after.valid_until, None);
    assert_eq!(p.prohibition_start(), Some(AFTER));
}

#[test]
fn networks_match_by_longest_prefix() {
    let p = policy();
    let v = p.decide(Subject::Ip("77.74.177.1".parse().unwrap()), AFTER);
    assert_eq!(v.action, Action::Block);
    assert_eq!(p.rule_label(v.matched.unwrap().0), "network:77.74.176.0/21");
    assert_eq!(p.decide(Subject::Ip("2a03:2480:8000::5".parse().unwrap()), BEFORE).action, Action::Monitor);
    assert_eq!(p.decide(Subject::Ip("198.18.0.1".parse().unwrap()), AFTER).action, Action::Allow);
}

#[test]
fn exception_wins_a_tie_between_wildcards() {
    let text = POLICY.replace(
        "hosts = [\"tip.kaspersky.com\", \"opentip.kaspersky.com\"]",
        "wildcards = [\"ksn-*.kaspersky-labs.com\"]",
    );
    let p = compile(&text, "t.toml").unwrap();
    assert_eq!(decide(&p, "ksn-file-geo.kaspersky-labs.com", AFTER).2, "ti");
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = r#"[policy]
id = "Bad Id"
title = "t"
legal_basis = "l"
reference_url = "u"

[categories]
update = "u"

[[phases]]
name = "p1"
default = "block"

[[phases]]
name = "p2"
start = "2024-09-29T04:00:00+02:00"
default = "block"
actions = { nosuch = "allow" }

[[rules]]
category = "update"
domains = ["ok.example", "bad..example", "ok.example"]
networks = ["10.0.0.1/8", "nonsense"]
wildcards = ["a.*.example"]
"#;
    let err = compile(text, "bad.toml").unwrap_err();
    let PolicyError::Invalid { problems } = &err else { panic!("{err}") };
    let lines: Vec<usize> = problems.list.iter().map(|p| p.line).collect();
    assert_eq!(lines, vec![2, 16, 18, 22, 22, 23, 23, 24], "{err}");
    let text = err.to_string();
    assert!(text.contains("bad.toml:2:6: policy id \"Bad Id\""), "{text}");
    assert!(text.contains("did you mean 10.0.0.0/8"), "{text}");
    assert!(text.contains("already defined"), "{text}");
}

#[test]
fn syntax_errors_and_unknown_keys_have_positions() {
    let err = compile(
        "[policy]\nid = \"x\"\ntitle = \"t\"\nlegal_basis = \"l\"\nreference_url = \"u\"\ncolour = 1\n",
        "k.toml",
    )
    .unwrap_err();
    assert!(err.to_string().contains("k.toml:6:1: unknown field `colour`"), "{err}");
    let err = compile("[policy\n", "s.toml").unwrap_err();
    assert!(err.to_string().starts_with("policy s.toml is invalid"), "{err}");
}

#[test]
fn builtin_policy_compiles() {
    let p = builtin().unwrap();
    assert_eq!(p.meta.id, "us-bis-kaspersky-2024");
    assert!(p.rules().len() > 50);
}

#[test]
fn blocklists_block_names_and_subdomains_in_every_phase() {
    let list = "# a list\nads.example.net\n0.0.0.0 tracker.example.org\n||pixel.example.com^\nbad name here\nads.example.net\nupd.kaspersky.com\n";
    let lists = [Blocklist { source: "list.txt", text: list }];
    let (p, stats) = compile_with(POLICY, "test.toml", &lists).unwrap();
    assert_eq!((stats.entries, stats.duplicates, stats.skipped), (3, 2, 1));
    assert_eq!(stats.problems[0].1.line, 5);
    for name in ["ads.example.net", "x.tracker.example.org", "pixel.example.com"] {
        for at in [BEFORE, AFTER] {
            assert_eq!(decide(&p, name, at).0, Action::Block, "{name}");
            assert_eq!(decide(&p, name, at).2, "blocklist", "{name}");
        }
    }
    assert_eq!(decide(&p, "s1.upd.kaspersky.com", AFTER).2, "update", "policy rules keep their category");
    assert_eq!(decide(&p, "example.net", AFTER).0, Action::Allow);
}

#[test]
fn very_deep_names_still_match_their_zone() {
    let p = policy();
    let deep = format!("{}s1.upd.kaspersky.com", "a.".repeat(60));
    assert_eq!(decide(&p, &deep, AFTER).1, Some("domain:upd.kaspersky.com".into()));
    let too_deep = format!("{}example.com", "a.".repeat(40));
    let text =
        POLICY.replace("domains = [\"kaspersky.com\", \"kaspersky-labs.com\"]", &format!("domains = [\"{too_deep}\"]"));
    assert!(compile(&text, "t.toml").unwrap_err().to_string().contains("more than 32 labels"));
}

fn with_list(list: &str) -> (Policy, BlocklistStats) {
    compile_with(POLICY, "test.toml", &[Blocklist { source: "list.txt", text: list }]).unwrap()
}

#[test]
fn policy_host_exception_beats_a_list_entry_for_the_same_name() {
    let (p, _) = with_list("tip.kaspersky.com\n");
    for at in [BEFORE, AFTER] {
        assert_eq!(
            decide(&p, "tip.kaspersky.com", at),
            (Action::Allow, Some("host:tip.kaspersky.com".into()), "ti".into())
        );
    }
    assert_eq!(
        decide(&p, "x.tip.kaspersky.com", BEFORE),
        (Action::Block, Some("domain:tip.kaspersky.com".into()), "blocklist".into()),
        "the list entry covers the subdomains the host exception does not"
    );
}

#[test]
fn policy_domain_rule_for_a_listed_name_decides_and_the_entry_is_a_duplicate() {
    let (p, stats) = with_list("upd.kaspersky.com\nnew.example\n");
    assert_eq!((stats.entries, stats.duplicates), (1, 1));
    assert_eq!(
        decide(&p, "s1.upd.kaspersky.com", BEFORE),
        (Action::Monitor, Some("domain:upd.kaspersky.com".into()), "update".into())
    );
}

#[test]
fn deeper_list_entry_beats_a_shallower_policy_rule() {
    let (p, _) = with_list("ads.kaspersky.com\ndnl-07.geo.kaspersky.com\n");
    // The vendor catch-all only monitors before the prohibition; the list blocks.
    assert_eq!(decide(&p, "www.kaspersky.com", BEFORE).0, Action::Monitor);
    assert_eq!(
        decide(&p, "x.ads.kaspersky.com", BEFORE),
        (Action::Block, Some("domain:ads.kaspersky.com".into()), "blocklist".into())
    );
    // A listed name beats a label wildcard of as many labels (a domain rule
    // outranks a wildcard at the same depth, as before lists had their own table).
    assert_eq!(decide(&p, "dnl-07.geo.kaspersky.com", BEFORE).2, "blocklist");
    assert_eq!(decide(&p, "dnl-08.geo.kaspersky.com", BEFORE).2, "update");
}

#[test]
fn list_entries_match_whole_labels_only() {
    let (p, _) = with_list("example.com\n");
    assert_eq!(decide(&p, "a.b.Example.COM.", AFTER).1, Some("domain:example.com".into()));
    for other in ["notexample.com", "example.com.evil.org", "com", "example.co"] {
        assert_eq!(decide(&p, other, AFTER), (Action::Allow, None, String::new()), "{other}");
    }
}

#[test]
fn audit_label_names_the_matched_entry_or_else_the_list() {
    let lists = [
        Blocklist { source: "one.txt", text: "ads.example.net\n" },
        Blocklist { source: "two.txt", text: "ads.example.net\ntracker.example.org\n" },
    ];
    let (p, stats) = compile_with(POLICY, "test.toml", &lists).unwrap();
    assert_eq!((stats.entries, stats.duplicates), (2, 1));
    let v = p.decide(Subject::Name("X.Ads.Example.NET."), AFTER);
    assert_eq!(v.depth, 3);
    assert_eq!(p.rule_label_for(&v, "X.Ads.Example.NET.").as_deref(), Some("domain:ads.example.net"));
    let v2 = p.decide(Subject::Name("pixel.tracker.example.org"), AFTER);
    assert_eq!(p.rule_label(v2.matched.unwrap().0), "blocklist:two.txt");
    assert_eq!(p.rule_label_for(&v2, "pixel.tracker.example.org").as_deref(), Some("domain:tracker.example.org"));
    // Taken for another name (a CNAME target): the list is named instead.
    assert_eq!(p.rule_label_for(&v, "cdn.example.com").as_deref(), Some("blocklist:one.txt"));
    // The writer's shortcut for a verdict taken for the name itself names
    // the same entries without looking them up.
    for (verdict, name) in [(&v, "x.ads.example.net"), (&v2, "pixel.tracker.example.org")] {
        let own = p.own_rule_label_parts(verdict, name).map(|l| l.to_string());
        assert_eq!(own, p.rule_label_for(verdict, name), "{name}");
    }
    assert_eq!(p.rule_label_for(&p.decide(Subject::Name("example.org"), AFTER), "example.org"), None);
    let client = "192.0.2.1".parse().unwrap();
    let name = Some("X.ads.example.net.".to_owned());
    let record = crate::audit::contact_record(&p, &v, AFTER, client, crate::audit::Layer::Dns, name);
    assert_eq!(
        (record.rule.as_deref(), record.category.as_deref()),
        (Some("domain:ads.example.net"), Some("blocklist"))
    );
}

#[test]
fn counts_include_list_entries() {
    let (p, _) = with_list("a.example\nb.example\nc.example\n");
    let plain = policy();
    assert_eq!(p.rule_total(), plain.rule_total() + 3);
    assert_eq!(p.blocklist_entries(), 3);
    let counts = p.rule_counts();
    assert_eq!(counts.iter().find(|(c, _)| c.name == "blocklist").map(|(_, n)| *n), Some(3));
    assert_eq!(p.rule_pattern(RuleId(p.rules().len() as u32 - 1)), "list.txt");
}

#[test]
fn every_compilation_is_a_generation_of_its_own() {
    let (a, b) = (policy(), policy());
    assert_ne!(a.generation(), b.generation(), "the same file compiled twice");
    assert_eq!(a.generation(), a.generation());
}
