#!/usr/bin/env python3
"""Generate the side-by-side benchmark's data: the upstream zone (NSD), the
blocklist (N synthetic domains), per-engine block configs and the query mix
(25% vendor names, 25% synthetic blocked names, 50% allowed names; A and
AAAA half each)."""
import os
import random
import sys

out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
ALLOWED = 10_000
VENDOR_ZONES = ["kaspersky.com", "kaspersky-labs.com", "kaspersky.ru", "kasperskycontenthub.com"]
VENDOR_HOSTS = ["s%02d.upd.kaspersky.com" % i for i in range(20)] + \
    ["dnl-%02d.geo.kaspersky.com" % i for i in range(20)] + \
    ["ksn-%s-geo.kaspersky-labs.com" % s for s in ("file", "url", "verdict", "info", "stat")] + \
    ["dc1.ksn.kaspersky-labs.com", "activation-v2.kaspersky.com", "crl.kaspersky.com", "www.kaspersky.com"]

def synth(i):
    return "d%07d.blocked-example.net" % i

os.makedirs(out, exist_ok=True)
with open(f"{out}/allowed.test.zone", "w") as z:
    z.write("$ORIGIN allowed.test.\n$TTL 3600\n@ IN SOA ns.allowed.test. h.allowed.test. 1 3600 600 86400 300\n@ IN NS ns\nns IN A 127.0.0.1\n")
    for i in range(ALLOWED):
        z.write(f"h{i} IN A 198.18.{(i >> 8) & 255}.{i & 255}\nh{i} IN AAAA fd00::{i:x}\n")
with open(f"{out}/blocklist.txt", "w") as f:
    f.writelines(synth(i) + "\n" for i in range(n))
with open(f"{out}/dnsmasq-block.conf", "w") as f:
    f.writelines(f"address=/{d}/\n" for d in VENDOR_ZONES)
    f.writelines(f"address=/{synth(i)}/\n" for i in range(n))
with open(f"{out}/unbound-block.conf", "w") as f:
    f.writelines(f'local-zone: "{d}." always_nxdomain\n' for d in VENDOR_ZONES)
    f.writelines(f'local-zone: "{synth(i)}." always_nxdomain\n' for i in range(n))
with open(f"{out}/queries.txt", "w") as f:
    for i in range(200_000):
        qtype = "A" if i % 2 == 0 else "AAAA"
        r = i % 4
        if r == 0:
            name = rng.choice(VENDOR_HOSTS)
        elif r == 1:
            name = synth(rng.randrange(n))
        else:
            name = "h%d.allowed.test" % rng.randrange(ALLOWED)
        f.write(f"{name} {qtype}\n")
