//! `warden audit report --html`: one self-contained page that a headless
//! browser renders with the hosts table in it.

use std::process::Command;

use crate::audit_fixture::*;

#[test]
fn the_html_report_is_self_contained_and_renders_the_hosts_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("gw1.jsonl");
    write(&log, &chain(&gw1(), "gw1"));
    let html = dir.path().join("report.html");
    let out = audit(&["report", "--html", p(&html), p(&log)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(&html).expect("html");
    for external in ["<script", "<link", "src=\"http", "@import", "url("] {
        assert!(!text.contains(external), "report loads something external: {external}");
    }
    assert!(text.contains("<svg") && text.contains(">prohibition</text>"), "chart with the prohibition marked");
    assert!(text.contains("The log verifies"));

    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"].into_iter().find(|c| which(c)) else {
        assert!(std::env::var_os("CI").is_none(), "chromium is missing on CI (scripts/setup installs it)");
        eprintln!("skipping the browser check: chromium is not installed (scripts/setup installs it)");
        return;
    };
    let profile = dir.path().join("profile");
    let url = format!("file://{}", html.display());
    let browser = |extra: &[&str]| {
        Command::new(chromium)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            .args(["--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,2000"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(&url)
            .output()
            .expect("run chromium")
    };
    let png = dir.path().join("r.png");
    let shot = browser(&[&format!("--screenshot={}", png.display())]);
    assert!(shot.status.success(), "{}", String::from_utf8_lossy(&shot.stderr));
    let bytes = std::fs::read(&png).expect("screenshot");
    assert!(bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000, "a real screenshot: {} bytes", bytes.len());
    let dom = browser(&["--dump-dom"]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<table id=\"hosts\">"), "hosts table rendered: {dom}");
    for client in ["192.168.1.20", "192.168.1.30", "192.168.1.40"] {
        assert!(dom.contains(&format!("<td class=\"mono\">{client}</td>")), "{client} in the rendered table");
    }
}

fn which(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(cmd).is_file()))
}
