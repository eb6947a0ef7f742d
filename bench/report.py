#!/usr/bin/env python3
"""Prints bench/run.sh's table from its per-round results: each figure is the
median of the rounds (the QPS per CPU-second column also shows the rounds'
range), then warden's ratios against the limit and the peers, taken from the
medians and, for throughput, also round by round (servers of one round ran
minutes apart, rounds may run in different weather on a shared machine).

A second table splits each server's CPU time per query into user and system
time and, for warden, the part its audit-log threads took: the kernel's UDP
path is the system column, so the columns show how much of a gap to the
limit is the server's own work and how much the kernel's.

usage: report.py results.tsv SERVER...
results.tsv: name load rss rss_after qps per_cpu p50 p99 ok [user_us sys_us audit_us],
one line per round"""
import math
import statistics
import sys

path, servers = sys.argv[1], sys.argv[2:]
rounds = {}
for line in open(path):
    f = line.rstrip("\n").split("\t")
    if len(f) not in (9, 12):
        continue
    name, ok = f[0], f[8]
    vals = []
    for x in f[1:8] + f[9:12]:
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


LOAD, RSS, RSS_AFTER, QPS, PER_CPU, P50, P99, USER, SYS, AUDIT = range(10)
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
    w, lim = med("warden", PER_CPU), med("limit", PER_CPU)
    print("warden QPS/CPU-s: %s limit, %s unbound, %s dnsmasq" % (
        ratio(w, lim), ratio(w, med("unbound", PER_CPU)), ratio(w, med("dnsmasq", PER_CPU))))
    if "limit" in rounds:
        # What a ratio to the limit means against the peers on this machine:
        # the kernel's share of each server's cost, and so these figures,
        # differ from machine to machine.
        print("the limit itself: %s unbound, %s dnsmasq; 0.9x the limit is %s unbound, %s dnsmasq" % (
            ratio(lim, med("unbound", PER_CPU)), ratio(lim, med("dnsmasq", PER_CPU)),
            ratio(0.9 * lim, med("unbound", PER_CPU)), ratio(0.9 * lim, med("dnsmasq", PER_CPU))))
    if "limit-mmsg" in rounds:
        print("warden QPS/CPU-s: %s limit-mmsg (the zero-work responder with warden's batched socket I/O)" % (
            ratio(w, med("limit-mmsg", PER_CPU))))
    for peer in ("limit", "limit-mmsg", "unbound", "dnsmasq"):
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

split = [s for s in servers if s in rounds and not math.isnan(med(s, USER))]
if split:
    print()
    print("Server CPU per query over the throughput run, µs (medians; audit: the audit-log threads, part of user + system):")
    print()
    print("| server | user | system | audit | total |")
    print("|---|---|---|---|---|")
    for s in split:
        audit = med(s, AUDIT)
        print("| %s | %.3f | %.3f | %s | %.3f |" % (
            s, med(s, USER), med(s, SYS), "%.3f" % audit if audit > 0 else "–", med(s, USER) + med(s, SYS)))
    if "warden" in split and "limit" in split:
        du, ds = med("warden", USER) - med("limit", USER), med("warden", SYS) - med("limit", SYS)
        print()
        print("warden − limit, µs per query: user %+.3f, system %+.3f (of which audit threads %.3f)" % (
            du, ds, med("warden", AUDIT)))
