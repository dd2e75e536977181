#!/usr/bin/env bash
# bench-tunnel.sh: throughput / RTT / CPU of two namespaces joined by veth, bare and (once
# wired) through the quictun tunnel, side by side with ratios.
#
#   sudo scripts/bench-tunnel.sh [-t SECONDS]
#     -t  iperf3 duration per run (default 5, at most 30)
#   The tunnel rows use target/release/quictun (or $QUICTUN_BIN); CARRIAGE=stream|auto picks
#   the carriage (default datagram).
#
# Layout: namespaces qtbench-<pid>-a (198.18.0.1/30) and qtbench-<pid>-b (198.18.0.2/30) joined
# by a veth pair created inside them; tunnel addresses 198.19.0.1 <-> 198.19.0.2. Everything
# (namespaces, the processes this script started) is removed on exit, error or CTRL-C.
# Uses only 198.18.0.0/15; touches no interface outside its own namespaces.
#
# The machine is a shared 2-vCPU VM with steal time: compare the rows of one run (ratios, CPU
# per Gbit), not absolute numbers across runs.
set -euo pipefail

DURATION=5
while getopts "t:h" opt; do
    case "$opt" in
        t) DURATION=$OPTARG ;;
        *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
if ! [[ "$DURATION" =~ ^[0-9]+$ ]] || (( DURATION < 1 || DURATION > 30 )); then
    echo "duration must be 1..30 seconds" >&2; exit 2
fi
if [[ $EUID -ne 0 ]]; then
    echo "skipping: needs root (network namespaces)" >&2; exit 0
fi

NS_A="qtbench-$$-a"
NS_B="qtbench-$$-b"
A4=198.18.0.1
B4=198.18.0.2
TUN_A4=198.19.0.1
TUN_B4=198.19.0.2
PIDS=()          # every background process this script started, killed by pid on exit
TUNNEL_PIDS=()   # the tunnel daemons, for CPU accounting

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # Bounded wait, then SIGKILL.
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$NS_A" 2>/dev/null || true
    ip netns del "$NS_B" 2>/dev/null || true
    if [[ -n "${TMPD:-}" ]]; then rm -rf "$TMPD"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() {  # need TOOL PACKAGE
    command -v "$1" >/dev/null && return 0
    echo "installing $2 ..." >&2
    timeout 300 apt-get install -y -qq "$2" >/dev/null 2>&1 \
        || { timeout 300 apt-get update -qq >/dev/null 2>&1; timeout 300 apt-get install -y -qq "$2" >/dev/null 2>&1; }
    command -v "$1" >/dev/null || { echo "cannot install $2" >&2; exit 1; }
}
need iperf3 iperf3
need ping iputils-ping
need python3 python3-minimal

ip netns add "$NS_A"
ip netns add "$NS_B"
ip -n "$NS_A" link set lo up
ip -n "$NS_B" link set lo up
ip -n "$NS_A" link add qbench0 type veth peer name qbench1 netns "$NS_B"
ip -n "$NS_A" addr add "$A4/30" dev qbench0
ip -n "$NS_B" addr add "$B4/30" dev qbench1
ip -n "$NS_A" link set qbench0 up
ip -n "$NS_B" link set qbench1 up

# iperf3 server in B, bound to all addresses so the tunnel address works too.
ip netns exec "$NS_B" iperf3 -s >/dev/null 2>&1 &
PIDS+=($!)
sleep 0.5

