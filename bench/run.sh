#!/usr/bin/env bash
# Side-by-side DNS filter benchmark: warden, dnsmasq, unbound and a zero-work
# responder (the machine's limit), one after another in the same run, inside
# a private network namespace with only loopback. Server pinned to CPU 0,
# dnsperf (and the NSD upstream) to CPU 1. Prints a Markdown table with
# ratios. Needs root. See docs/performance.md.
#
#   N=100000 DURATION=10 bench/run.sh        # N synthetic blocked domains
#   ROUNDS=3 bench/run.sh                    # interleaved rounds; the table shows medians (default 3)
#   SOAK=600 bench/run.sh                    # also: warden at 20k qps for 600 s, RSS every 10 s
#   ONLY="limit warden" bench/run.sh         # a subset of the servers (quick iteration)
#   (the row warden-tmpfs is warden with its audit log on tmpfs: what the
#   log's disk writes and fdatasync cost on this machine; limit-mmsg is the
#   zero-work responder with warden's batched socket I/O, the stricter
#   ceiling for a server that batches)
#   WARDEN=/path/to/warden bench/run.sh      # another warden build (A/B against main)
set -euo pipefail
N=${N:-100000}
DURATION=${DURATION:-10}
SOAK=${SOAK:-0}
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-limit limit-mmsg warden warden-tmpfs unbound dnsmasq}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
[[ $(id -u) -eq 0 ]] || { echo "bench: needs root (network namespace)" >&2; exit 1; }

