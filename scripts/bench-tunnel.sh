#!/usr/bin/env bash
# bench-tunnel.sh: throughput / RTT / CPU of two namespaces joined by veth, bare and (once
# wired) through the quictun tunnel, side by side with ratios.
#
#   sudo scripts/bench-tunnel.sh [-t SECONDS] [-c|--compare] [-p] [-n COUNT]
#     -t  iperf3 duration per run (default 5, at most 30)
#     -p  ping only: idle and loaded RTT of every path, no throughput table
#     -n  ping probes per measurement (default 20, at most 2000), 50 ms apart
#     -c  also measure the tunnels a user would pick instead, in the same run: WireGuard via
#         boringtun-cli (userspace, configured with wg) and quincy (QUIC VPN, mTLS with openssl
#         certificates). Missing tools are installed first (wireguard-tools via apt;
#         boringtun-cli, quincy-server and quincy-client via cargo install, bounded); a tunnel
#         whose tools cannot be installed or that does not come up is skipped with the reason.
#   The tunnel rows use target/release/quictun (or $QUICTUN_BIN); CARRIAGE=stream|auto picks
#   the carriage (default datagram). QUICTUN_BINS="label=path label2=path2" measures several
#   quictun builds in the same run (rows named after the labels), for before/after comparisons.
#   Every path gets two RTTs: idle (nothing else through the tunnel) and loaded (while one
#   iperf3 TCP stream a->b runs through the same path for -t seconds).
#
# Layout: namespaces qtbench-<pid>-a (198.18.0.1/30) and qtbench-<pid>-b (198.18.0.2/30) joined
# by a veth pair created inside them; tunnel addresses 198.19.0.1 <-> 198.19.0.2 (quictun),
# 198.19.1.1 <-> 198.19.1.2 (boringtun), 198.19.2.0/24 (quincy, server 198.19.2.1). Each tunnel
# is torn down before the next one starts. Everything
# (namespaces, the processes this script started) is removed on exit, error or CTRL-C.
# Uses only 198.18.0.0/15; touches no interface outside its own namespaces.
#
# The machine is a shared 2-vCPU VM with steal time: compare the rows of one run (ratios, CPU
# per Gbit), not absolute numbers across runs.
set -euo pipefail

DURATION=5
COMPARE=0
PING_ONLY=0
PING_COUNT=20
args=()
for a in "$@"; do
    case "$a" in --compare) args+=(-c) ;; --help) args+=(-h) ;; *) args+=("$a") ;; esac
done
set -- "${args[@]+"${args[@]}"}"
while getopts "t:cpn:h" opt; do
    case "$opt" in
        t) DURATION=$OPTARG ;;
        c) COMPARE=1 ;;
        p) PING_ONLY=1 ;;
        n) PING_COUNT=$OPTARG ;;
        *) sed -n '2,30p' "$0"; exit 2 ;;
    esac
done
if ! [[ "$PING_COUNT" =~ ^[0-9]+$ ]] || (( PING_COUNT < 1 || PING_COUNT > 2000 )); then
    echo "ping count must be 1..2000" >&2; exit 2
fi
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
TUNNEL_PIDS=()   # the daemons of the tunnel under test, for CPU accounting and teardown
WG_IF_A="qtw$$a"  # boringtun interfaces; their UAPI sockets live in /var/run/wireguard (shared
WG_IF_B="qtw$$b"  # by all namespaces), hence names unique to this run

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
    rm -f "/var/run/wireguard/$WG_IF_A.sock" "/var/run/wireguard/$WG_IF_B.sock"
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
TMPD=$(mktemp -d /tmp/qtbench.XXXXXX)

