#!/bin/sh
# Sandbox benchmarks: kiln beside bubblewrap doing the same work, in one run.
# Prints a Markdown table of medians and ratios (kiln / bwrap; lower is better).
#   RUNS=50 benchmarks/sandbox.sh
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-50}

scripts/install-dependencies
for tool in bwrap:bubblewrap hyperfine:hyperfine; do
    command -v "${tool%%:*}" >/dev/null 2>&1 && continue
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq "${tool##*:}" >/dev/null; else
        echo "benchmarks: install ${tool##*:} (sudo apt-get install ${tool##*:})" >&2; exit 1; fi
done

# Release builds, the Swift runtime linked statically as the quick start builds kiln.
swift build -c release --static-swift-stdlib --product kiln >/dev/null
swift build -c release --static-swift-stdlib --product sandbox-benchmark >/dev/null
kiln=$PWD/.build/release/kiln
api=$PWD/.build/release/sandbox-benchmark

work=$(mktemp -d /tmp/kiln-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"

bwrap_base="bwrap --unshare-all --die-with-parent --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/sbin /sbin --symlink usr/lib /lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev --tmpfs /tmp"

binds() {  # binds OPTION COUNT: COUNT read-only binds of one directory
    i=0
    while [ "$i" -lt "$2" ]; do printf ' %s %s /work/d%d' "$1" "$work/src" "$i"; i=$((i + 1)); done
}

echo "| measurement | kiln median (ms) | bwrap median (ms) | kiln / bwrap |"
echo "|---|---|---|---|"

hyperfine -N -w 10 -r "$runs" --export-json "$work/spawn.json" \
    "$kiln sandbox run -- /bin/true" "$bwrap_base /bin/true" >/dev/null 2>&1
api_line=$("$api" spawn "$runs")

python3 - "$work/spawn.json" "$api_line" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
kiln, bwrap = (r["median"] * 1000 for r in results)
print(f"| `kiln sandbox run -- /bin/true` (whole process) | {kiln:.2f} | {bwrap:.2f} | {kiln / bwrap:.2f} |")
api = float(dict(kv.split("=") for kv in sys.argv[2].split()[1:])["median_ms"])
print(f"| `Sandbox.run` of /bin/true inside one process (API) | {api:.2f} | {bwrap:.2f} (whole process) | {api / bwrap:.2f} |")
PY

for count in 10 100 1000; do
    r=$runs
    [ "$count" -ge 1000 ] && r=5
    hyperfine -N -w 1 -r "$r" --export-json "$work/binds$count.json" \
        "$kiln sandbox run$(binds --ro-bind "$count") -- /bin/true" \
        "$bwrap_base$(binds --ro-bind "$count") /bin/true" >/dev/null 2>&1
    api_line=$("$api" binds "$count" "$r")
    python3 - "$work/binds$count.json" "$api_line" "$count" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
kiln, bwrap = (r["median"] * 1000 for r in results)
count = sys.argv[3]
print(f"| {count} read-only binds (whole process) | {kiln:.2f} | {bwrap:.2f} | {kiln / bwrap:.3f} |")
api = float(dict(kv.split("=") for kv in sys.argv[2].split()[1:])["median_ms"])
print(f"| {count} read-only binds (API) | {api:.2f} | {bwrap:.2f} (whole process) | {api / bwrap:.3f} |")
PY
done
