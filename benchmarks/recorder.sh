#!/usr/bin/env bash
# Recorder benchmarks for issue 5, side by side in one run on this machine (not a timed test):
#   1. kiln export of a run whose artifacts total 1 GiB vs `tar -cf` of the same blob files;
#      kiln import of that bundle into an empty cache vs `tar -xf` of the same bundle.
#   2. what recording adds to a no-op `kiln run` (100 cached stages): the summary's
#      recordSeconds, in a plain folder and in a git work tree (the dirty check spawns git).
# Each case runs RUNS times (default 5), kiln and tar alternating which goes first; medians are
# reported, and every sample is printed. Before each timed run: sync, drop the page cache (as root), then read the input back
# in, so both tools start from memory (the method of benchmarks/store.sh).
#
# Usage: benchmarks/recorder.sh        (builds kiln with `swift build -c release --static-swift-stdlib`)
#        KILN=/path/to/kiln RUNS=7 WORK=/tmp/x benchmarks/recorder.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp/kiln-bench-recorder}
if [ -z "${KILN:-}" ]; then
  SCRATCH=${SCRATCH:-$ROOT/.build-store-release}
  swift build -c release --static-swift-stdlib --product kiln --package-path "$ROOT" --scratch-path "$SCRATCH" >&2
  KILN="$SCRATCH/release/kiln"
fi
TAR=$(command -v tar)
rm -rf "$WORK"
mkdir -p "$WORK/ws/recipes"
cd "$WORK"

now() { date +%s%N; }
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.4f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
DROP=0
[ -w /proc/sys/vm/drop_caches ] && DROP=1
declare -A SAMPLES
# timed NAME WARM CMD
timed() {
  sync
  [ "$DROP" = 1 ] && echo 3 > /proc/sys/vm/drop_caches
  "$KILN" --version > /dev/null; "$TAR" --version > /dev/null
  eval "$2"
  local t0 t1
  t0=$(now); eval "$3" > /dev/null; t1=$(now)
  SAMPLES[$1]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }') "
}
med() { echo "${SAMPLES[$1]}" | tr ' ' '\n' | grep . | median; }

echo "== a run with a 1 GiB artifact" >&2
cat > ws/recipes/big.yaml <<'YAML'
kiln: 1
stages:
  big:
    run: head -c 1073741824 /dev/urandom > big.bin
    outputs: [big.bin]
YAML
"$KILN" run --workspace ws > /dev/null
BLOBS=$(cd ws/cache/cas && find . -type f | sort | tr "\n" " ")

echo "== export and import, $RUNS rounds" >&2
for i in $(seq 1 "$RUNS"); do
  first=kiln; [ $((i % 2)) = 0 ] && first=tar
  for tool in $first $([ $first = kiln ] && echo tar || echo kiln); do
    if [ $tool = kiln ]; then
      timed kiln-export "cat ws/cache/cas/sha256/*/* > /dev/null" "'$KILN' export latest -o '$WORK/k$i.kiln' --cache ws/cache"
    else
      timed tar-export "cat ws/cache/cas/sha256/*/* > /dev/null" "(cd ws/cache/cas && '$TAR' -cf '$WORK/t$i.tar' $BLOBS)"
    fi
  done
  for tool in $first $([ $first = kiln ] && echo tar || echo kiln); do
    if [ $tool = kiln ]; then
      timed kiln-import "cat '$WORK/k$i.kiln' > /dev/null" "'$KILN' import '$WORK/k$i.kiln' --cache '$WORK/ki$i'"
    else
      timed tar-import "mkdir -p '$WORK/ti$i'; cat '$WORK/k$i.kiln' > /dev/null" "'$TAR' -xf '$WORK/k$i.kiln' -C '$WORK/ti$i'"
    fi
  done
done
# Deleted only now: this disk is mounted with `discard`, and space freed during the rounds stalled
# whichever tool ran next (a 3 s tar -c beside its usual 0.8 s).
rm -rf "$WORK"/k*.kiln "$WORK"/t*.tar "$WORK"/ki* "$WORK"/ti*
sync
for k in kiln-export tar-export kiln-import tar-import; do echo "samples $k: ${SAMPLES[$k]}" >&2; done
ke=$(med kiln-export); te=$(med tar-export); ki=$(med kiln-import); ti=$(med tar-import)
echo "| 1 GiB run | kiln median (s) | tar median (s) | kiln / tar |"
echo "|---|---|---|---|"
echo "| export (kiln export vs tar -cf of the blobs) | $ke | $te | $(ratio "$ke" "$te") |"
echo "| import (kiln import, verified, vs tar -xf) | $ki | $ti | $(ratio "$ki" "$ti") |"
rm -rf ws

echo "== recording a no-op run of 100 cached stages" >&2
for kind in plain git; do
  mkdir -p "$kind/recipes" && (cd "$kind" && echo x > in.txt && python3 - <<'PY'
with open("recipes/chain.yaml", "w") as f:
    f.write("kiln: 1\nstages:\n")
    prev = "in.txt"
    for i in range(100):
        f.write(f"  s{i}:\n    run: cat {prev} > o{i}.txt\n    inputs: [{prev}]\n    outputs: [o{i}.txt]\n")
        prev = f"o{i}.txt"
PY
  )
  if [ $kind = git ]; then (cd git && git init -q && printf 'cache/\no*.txt\n' > .gitignore && git add -A && git -c user.email=b@e -c user.name=bench commit -qm bench); fi
  "$KILN" run --workspace "$kind" > /dev/null
  rec=() total=()
  for i in $(seq 1 $((RUNS * 4))); do
    line=$("$KILN" run --workspace "$kind" --json | tail -1)
    rec+=("$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["recordSeconds"])')")
    total+=("$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["seconds"])')")
  done
  r=$(printf '%s\n' "${rec[@]}" | median); t=$(printf '%s\n' "${total[@]}" | median)
  echo "Recording a no-op run of 100 cached stages ($kind folder): median $(awk -v a="$r" 'BEGIN{printf "%.1f", a*1000}') ms for the record, after $(awk -v a="$t" 'BEGIN{printf "%.1f", a*1000}') ms of stages ($((RUNS * 4)) runs)."
done