# --- -c: install the comparison tunnels (each failure only skips that tunnel) ----------------
CARGO_BIN_DIR=${CARGO_HOME:-$HOME/.cargo}/bin
have() {  # have TOOL: command -v, also looking in cargo's bin directory
    command -v "$1" 2>/dev/null && return 0
    [[ -x "$CARGO_BIN_DIR/$1" ]] && { echo "$CARGO_BIN_DIR/$1"; return 0; }
    return 1
}
BT_SKIP="" QUINCY_SKIP=""
if ((COMPARE)); then
    if ! have wg >/dev/null; then
        echo "compare: installing wireguard-tools (apt) ..." >&2
        timeout 300 apt-get install -y -qq wireguard-tools >"$TMPD/apt.log" 2>&1 \
            || { timeout 300 apt-get update -qq >>"$TMPD/apt.log" 2>&1
                 timeout 300 apt-get install -y -qq wireguard-tools >>"$TMPD/apt.log" 2>&1; } || true
        have wg >/dev/null || BT_SKIP="wireguard-tools install failed: $(tail -n 2 "$TMPD/apt.log" | tr '\n' ' ')"
    fi
    have openssl >/dev/null || QUINCY_SKIP="no openssl for the certificates"
    # cargo installs compile from source: run both in the background, bounded, in parallel.
    CARGO_JOBS=()
    if ! have cargo >/dev/null; then
        have boringtun-cli >/dev/null || BT_SKIP=${BT_SKIP:-"boringtun-cli missing and no cargo to install it"}
        { have quincy-server && have quincy-client; } >/dev/null \
            || QUINCY_SKIP=${QUINCY_SKIP:-"quincy missing and no cargo to install it"}
    else
        CARGO=$(have cargo)
        if [[ -z $BT_SKIP ]] && ! have boringtun-cli >/dev/null; then
            echo "compare: cargo install boringtun-cli (compiles, up to 15 min) ..." >&2
            timeout 900 "$CARGO" install --locked boringtun-cli >"$TMPD/cargo-bt.log" 2>&1 &
            PIDS+=($!); CARGO_JOBS+=("$!:bt")
        fi
        if [[ -z $QUINCY_SKIP ]] && ! { have quincy-server && have quincy-client; } >/dev/null; then
            echo "compare: cargo install quincy-server quincy-client (compiles, up to 15 min) ..." >&2
            CARGO_TARGET_DIR="$TMPD/quincy-target" timeout 900 "$CARGO" install --locked \
                quincy-server quincy-client >"$TMPD/cargo-quincy.log" 2>&1 &
            PIDS+=($!); CARGO_JOBS+=("$!:quincy")
        fi
        for job in "${CARGO_JOBS[@]+"${CARGO_JOBS[@]}"}"; do
            rc=0; wait "${job%%:*}" || rc=$?
            case ${job#*:} in
                bt) ((rc == 0)) || BT_SKIP="cargo install boringtun-cli failed (exit $rc): $(grep -m1 '^error' "$TMPD/cargo-bt.log" || tail -n 1 "$TMPD/cargo-bt.log")" ;;
                quincy) ((rc == 0)) || QUINCY_SKIP="cargo install quincy failed (exit $rc): $(grep -m1 '^error' "$TMPD/cargo-quincy.log" || tail -n 1 "$TMPD/cargo-quincy.log")" ;;
            esac
        done
        PIDS=()  # only the (now finished) cargo jobs were in it: forget their pids
        rm -rf "$TMPD/quincy-target"
    fi
    [[ -n $BT_SKIP ]] || have boringtun-cli >/dev/null || BT_SKIP="boringtun-cli not found after install"
    [[ -n $QUINCY_SKIP ]] || { have quincy-server && have quincy-client; } >/dev/null \
        || QUINCY_SKIP="quincy-server/quincy-client not found after install"
    [[ -z $BT_SKIP ]] || echo "compare: skipping boringtun: $BT_SKIP" >&2
    [[ -z $QUINCY_SKIP ]] || echo "compare: skipping quincy: $QUINCY_SKIP" >&2
fi

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
    ROWS+=("$(printf '%-9s %-5s %7s %8s %7s %9s %9s %8s %9s %10s' \
        "$label" "$dir" "$streams" "$g" "$r" "$snd" "$rcv" "$busy" "$tun" "$cpg")")
}

