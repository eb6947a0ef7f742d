#!/usr/bin/env python3
"""Prints bench/run.sh's table from its per-round results: each figure is the
median of the rounds (the QPS per CPU-second column also shows the rounds'
range), then warden's ratios against the limit and the peers, taken from the
medians and, for throughput, also round by round (servers of one round ran
minutes apart, rounds may run in different weather on a shared machine).

usage: report.py results.tsv SERVER...
results.tsv: name load rss rss_after qps per_cpu p50 p99 ok, one line per round"""
import math
import statistics
import sys

path, servers = sys.argv[1], sys.argv[2:]
rounds = {}
for line in open(path):
    f = line.rstrip("\n").split("\t")
    if len(f) != 9:
        continue
    name, ok = f[0], f[8]
    vals = []
    for x in f[1:8]:
        try:
            vals.append(float(x))
        except ValueError:
            vals.append(math.nan)
    rounds.setdefault(name, []).append((vals, ok))


def med(name, i):
    v = [r[0][i] for r in rounds.get(name, []) if not math.isnan(r[0][i])]
    return statistics.median(v) if v else math.nan


def ratio(a, b):
    return "%.2fx" % (a / b) if b and not (math.isnan(a) or math.isnan(b)) else "n/a"


LOAD, RSS, RSS_AFTER, QPS, PER_CPU, P50, P99 = range(7)
print("| server | load s | RSS after load MiB | RSS after run MiB | QPS | QPS per server CPU-second (rounds' range) | p50 / p99 ms at 10k qps | correct |")
print("|---|---|---|---|---|---|---|---|")
for s in servers:
    if s not in rounds:
        continue
    per = [r[0][PER_CPU] for r in rounds[s]]
    oks = {r[1] for r in rounds[s]}
    ok = "ok" if oks == {"ok"} else ",".join(sorted(oks - {"ok"}))
    print("| %s | %.2f | %.1f | %.1f | %.0f | %.0f (%.0f–%.0f) | %.3f / %.3f | %s |" % (
        s, med(s, LOAD), med(s, RSS), med(s, RSS_AFTER), med(s, QPS), med(s, PER_CPU),
        min(per), max(per), med(s, P50), med(s, P99), ok))
print()
if "warden" in rounds:
    w = med("warden", PER_CPU)
    print("warden QPS/CPU-s: %s limit, %s unbound, %s dnsmasq" % (
        ratio(w, med("limit", PER_CPU)), ratio(w, med("unbound", PER_CPU)), ratio(w, med("dnsmasq", PER_CPU))))
    for peer in ("limit", "unbound", "dnsmasq"):
        if peer in rounds:
            pairs = zip((r[0][PER_CPU] for r in rounds["warden"]), (r[0][PER_CPU] for r in rounds[peer]))
            print("  round by round against %s: %s" % (peer, ", ".join(ratio(a, b) for a, b in pairs)))
    print("warden RSS: %s dnsmasq, load: %s dnsmasq" % (
        ratio(med("warden", RSS), med("dnsmasq", RSS)), ratio(med("warden", LOAD), med("dnsmasq", LOAD))))
    print("warden p50/p99: %s / %s unbound" % (
        ratio(med("warden", P50), med("unbound", P50)), ratio(med("warden", P99), med("unbound", P99))))
if "warden-tmpfs" in rounds:
    t = "warden-tmpfs"
    print("warden, audit log on tmpfs: QPS/CPU-s %s limit, p50/p99 %s / %s unbound" % (
        ratio(med(t, PER_CPU), med("limit", PER_CPU)), ratio(med(t, P50), med("unbound", P50)),
        ratio(med(t, P99), med("unbound", P99))))
