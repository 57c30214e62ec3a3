#!/usr/bin/env bash
# XMPP benchmark: Convene against Prosody 0.12 (Debian), same workloads, one run.
# Each workload gets a fresh server process on loopback; see docs/benchmarks.md.
# Extra arguments go to the load generator (e.g. --servers prosody, --logins 5000).
# Environment: CONVENE_BIN (measure that binary), BENCH_NICE (scheduling priority).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v prosody >/dev/null; then
    echo "installing Prosody from Debian..." >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null
fi
# The Debian package starts a system instance; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet prosody 2>/dev/null; then
    echo "note: a system Prosody is running; the benchmark starts its own instances" >&2
fi

# CONVENE_BIN: measure an already built binary instead of building this checkout's.
if [ -n "${CONVENE_BIN:-}" ]; then
    cargo build --release -p convene-bench-xmpp
else
    cargo build --release -p convene -p convene-bench-xmpp
    CONVENE_BIN=target/release/convene
fi

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "Prosody: $(dpkg-query -W -f '${Version}' prosody 2>/dev/null || prosodyctl about 2>/dev/null | head -1)"
if [ "$CONVENE_BIN" = target/release/convene ]; then
    echo "Convene: this checkout, $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
else
    echo "Convene: $CONVENE_BIN"
fi
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
# BENCH_NICE=-10 (as root) lets the servers and the load generator, which inherit it, run
# ahead of other work on a shared machine.
exec nice -n "${BENCH_NICE:-0}" target/release/convene-bench-xmpp --convene "$CONVENE_BIN" "$@"
