//! `report --html`: one self-contained HTML page for a reviewer: headline
//! figures, a chart of contacts per day (or hour) with the prohibition
//! instant marked (inline SVG), the hosts table and the verification
//! result. Inline CSS only: no scripts, fonts or other external resources.

use std::fmt::Write;

use super::hosts::Hosts;
use super::summary::Summary;
use super::timeline::Timeline;
use super::verify::Outcome;

/// Everything the page shows.
pub struct Report<'a> {
    pub title: &'a str,
    pub generated: &'a str,
    pub summary: &'a Summary,
    pub timeline: &'a Timeline,
    pub hosts: &'a Hosts,
    pub verify: &'a Outcome,
}

/// Escapes text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem;color:#1b1b1b;max-width:1200px}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ccc}\
.figs{display:flex;flex-wrap:wrap;gap:1rem}.fig{border:1px solid #ccc;border-radius:6px;padding:.6rem 1rem;min-width:10rem}\
.fig b{display:block;font-size:1.4rem}table{border-collapse:collapse;font-size:.85rem;width:100%}\
th,td{border:1px solid #ccc;padding:.25rem .4rem;text-align:left;vertical-align:top}th{background:#f0f0f0}\
.ok{color:#176b2c;font-weight:bold}.fail{color:#a4161a;font-weight:bold}.warn{color:#8a5a00}\
svg{border:1px solid #ccc;background:#fafafa}.mono{font-family:ui-monospace,monospace}";

pub fn render(r: &Report<'_>) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n<p>Generated {g} from {f} file(s).</p>\n",
        t = esc(r.title),
        g = esc(r.generated),
        f = r.summary.input.files
    );
    figures(&mut h, r);
    chart(&mut h, r.timeline);
    hosts_table(&mut h, r.hosts);
    verification(&mut h, r.verify);
    h.push_str("</body></html>\n");
    h
}

fn figures(h: &mut String, r: &Report<'_>) {
    let s = r.summary;
    let verdict = if r.verify.ok { "<span class=\"ok\">intact</span>" } else { "<span class=\"fail\">FAILED</span>" };
    let figs = [
        ("contacts", s.contacts.to_string()),
        ("after the prohibition", s.contacts_after_prohibition.to_string()),
        ("clients", s.clients.to_string()),
        ("clients after the prohibition", s.clients_after_prohibition.to_string()),
        ("first contact", s.first_contact.clone().unwrap_or_else(|| "-".into())),
        ("last contact", s.last_contact.clone().unwrap_or_else(|| "-".into())),
    ];
    h.push_str("<h2>Headline</h2><div class=\"figs\">");
    for (label, value) in figs {
        let _ = write!(h, "<div class=\"fig\"><b>{}</b>{}</div>", esc(&value), esc(label));
    }
    let _ = writeln!(h, "<div class=\"fig\"><b>{verdict}</b>log verification</div></div>");
    if let Some(p) = &s.prohibition {
        let _ = writeln!(h, "<p>Prohibition in force from <span class=\"mono\">{}</span>.</p>", esc(p));
    }
}

fn chart(h: &mut String, t: &Timeline) {
    let (w, ht, pad) = (1100.0_f64, 260.0_f64, 40.0_f64);
    let _ = writeln!(h, "<h2>Contacts per {}</h2>", if t.by == super::timeline::Bucket::Day { "day" } else { "hour" });
    if t.buckets.is_empty() {
        h.push_str("<p>No contacts.</p>\n");
        return;
    }
    let max = t.buckets.iter().map(|b| b.1).max().unwrap_or(1).max(1) as f64;
    let n = t.buckets.len() as f64;
    let bw = (w - 2.0 * pad) / n;
    let _ = write!(
        h,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"contacts over time\">"
    );
    let _ = write!(h, "<text x=\"4\" y=\"14\" font-size=\"11\">max {max}</text>");
    let mut marked = false;
    for (i, (start, count)) in t.buckets.iter().enumerate() {
        let x = pad + i as f64 * bw;
        let bh = (*count as f64 / max) * (ht - 2.0 * pad);
        let after = t.prohibition.as_deref().is_some_and(|p| start.as_str() >= p);
        let fill = if after { "#a4161a" } else { "#5b7db1" };
        if after && !marked {
            marked = true;
            let _ = write!(
                h,
                "<line x1=\"{x:.1}\" y1=\"{}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#000\" stroke-dasharray=\"4 3\"/><text x=\"{:.1}\" y=\"{}\" font-size=\"11\">prohibition</text>",
                pad - 10.0,
                ht - pad,
                x + 3.0,
                pad - 12.0
            );
        }
        let _ = write!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{fill}\"><title>{} {count}</title></rect>",
            ht - pad - bh,
            (bw - 1.0).max(0.5),
            esc(start)
        );
    }
    let (first, last) = (&t.buckets[0].0, &t.buckets[t.buckets.len() - 1].0);
    let _ = writeln!(
        h,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"11\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
        ht - 12.0,
        esc(first),
        w - pad,
        ht - 12.0,
        esc(last)
    );
    h.push_str("<p>Blue: before the prohibition; red: from the prohibition instant on.</p>\n");
}

fn hosts_table(h: &mut String, hosts: &Hosts) {
    let _ = write!(
        h,
        "<h2>Hosts ({})</h2>\n<table id=\"hosts\"><thead><tr><th>client</th><th>machine (lease)</th><th>first contact</th><th>last contact</th><th>contacts</th><th>after prohibition</th><th>categories</th><th>layers</th><th>top names</th><th>gateways</th></tr></thead><tbody>\n",
        hosts.rows.len()
    );
    for r in &hosts.rows {
        let join =
            |m: super::hosts::Counts<'_>| m.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let names = r.top_names().map(|(n, c)| format!("{n} ({c})")).collect::<Vec<_>>().join(", ");
        let machines = r.machines().map(|m| format!("{} {}", m.hostname, m.mac)).collect::<Vec<_>>().join(", ");
        let gateways = r.gateways().collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            h,
            "<tr><td class=\"mono\">{}</td><td>{}</td><td class=\"mono\">{}</td><td class=\"mono\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.client(),
            esc(&machines),
            esc(r.first_contact()),
            esc(r.last_contact()),
            r.contacts(),
            r.after_prohibition(),
            esc(&join(r.categories())),
            esc(&join(r.layers())),
            esc(&names),
            esc(&gateways)
        );
    }
    h.push_str("</tbody></table>\n");
}

fn verification(h: &mut String, v: &Outcome) {
    let head = if v.ok {
        "<p class=\"ok\">The log verifies: every line checks and links.</p>"
    } else {
        "<p class=\"fail\">The log does NOT verify.</p>"
    };
    let sig = if v.signatures_checked {
        "Checkpoint signatures were checked."
    } else {
        "Checkpoint signatures were not checked (no public key given)."
    };
    let _ = write!(
        h,
        "<h2>Verification</h2>{head}<p>{sig} {} records in {} chain(s).</p>\n<ul>",
        v.records,
        v.chains.len()
    );
    for (class, list) in [("fail", &v.problems), ("warn", &v.warnings), ("", &v.notes)] {
        for f in list {
            let _ = write!(
                h,
                "<li class=\"{class}\"><span class=\"mono\">{}:{}</span> {}</li>",
                esc(&f.file.display().to_string()),
                f.line,
                esc(&f.message)
            );
        }
    }
    h.push_str("</ul>\n");
}