# run_ping KEY DST COUNT: RTT of COUNT probes 50 ms apart into PING[KEY] as "min avg max median
# p90" in ms (the average is at the mercy of a few probes that waited for a busy CPU)
run_ping() {
    local out
    out=$(timeout $(( $3 / 20 + 10 )) ip netns exec "$NS_A" ping -n -c "$3" -i 0.05 -W 1 "$2" \
        2>/dev/null) || true
    PING["$1"]=$(python3 -c '
import re, statistics, sys
t = sorted(float(x) for x in re.findall(r"time=([0-9.]+) ms", sys.stdin.read()))
if not t:
    print("nan nan nan nan nan")
else:
    p90 = t[min(len(t) - 1, int(0.9 * len(t)))]
    print(f"{t[0]:.3f} {statistics.fmean(t):.3f} {t[-1]:.3f} {statistics.median(t):.3f} {p90:.3f}")
' <<<"$out")
}
declare -A PING

# run_loaded_ping LABEL DST: RTT while one iperf3 TCP stream a->b runs through the same path
# (probes during the middle of the transfer, bounded by the iperf3 duration)
run_loaded_ping() {
    local count=$(( (DURATION * 1000 - 1000) / 50 ))
    (( count > PING_COUNT * 4 )) && count=$(( PING_COUNT * 4 ))
    (( count < 5 )) && count=5
    timeout $(( DURATION + 20 )) ip netns exec "$NS_A" iperf3 -c "$2" -t "$DURATION" -f g \
        >"$TMPD/load-$1.txt" 2>&1 &
    local load=$!
    PIDS+=("$load")
    sleep 0.5
    run_ping "$1/load" "$2" "$count"
    wait "$load" 2>/dev/null || true
    LOADG["$1"]=$(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Gbits/sec") g = $i }
        END { print (g == "" ? "nan" : g) }' "$TMPD/load-$1.txt")
}
declare -A LOADG

measure() {  # measure LABEL DST
    run_ping "$1" "$2" "$PING_COUNT"
    run_loaded_ping "$1" "$2"
    ((PING_ONLY)) && return 0
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
tunnel_up() {  # tunnel_up [BINARY]
    local bin=${1:-${QUICTUN_BIN:-$(dirname "$0")/../target/release/quictun}}
    if [[ ! -x "$bin" ]]; then
        echo "tunnel: no quictun binary (cargo build --release --bin quictun, or set QUICTUN_BIN)" >&2
        return 1
    fi
    local carriage=${CARRIAGE:-datagram}
    # A fresh directory per tunnel: several builds may be measured in one run
    local d; d=$(mktemp -d "$TMPD/quictun.XXXXXX")
    "$bin" cert --out "$d" --ca >/dev/null
    "$bin" cert --out "$d" --name server --ip "$B4" >/dev/null
    "$bin" cert --out "$d" --name client >/dev/null
    printf '%s\n' '[interface]' 'name = "qtb0"' "address = [\"$TUN_B4/24\"]" \
        "listen = \"$B4:4433\"" '[tls]' 'cert = "server.crt"' 'key = "server.key"' \
        'ca = "ca.crt"' '[[peer]]' 'name = "client"' "allowed_ips = [\"$TUN_A4/32\"]" \
        "carriage = \"$carriage\"" '[control]' "socket = \"$d/server.sock\"" \
        '[log]' 'level = "warn"' >"$d/server.toml"
    printf '%s\n' '[interface]' 'name = "qtb0"' "address = [\"$TUN_A4/24\"]" \
        '[tls]' 'cert = "client.crt"' 'key = "client.key"' 'ca = "ca.crt"' \
        '[[peer]]' 'name = "server"' "endpoint = \"$B4:4433\"" \
        "allowed_ips = [\"$TUN_B4/32\"]" "carriage = \"$carriage\"" \
        '[control]' "socket = \"$d/client.sock\"" '[log]' 'level = "warn"' \
        >"$d/client.toml"
    # quictun takes QUICTUN_* environment variables as config keys: keep the script's out.
    ip netns exec "$NS_B" env -u QUICTUN_BIN -u QUICTUN_BINS "$bin" up -c "$d/server.toml" &
    PIDS+=($!); TUNNEL_PIDS+=($!)
    ip netns exec "$NS_A" env -u QUICTUN_BIN -u QUICTUN_BINS "$bin" up -c "$d/client.toml" &
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

# Stop the daemons of the tunnel under test (by pid, bounded), so the next one runs alone.
tunnel_down() {
    local pid keep=() p
    for pid in "${TUNNEL_PIDS[@]+"${TUNNEL_PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${TUNNEL_PIDS[@]+"${TUNNEL_PIDS[@]}"}"; do
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        [[ " ${TUNNEL_PIDS[*]+"${TUNNEL_PIDS[*]}"} " == *" $p "* ]] || keep+=("$p")
    done
    PIDS=("${keep[@]}")
    TUNNEL_PIDS=()
}

wait_ping() {  # wait_ping DST NAME: up to ~10 s for the first ping through a tunnel
    local i
    for i in $(seq 1 50); do
        if ip netns exec "$NS_A" ping -n -c1 -W1 "$1" >/dev/null 2>&1; then
            echo "$2 up after $i probe(s)" >&2; return 0
        fi
        sleep 0.2
    done
    echo "$2 did not come up" >&2
    return 1
}

# WireGuard, userspace boringtun-cli in the foreground (--disable-drop-privileges, i.e.
# WG_SUDO: keep root), configured with wg; MTU 1420 as wg-quick would set. A = 198.19.1.1, B = 198.19.1.2.
BT_A4=198.19.1.1
BT_B4=198.19.1.2
boringtun_up() {
    local bt wg; bt=$(have boringtun-cli); wg=$(have wg)
    (umask 077; "$wg" genkey >"$TMPD/wg-a.key"; "$wg" genkey >"$TMPD/wg-b.key")
    local pub_a pub_b
    pub_a=$("$wg" pubkey <"$TMPD/wg-a.key"); pub_b=$("$wg" pubkey <"$TMPD/wg-b.key")
    local ns ifn
    for ns in A B; do
        if [[ $ns == A ]]; then ifn=$WG_IF_A; else ifn=$WG_IF_B; fi
        local nsname="NS_$ns"
        ip netns exec "${!nsname}" "$bt" --foreground --disable-drop-privileges "$ifn" \
            >"$TMPD/boringtun-$ns.log" 2>&1 &
        PIDS+=($!); TUNNEL_PIDS+=($!)
    done
    local i
    for i in $(seq 1 50); do
        [[ -S /var/run/wireguard/$WG_IF_A.sock && -S /var/run/wireguard/$WG_IF_B.sock ]] && break
        sleep 0.1
    done
    timeout 10 ip netns exec "$NS_A" "$wg" set "$WG_IF_A" private-key "$TMPD/wg-a.key" \
        listen-port 51820 peer "$pub_b" endpoint "$B4:51821" allowed-ips "$BT_B4/32" || return 1
    timeout 10 ip netns exec "$NS_B" "$wg" set "$WG_IF_B" private-key "$TMPD/wg-b.key" \
        listen-port 51821 peer "$pub_a" endpoint "$A4:51820" allowed-ips "$BT_A4/32" || return 1
    ip -n "$NS_A" addr add "$BT_A4/24" dev "$WG_IF_A"
    ip -n "$NS_B" addr add "$BT_B4/24" dev "$WG_IF_B"
    ip -n "$NS_A" link set "$WG_IF_A" mtu 1420 up
    ip -n "$NS_B" link set "$WG_IF_B" mtu 1420 up
    wait_ping "$BT_B4" "boringtun"
}

# quincy: quincy-server in B (tunnel network 198.19.2.0/24, server 198.19.2.1), quincy-client
# in A (gets 198.19.2.x from the server); mutual TLS with self-signed openssl certificates
# (server: IP SAN 198.18.0.2; client: pinned by SHA-256 fingerprint in the users file).
# Otherwise quincy's defaults (MTU 1400, cubic, hybrid key exchange).
QUINCY_B4=198.19.2.1
quincy_up() {
    local srv cli; srv=$(have quincy-server); cli=$(have quincy-client)
    local d=$TMPD/quincy; mkdir -p "$d"
    local who
    for who in server client; do
        local ext=(-addext basicConstraints=critical,CA:FALSE)
        if [[ $who == server ]]; then
            ext+=(-addext "subjectAltName=IP:$B4" -addext extendedKeyUsage=serverAuth)
        else
            ext+=(-addext extendedKeyUsage=clientAuth)
        fi
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -keyout "$d/$who.key" -out "$d/$who.crt" -subj "/CN=qtbench-$who" "${ext[@]}" \
            >/dev/null 2>&1 || { echo "quincy: openssl req failed" >&2; return 1; }
    done
    local fp; fp=$(openssl x509 -in "$d/client.crt" -outform DER | sha256sum | cut -d' ' -f1)
    printf '%s\n' '[users.bench]' "authorized_certs = [\"sha256:$fp\"]" >"$d/users.toml"
    printf '%s\n' 'name = "qtbench"' "bind_address = \"$B4\"" 'bind_port = 55555' \
        "tunnel_network = \"$QUINCY_B4/24\"" "users_file = \"$d/users.toml\"" \
        '[protocol]' 'mode = "tls"' "certificate_file = \"$d/server.crt\"" \
        "certificate_key_file = \"$d/server.key\"" '[log]' 'level = "warn"' >"$d/server.toml"
    printf '%s\n' "connection_string = \"$B4:55555\"" '[protocol]' 'mode = "tls"' \
        "trusted_certificate_paths = [\"$d/server.crt\"]" \
        "client_certificate_file = \"$d/client.crt\"" \
        "client_certificate_key_file = \"$d/client.key\"" '[log]' 'level = "warn"' \
        >"$d/client.toml"
    ip netns exec "$NS_B" "$srv" --config-path "$d/server.toml" >"$d/server.log" 2>&1 &
    PIDS+=($!); TUNNEL_PIDS+=($!)
    sleep 0.5
    ip netns exec "$NS_A" "$cli" --config-path "$d/client.toml" >"$d/client.log" 2>&1 &
    PIDS+=($!); TUNNEL_PIDS+=($!)
    wait_ping "$QUINCY_B4" "quincy" || { tail -n 3 "$d/server.log" "$d/client.log" >&2; return 1; }
}
# ---------------------------------------------------------------------------------------------

echo "bench: ${DURATION}s per iperf3 run, $(nproc) CPUs, kernel $(uname -r)"
measure bare "$B4"
LABELS=(bare)
if tunnel_up; then
    measure quictun "$TUN_B4"; LABELS+=(quictun)
fi
tunnel_down
for spec in ${QUICTUN_BINS:-}; do
    label=${spec%%=*}; bin=${spec#*=}
    if [[ -z $label || $label == "$spec" || ! -x $bin ]]; then
        echo "QUICTUN_BINS: skipping '$spec' (want label=executable)" >&2; continue
    fi
    if tunnel_up "$bin"; then
        measure "$label" "$TUN_B4"; LABELS+=("$label")
    fi
    tunnel_down
done
if ((COMPARE)); then
    if [[ -z $BT_SKIP ]]; then
        if boringtun_up; then
            measure boringtun "$BT_B4"; LABELS+=(boringtun)
        else
            echo "boringtun: skipped (see $TMPD/boringtun-*.log)" >&2
            tail -n 3 "$TMPD"/boringtun-*.log >&2 || true
        fi
        tunnel_down
    fi
    if [[ -z $QUINCY_SKIP ]]; then
        if quincy_up; then
            measure quincy "$QUINCY_B4"; LABELS+=(quincy)
        else
            echo "quincy: skipped" >&2
        fi
        tunnel_down
    fi
fi

echo
printf '%-9s %-5s %7s %8s %7s %9s %9s %8s %9s %10s\n' \
    path dir streams Gbit/s retrans sndCPU% rcvCPU% sysCPU% daemon% cores/Gbit
for row in "${ROWS[@]}"; do echo "$row"; done
echo
echo "ping RTT, ms (idle: $PING_COUNT probes; loaded: during one iperf3 stream a->b):"
printf '  %-10s %8s %8s %8s %8s %8s   %8s %8s %8s %8s %8s %12s\n' path idle-min avg median p90 max \
    load-min avg median p90 max "load Gbit/s"
for l in "${LABELS[@]}"; do
    read -r mi av ma me p9 <<<"${PING[$l]}"
    read -r lmi lav lma lme lp9 <<<"${PING[$l/load]:-nan nan nan nan nan}"
    printf '  %-10s %8s %8s %8s %8s %8s   %8s %8s %8s %8s %8s %12s\n' "$l" "$mi" "$av" "$me" "$p9" "$ma" \
        "$lmi" "$lav" "$lme" "$lp9" "$lma" "${LOADG[$l]:-nan}"
done
echo "(sndCPU/rcvCPU: iperf3 sender/receiver process CPU, % of one core; sysCPU: whole machine,"
echo " % of all cores, includes other tenants; daemon: tunnel processes from /proc/<pid>/stat,"
echo " % of one core; cores/Gbit = (sndCPU+rcvCPU+daemon)/100 per Gbit/s)"
if ((COMPARE)); then
    [[ -z $BT_SKIP ]] || echo "boringtun skipped: $BT_SKIP"
    [[ -z $QUINCY_SKIP ]] || echo "quincy skipped: $QUINCY_SKIP"
fi

# Ratios of every tunnel to bare veth and (for the others) to quictun.
ratio_block() {  # ratio_block REF
    local ref=$1 l k
    for l in "${LABELS[@]}"; do
        [[ $l != bare && $l != "$ref" ]] || continue
        echo
        echo "$l / $ref:"
        for k in "a->b/1" "b->a/1" "a->b/4" "b->a/4"; do
            ((PING_ONLY)) && break
            python3 -c "
t, b = float('${GBPS[$l/$k]:-nan}'), float('${GBPS[$ref/$k]:-nan}')
tc, bc = float('${CPUPG[$l/$k]:-nan}'), float('${CPUPG[$ref/$k]:-nan}')
print(f'  $k: throughput {t/b:.2f}x, cores/Gbit {tc/bc:.2f}x')" 2>/dev/null || echo "  $k: n/a"
        done
        python3 -c "
t, b = float('${PING[$l]:-nan nan nan nan}'.split()[3]), float('${PING[$ref]:-nan nan nan nan}'.split()[3])
lt, lb = float('${PING[$l/load]:-nan nan nan nan}'.split()[3]), float('${PING[$ref/load]:-nan nan nan nan}'.split()[3])
print(f'  ping RTT median: idle {t/b:.2f}x, loaded {lt/lb:.2f}x')" 2>/dev/null || echo "  ping RTT: n/a"
    done
}
ratio_block bare
if [[ " ${LABELS[*]} " == *" quictun "* ]]; then ratio_block quictun; fi