# Sum of utime+stime (clock ticks) of the given pids.
cpu_ticks() {
    local total=0 pid f
    for pid in "$@"; do
        f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
        total=$(( total + ${f% *} + ${f#* } ))
    done
    echo "$total"
}
# Busy and total jiffies of the whole machine.
sys_ticks() {
    awk '/^cpu /{ busy=$2+$3+$4+$7+$8; total=busy+$5+$6+$9; print busy, total }' /proc/stat
}

declare -A GBPS CPUPG
ROWS=()

# run_iperf LABEL DST STREAMS REVERSE(0/1)
run_iperf() {
    local label=$1 dst=$2 streams=$3 rev=$4
    local dir="a->b"; local flags=()
    if [[ $rev == 1 ]]; then dir="b->a"; flags+=(-R); fi
    local s0 t0 d0 s1 t1 d1 json
    read -r s0 t0 < <(sys_ticks)
    d0=$(cpu_ticks "${TUNNEL_PIDS[@]}")
    json=$(timeout $(( DURATION + 20 )) ip netns exec "$NS_A" \
        iperf3 -c "$dst" -t "$DURATION" -P "$streams" "${flags[@]}" -J 2>/dev/null) || json=""
    read -r s1 t1 < <(sys_ticks)
    d1=$(cpu_ticks "${TUNNEL_PIDS[@]}")
    local hz; hz=$(getconf CLK_TCK)
    local line
    line=$(JSON="$json" python3 - "$s0" "$t0" "$s1" "$t1" "$d0" "$d1" "$hz" "$DURATION" <<'PY'
import json, os, sys
s0, t0, s1, t1, d0, d1, hz, dur = map(float, sys.argv[1:])
try:
    j = json.loads(os.environ["JSON"])
    end = j["end"]
    gbps = end["sum_received"]["bits_per_second"] / 1e9
    retr = end.get("sum_sent", {}).get("retransmits", 0)
    cpu = end["cpu_utilization_percent"]
    snd, rcv = cpu["host_total"], cpu["remote_total"]
except Exception:
    print("nan nan nan nan nan nan"); sys.exit(0)
busy = 100.0 * (s1 - s0) / max(t1 - t0, 1)      # % of all cores, whole machine
tun = 100.0 * (d1 - d0) / hz / dur               # % of one core, tunnel daemons
print(f"{gbps:.2f} {retr} {snd:.0f} {rcv:.0f} {busy:.0f} {tun:.0f}")
PY
)
    local g r snd rcv busy tun
    read -r g r snd rcv busy tun <<<"$line"
    # CPU (in cores) per Gbit/s of the processes involved (both iperf3 ends, in-kernel work
    # done in their context included, plus the tunnel daemons): the number to compare between
    # bare and tunnel. Not the whole-machine figure, which other tenants of the VM inflate.
    local cpg
    cpg=$(python3 -c "g=float('$g'); c=float('$snd')+float('$rcv')+float('$tun'); print('nan' if g!=g or g==0 else f'{c/100/g:.3f}')")
    GBPS["$label/$dir/$streams"]=$g
    CPUPG["$label/$dir/$streams"]=$cpg
    ROWS+=("$(printf '%-7s %-5s %7s %8s %7s %9s %9s %8s %9s %10s' \
        "$label" "$dir" "$streams" "$g" "$r" "$snd" "$rcv" "$busy" "$tun" "$cpg")")
}

# run_ping LABEL DST
run_ping() {
    local out
    out=$(timeout 20 ip netns exec "$NS_A" ping -n -q -c 20 -i 0.05 -W 1 "$2" 2>/dev/null) || true
    local rtt; rtt=$(sed -n 's|^rtt min/avg/max/mdev = [^/]*/\([^/]*\)/.*|\1|p' <<<"$out")
    PING["$1"]=${rtt:-nan}
}
declare -A PING

measure() {  # measure LABEL DST
    run_ping "$1" "$2"
    local streams rev
    for streams in 1 4; do
        for rev in 0 1; do
            run_iperf "$1" "$2" "$streams" "$rev"
        done
    done
}

# ---------------------------------------------------------------------------------------------
# HOOK (integrator): start the tunnel. Start `quictun up` in both namespaces so that
# 198.19.0.1 (in A) and 198.19.0.2 (in B) reach each other through it over the veth
# (198.18.0.1 <-> 198.18.0.2), e.g.:
#     ip netns exec "$NS_B" quictun up --config <server.toml> & PIDS+=($!); TUNNEL_PIDS+=($!)
#     ip netns exec "$NS_A" quictun up --config <client.toml> & PIDS+=($!); TUNNEL_PIDS+=($!)
#     wait (bounded) until `ip netns exec "$NS_A" ping -c1 -W1 $TUN_B4` succeeds
# Return 0 when the tunnel is up, 1 to skip the tunnel rows.
tunnel_up() {
    local bin=${QUICTUN_BIN:-$(dirname "$0")/../target/release/quictun}
    if [[ ! -x "$bin" ]]; then
        echo "tunnel: no quictun binary (cargo build --release --bin quictun, or set QUICTUN_BIN)" >&2
        return 1
    fi
    local carriage=${CARRIAGE:-datagram}
    TMPD=$(mktemp -d /tmp/qtbench.XXXXXX)
    "$bin" cert --out "$TMPD" --ca >/dev/null
    "$bin" cert --out "$TMPD" --name server --ip "$B4" >/dev/null
    "$bin" cert --out "$TMPD" --name client >/dev/null
    printf '%s\n' '[interface]' 'name = "qtb0"' "address = [\"$TUN_B4/24\"]" \
        "listen = \"$B4:4433\"" '[tls]' 'cert = "server.crt"' 'key = "server.key"' \
        'ca = "ca.crt"' '[[peer]]' 'name = "client"' "allowed_ips = [\"$TUN_A4/32\"]" \
        "carriage = \"$carriage\"" '[control]' "socket = \"$TMPD/server.sock\"" \
        '[log]' 'level = "warn"' >"$TMPD/server.toml"
    printf '%s\n' '[interface]' 'name = "qtb0"' "address = [\"$TUN_A4/24\"]" \
        '[tls]' 'cert = "client.crt"' 'key = "client.key"' 'ca = "ca.crt"' \
        '[[peer]]' 'name = "server"' "endpoint = \"$B4:4433\"" \
        "allowed_ips = [\"$TUN_B4/32\"]" "carriage = \"$carriage\"" \
        '[control]' "socket = \"$TMPD/client.sock\"" '[log]' 'level = "warn"' \
        >"$TMPD/client.toml"
    ip netns exec "$NS_B" "$bin" up -c "$TMPD/server.toml" &
    PIDS+=($!); TUNNEL_PIDS+=($!)
    ip netns exec "$NS_A" "$bin" up -c "$TMPD/client.toml" &
    PIDS+=($!); TUNNEL_PIDS+=($!)
    local i
    for i in $(seq 1 50); do
        if ip netns exec "$NS_A" ping -n -c1 -W1 "$TUN_B4" >/dev/null 2>&1; then
            echo "tunnel up ($carriage carriage) after $i probe(s)" >&2
            return 0
        fi
        sleep 0.2
    done
    echo "tunnel did not come up" >&2
    return 1
}
# ---------------------------------------------------------------------------------------------

echo "bench: ${DURATION}s per iperf3 run, $(nproc) CPUs, kernel $(uname -r)"
measure bare "$B4"
TUNNEL=0
if tunnel_up; then
    TUNNEL=1
    measure tunnel "$TUN_B4"
fi

echo
printf '%-7s %-5s %7s %8s %7s %9s %9s %8s %9s %10s\n' \
    path dir streams Gbit/s retrans sndCPU% rcvCPU% sysCPU% daemon% cores/Gbit
for row in "${ROWS[@]}"; do echo "$row"; done
echo
if ((TUNNEL)); then
    echo "ping RTT avg (ms): bare ${PING[bare]}, tunnel ${PING[tunnel]}"
else
    echo "ping RTT avg (ms): bare ${PING[bare]}"
fi
echo "(sndCPU/rcvCPU: iperf3 sender/receiver process CPU, % of one core; sysCPU: whole machine,"
echo " % of all cores, includes other tenants; daemon: tunnel processes from /proc/<pid>/stat,"
echo " % of one core; cores/Gbit = (sndCPU+rcvCPU+daemon)/100 per Gbit/s)"

if ((TUNNEL)); then
    echo
    echo "tunnel / bare:"
    for key in "${!GBPS[@]}"; do
        [[ $key == tunnel/* ]] || continue
        k=${key#tunnel/}
        python3 -c "
t, b = float('${GBPS[$key]}'), float('${GBPS[bare/$k]}')
tc, bc = float('${CPUPG[$key]}'), float('${CPUPG[bare/$k]}')
print(f'  $k: throughput {t/b:.2f}x, cores/Gbit {tc/bc:.2f}x')" 2>/dev/null || echo "  $k: n/a"
    done
fi
