#!/usr/bin/env bash
# The QUIC core is sans-IO (ARCHITECTURE.md §1.1): no sockets, clocks or tokio outside the
# driver, the simulator, binaries (and tests). Fails listing each offending line.
set -euo pipefail
cd "$(dirname "$0")/.."
core=quic-stack/src
pattern='tokio::|std::net::UdpSocket|Instant::now|SystemTime::now|std::thread::sleep'
offenders=$(grep -rnE "$pattern" "$core" \
    --include='*.rs' \
    | grep -vE "^$core/(driver|sim|tests|bin)/|/tests\.rs:" \
    | grep -vE '^\S+:\s*//' || true)
# Unit-test modules may read the clock once to anchor virtual time.
offenders=$(printf '%s\n' "$offenders" | while IFS= read -r line; do
    [ -z "$line" ] && continue
    file=${line%%:*}
    lineno=$(printf '%s' "$line" | cut -d: -f2)
    test_start=$(grep -n '#\[cfg(test)\]' "$file" | head -1 | cut -d: -f1 || true)
    if [ -n "$test_start" ] && [ "$lineno" -gt "$test_start" ]; then continue; fi
    printf '%s\n' "$line"
done)
if [ -n "$offenders" ]; then
    echo "sans-IO rule broken: clocks, sockets or tokio outside quic-stack/src/{driver,sim,tests,bin}:" >&2
    printf '%s\n' "$offenders" >&2
    exit 1
fi
echo "sans-IO rule holds"