need=()
for p in dnsperf nsd dnsmasq-base unbound dnsutils iproute2 util-linux; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if ((${#need[@]})); then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; fi
(cd "$ROOT" && cargo build --release --quiet --bin warden --example zero_responder)
WARDEN=${WARDEN:-$ROOT/target/release/warden}
ZERO=$ROOT/target/release/examples/zero_responder

WORK=$(mktemp -d /tmp/warden-bench.XXXX)
SHM=$(mktemp -d /dev/shm/warden-bench.XXXX)
NS=wbench$$
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 0.3
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$SHM"
    [[ ${KEEP:-0} == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"
nsx() { ip netns exec "$NS" "$@"; }
nsx ip link set lo up

echo "bench: generating data (N=$N) in $WORK" >&2
python3 "$ROOT/bench/gen.py" "$WORK" "$N"

cat > "$WORK/nsd.conf" <<NSD
server:
    ip-address: 127.0.0.1@5300
    username: ""
    zonesdir: "$WORK"
    pidfile: "$WORK/nsd.pid"
    database: ""
    zonelistfile: "$WORK/zone.list"
    xfrdfile: "$WORK/xfrd.state"
    server-count: 1
    verbosity: 0
zone:
    name: allowed.test
    zonefile: allowed.test.zone
NSD
cat > "$WORK/unbound.conf" <<UNB
server:
    interface: 127.0.0.1@5302
    port: 5302
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
    use-syslog: no
    logfile: ""
    verbosity: 0
    num-threads: 1
    do-not-query-localhost: no
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    qname-minimisation: no
    msg-cache-size: 64m
    rrset-cache-size: 128m
    # the upstream zone is allowed.test; unbound refuses test. by default (RFC 6761)
    local-zone: "test." nodefault
    include: "$WORK/unbound-block.conf"
forward-zone:
    name: "."
    forward-addr: 127.0.0.1@5300
UNB

ip netns exec "$NS" taskset -c 1 nsd -d -c "$WORK/nsd.conf" >"$WORK/nsd.log" 2>&1 &
PIDS+=($!)
sleep 1

# cpusplit PID: "user system audit" clock ticks so far: the process's user and
# system time, and the time of its audit-log threads (warden-audit*), so the
# table can say where a server's CPU goes (fields after the comm's ")").
cpusplit() {
    local u s a=0 t
    read -r u s < <(sed 's/.*) //' "/proc/$1/stat" | awk '{print $12, $13}')
    for t in /proc/"$1"/task/*; do
        [[ $(cat "$t/comm" 2>/dev/null) == warden-audit* ]] || continue
        a=$((a + $(sed 's/.*) //' "$t/stat" | awk '{print $12 + $13}')))
    done
    echo "$u $s $a"
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
answers() { nsx dig +tries=2 +time=3 +short -p "$1" @127.0.0.1 "$2" "$3" 2>/dev/null; }
rcode() { nsx dig +tries=1 +time=2 -p "$1" @127.0.0.1 "$2" A 2>/dev/null | sed -n 's/.*status: \([A-Z]*\).*/\1/p'; }

# start NAME PORT CMD... : start pinned to CPU 0, wait until it answers; sets PID LOAD
start() {
    local name=$1 port=$2; shift 2
    local t0=$(date +%s.%N)
    # Not through a shell function, so that $! is the server itself
    # (ip netns exec, taskset and env all exec the next program).
    ip netns exec "$NS" taskset -c 0 "$@" >"$WORK/$name.log" 2>&1 &
    PID=$!
    PIDS+=($PID)
    for _ in $(seq 1 600); do
        [[ -n "$(nsx dig +tries=1 +time=1 -p "$port" @127.0.0.1 h1.allowed.test A 2>/dev/null | grep status:)" ]] && break
        sleep 0.02
    done
    LOAD=$(echo "$(date +%s.%N) - $t0" | bc)
}

# run_one NAME PORT CMD... : one round of one server; appends a line to results.tsv
run_one() {
    local name=$1 port=$2; shift 2
    start "$name" "$port" "$@"
    local pid=$PID load=$LOAD
    # the real server process (taskset execs, so $pid is it)
    local ok=ok
    if [[ $name != limit* ]]; then
        [[ $(rcode "$port" s10.upd.kaspersky.com) == NXDOMAIN ]] || ok="FAIL(vendor)"
        [[ $(rcode "$port" d0000007.blocked-example.net) == NXDOMAIN ]] || ok="FAIL(list)"
        [[ -n $(answers "$port" h7.allowed.test A) ]] || ok="FAIL(allowed)"
    fi
    local rss=$(rss_mib "$pid")
    # Each measured phase starts with the page cache written back, so the
    # disk writes of an earlier phase (warden's audit log at full load is
    # ~15 MB/s) do not land in this one's figures, nor in the next server's.
    sync
    nsx taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -n 1 -c 10 -q 100 >/dev/null 2>&1 || true
    local u0 s0 a0 u1 s1 a1
    read -r u0 s0 a0 < <(cpusplit "$pid")
    nsx taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -c 10 -q 100 -l "$DURATION" >"$WORK/$name.perf" 2>&1 || true
    read -r u1 s1 a1 < <(cpusplit "$pid")
    local done_q=$(awk '/Queries completed:/ {print $3}' "$WORK/$name.perf")
    local qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$WORK/$name.perf")
    local tick=$(getconf CLK_TCK)
    local per_cpu=$(echo "scale=0; ${done_q:-0} * $tick / ($u1 + $s1 - $u0 - $s0 + 0.0001)" | bc)
    # µs of server CPU per query: user, system, and the audit threads' part of both
    local split=$(awk -v q="${done_q:-0}" -v t="$tick" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v a=$((a1 - a0)) \
        'BEGIN { f = q > 0 ? 1e6 / t / q : 0; printf "%.3f\t%.3f\t%.3f", u * f, s * f, a * f }')
    sync
    nsx taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$WORK/queries.txt" -c 10 -Q 10000 -l 5 -v >"$WORK/$name.lat" 2>&1 || true
    local lat=$(python3 - "$WORK/$name.lat" <<'PY'
import sys
v = sorted(float(l.split()[-1]) for l in open(sys.argv[1]) if l.startswith(">") and l.split()[-1].replace(".", "", 1).isdigit())
print("%.3f\t%.3f" % (v[len(v)//2] * 1000, v[int(len(v) * 0.99)] * 1000) if v else "nan\tnan")
PY
)
    local rss_after=$(rss_mib "$pid")
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$load" "$rss" "$rss_after" "${qps:-0}" "$per_cpu" "$lat" "$ok" "$split" >>"$WORK/results.tsv"
    echo "bench: round $ROUND $name: load $load s, QPS $qps, per CPU-s $per_cpu, p50/p99 ${lat/$'\t'/ \/ } ms, $ok; µs/query user/system/audit ${split//$'\t'/ \/ }" >&2
}

wanted() { [[ " $ONLY " == *" $1 "* ]]; }
: >"$WORK/results.tsv"
# Rounds interleave the servers (limit, warden, ..., limit, warden, ...), so a
# slow minute on this shared machine hits every server alike; each figure
# reported is the median of its rounds.
for ROUND in $(seq 1 "$ROUNDS"); do
    wanted limit && run_one limit 5305 "$ZERO" 127.0.0.1:5305
    wanted limit-mmsg && run_one limit-mmsg 5307 "$ZERO" --mmsg 127.0.0.1:5307
    wanted warden && run_one warden 5304 env RUST_LOG=warn "$WARDEN" run --listen 127.0.0.1:5304 --upstream 127.0.0.1:5300 \
        --blocklist "$WORK/blocklist.txt" --audit-log "$WORK/audit-$ROUND.jsonl" --allow-client 127.0.0.0/8
    wanted warden-tmpfs && run_one warden-tmpfs 5306 env RUST_LOG=warn "$WARDEN" run --listen 127.0.0.1:5306 --upstream 127.0.0.1:5300 \
        --blocklist "$WORK/blocklist.txt" --audit-log "$SHM/audit-$ROUND.jsonl" --allow-client 127.0.0.0/8
    wanted unbound && run_one unbound 5302 unbound -d -c "$WORK/unbound.conf"
    wanted dnsmasq && run_one dnsmasq 5303 dnsmasq -k -C "$WORK/dnsmasq-block.conf" --port=5303 --listen-address=127.0.0.1 --bind-interfaces \
        --no-resolv --no-hosts --server=127.0.0.1#5300 --cache-size=20000 --user=root
done

echo
echo "N = $N synthetic blocked domains + vendor zones; mix 25% vendor / 25% list / 50% allowed (cached), A+AAAA; $(nproc) cores: server on CPU 0, dnsperf on CPU 1; median of $ROUNDS interleaved rounds"
echo
python3 "$ROOT/bench/report.py" "$WORK/results.tsv" $ONLY

if ((SOAK > 0)); then
    echo; echo "soak: warden at 20k qps for ${SOAK}s, RSS every 10 s (MiB):"
    start warden-soak 5304 env RUST_LOG=warn "$WARDEN" run --listen 127.0.0.1:5304 --upstream 127.0.0.1:5300 \
        --blocklist "$WORK/blocklist.txt" --audit-log "$WORK/audit-soak.jsonl" --allow-client 127.0.0.0/8
    ip netns exec "$NS" taskset -c 1 dnsperf -s 127.0.0.1 -p 5304 -d "$WORK/queries.txt" -c 10 -Q 20000 -l "$SOAK" >"$WORK/soak.perf" 2>&1 &
    perf=$!
    samples=()
    for _ in $(seq 1 $((SOAK / 10))); do sleep 10; samples+=("$(rss_mib "$PID")"); done
    wait "$perf" || true
    echo "${samples[*]}"
    grep -E "Queries (sent|completed|lost)" "$WORK/soak.perf"
fi
