#!/bin/sh
# Sandbox benchmarks: kiln beside bubblewrap doing the same work, interleaved round by round in
# one run (see Sources/sandbox-benchmark). Prints a Markdown table of medians and ratios
# (kiln / bwrap: lower is better).
#   RUNS=100 benchmarks/sandbox.sh
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-100}

scripts/install-dependencies
if ! command -v bwrap >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq bubblewrap >/dev/null; else
        echo "benchmarks: install bubblewrap (sudo apt-get install bubblewrap)" >&2; exit 1; fi
fi

# Release builds, the Swift runtime linked statically as the quick start builds kiln.
swift build -c release --static-swift-stdlib --product kiln >/dev/null
swift build -c release --static-swift-stdlib --product sandbox-benchmark >/dev/null

echo "| binds | bwrap, whole process (ms) | kiln sandbox run, whole process (ms) | kiln / bwrap | Sandbox.run in one process (ms) | API / bwrap |"
echo "|---|---|---|---|---|---|"
for binds in 0 10 100 1000; do
    r=$runs
    [ "$binds" -ge 1000 ] && r=$(( runs / 10 > 5 ? runs / 10 : 5 ))
    line=$(.build/release/sandbox-benchmark "$PWD/.build/release/kiln" "$r" "$binds")
    python3 - "$line" <<'PY'
import sys
v = dict(kv.split("=") for kv in sys.argv[1].split())
print(f"| {v['binds']} | {float(v['bwrap_median_ms']):.2f} | {float(v['kiln_median_ms']):.2f} | "
      f"{float(v['kiln_over_bwrap']):.2f} | {float(v['api_median_ms']):.2f} | {float(v['api_over_bwrap']):.2f} |")
PY
done
echo
echo "Medians of interleaved runs ($runs rounds; 1000 binds: fewer). $(uname -r), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)."
