#!/bin/sh
# Image benchmark (issue 6): starting a command on an already-extracted image beside starting it on
# the host's toolchain, interleaved round by round:
#   kiln sandbox run --image bb -- /bin/true     (busybox-static image: bin/busybox + applet links)
#   kiln sandbox run -- /bin/true                (the host's /usr, read-only)
# Prints the medians and the ratio image / host (target: at most 1.1).
#   RUNS=200 benchmarks/image.sh        KILN=path/to/kiln benchmarks/image.sh (skip the release build)
#   IMAGE=debian-py CACHE=/path/to/cache benchmarks/image.sh   (an image already in that cache instead)
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-200}

scripts/install-dependencies
if [ -z "${KILN:-}" ]; then
    # A release build, the Swift runtime linked statically as the quick start builds kiln.
    swift build -c release --static-swift-stdlib --product kiln >/dev/null
    KILN=$PWD/.build/release/kiln
fi
work=$(mktemp -d /tmp/kiln-bench-image-XXXXXX)
trap 'rm -rf "$work"' EXIT

cache=${CACHE:-$work/cache}
if [ -n "${IMAGE:-}" ]; then
    ref=$IMAGE   # an image already in $CACHE, such as one from kiln image build
else
    mkdir -p "$work/root/bin" "$work/root/etc"
    cp /bin/busybox "$work/root/bin/busybox"
    for applet in sh true ls cat echo; do ln -s busybox "$work/root/bin/$applet"; done
    ref=$("$KILN" image import "$work/root" --name bench-busybox --cache "$cache" 2>/dev/null)
fi
# Extract it once (first use), so the rounds measure starting a stage, not extracting.
"$KILN" sandbox run --cache "$cache" --image "$ref" -- /bin/true

python3 - "$KILN" "$cache" "$ref" "$runs" <<'PY'
import statistics, subprocess, sys, time
kiln, cache, ref, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
commands = {
    "image": [kiln, "sandbox", "run", "--cache", cache, "--image", ref, "--", "/bin/true"],
    "host": [kiln, "sandbox", "run", "--", "/bin/true"],
}
times = {name: [] for name in commands}
for name, argv in commands.items():  # warm-up
    subprocess.run(argv, check=True)
for _ in range(runs):
    for name, argv in commands.items():
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        times[name].append((time.perf_counter() - start) * 1000)
image, host = statistics.median(times["image"]), statistics.median(times["host"])
print(f"rounds: {runs} (interleaved), image {ref}")
print("| start /bin/true | median (ms) | p10 (ms) | p90 (ms) |")
print("|---|---|---|---|")
for name in commands:
    q = statistics.quantiles(times[name], n=10)
    print(f"| {name} | {statistics.median(times[name]):.2f} | {q[0]:.2f} | {q[-1]:.2f} |")
paired = statistics.median(i / h for i, h in zip(times["image"], times["host"]))
print(f"image / host: {image / host:.3f} (target <= 1.1); median of the per-round ratios: {paired:.3f}")
PY
