#!/usr/bin/env bash
# Store benchmarks for issue 3, side by side in one run on this machine (not a timed test):
#   1. hashing a 1 GiB file: kiln hash vs openssl dgst -sha256
#   2. archiving and extracting one 1 GiB file: kiln vs GNU tar vs bsdtar
#   3. archiving and extracting 20,000 files of 4 KiB: kiln vs GNU tar vs bsdtar
#   4. a second kiln hash of an unchanged 100,000-file tree (stat cache)
# Every case runs RUNS times (default 5), tools interleaved (the order rotates every round), and
# reports the median wall time. Before each timed run, outside the timing: `sync`, then (as root)
# the page cache is dropped and the run's input read back into it, so every run starts with the
# same memory state (without this, 1 GiB runs swung between 0.3 s and 3 s with the reclaim of
# earlier runs' pages) and every tool reads its input from memory. Each run writes to a fresh
# output path; outputs are deleted only after a whole case (this disk is mounted with `discard`:
# blocks freed by a deletion are reused only once discarded, which made runs after an `rm -rf` of
# 20,000 files 20x slower).
#
# Usage: benchmarks/store.sh            (builds kiln with `swift build -c release --static-swift-stdlib`, as shipped)
#        KILN=/path/to/kiln RUNS=7 WORK=/tmp/x benchmarks/store.sh
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
WORK=${WORK:-/tmp/kiln-bench-store}
if [ -z "${KILN:-}" ]; then
  SCRATCH=${SCRATCH:-$ROOT/.build-store-release}
  swift build -c release --static-swift-stdlib --product kiln --package-path "$ROOT" --scratch-path "$SCRATCH" >&2
  KILN="$SCRATCH/release/kiln"
fi
GNUTAR=$(command -v tar)
BSDTAR=$(command -v bsdtar)
OPENSSL=$(command -v openssl)

rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"

now() { date +%s%N; }
# median of the numbers on stdin
median() { sort -g | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

declare -A SAMPLES
DROP=0
if [ -w /proc/sys/vm/drop_caches ]; then DROP=1; else echo "note: not root, page cache not dropped between runs" >&2; fi
# time_it NAME PREP CMD: runs PREP (untimed), then times CMD; appends seconds to SAMPLES[NAME].
time_it() {
  local name=$1 prep=$2 cmd=$3
  sync
  if [ "$DROP" = 1 ]; then echo 3 > /proc/sys/vm/drop_caches; fi
  # The tools themselves (binaries and shared libraries) back in memory too.
  "$KILN" --version > /dev/null; "$GNUTAR" --version > /dev/null; "$BSDTAR" --version > /dev/null; "$OPENSSL" version > /dev/null
  eval "$prep"
  local t0 t1
  t0=$(now)
  eval "$cmd" > /dev/null
  t1=$(now)
  SAMPLES[$name]+="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }') "
}
med() { echo "${SAMPLES[$1]}" | tr ' ' '\n' | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "== inputs" >&2
mkdir -p big small
head -c 1073741824 /dev/urandom > big/big.bin
for d in $(seq -w 1 100); do
  mkdir -p "small/d$d"
  for f in $(seq -w 1 200); do printf '%s' "$d$f" > "small/d$d/f$f"; done
done
# Pad every small file to 4 KiB of distinct bytes.
python3 - <<'PY'
import os
for d in sorted(os.listdir("small")):
    for f in sorted(os.listdir(os.path.join("small", d))):
        p = os.path.join("small", d, f)
        head = open(p, "rb").read()
        open(p, "wb").write((head * 1000)[:4096])
PY
python3 - <<'PY'
import os
os.makedirs("tree", exist_ok=True)
for d in range(1000):
    dd = os.path.join("tree", "d%03d" % d)
    os.makedirs(dd, exist_ok=True)
    for f in range(100):
        with open(os.path.join(dd, "f%02d" % f), "w") as fh:
            fh.write("%d/%d\n" % (d, f))
PY
cat big/big.bin > /dev/null
find small tree -type f -exec cat {} + > /dev/null
# Reference archives every extractor reads (kiln's own, directory-first order).
"$KILN" archive big/big.bin -o big.tar
"$KILN" archive small -o small.tar
sync

# rounds CASE WARM "NAME CMD" ...: RUNS rounds; in round i the tools start at position i
# (rotation). WARM reads the case's input into the page cache. In CMD, OUT is a fresh output path.
rounds() {
  local case=$1 warm=$2; shift 2
  local tools=("$@") n=$# i j k
  for i in $(seq 0 $((RUNS - 1))); do
    for j in $(seq 0 $((n - 1))); do
      k=$(( (i + j) % n ))
      local name=${tools[$k]%% *} cmd=${tools[$k]#* }
      local out="$WORK/out/$case.$name.$i"
      time_it "$name-$case" "mkdir -p '$WORK/out'; $warm" "${cmd//OUT/$out}"
    done
  done
  rm -rf "$WORK/out"
  sync
  sleep 2
}

echo "== 1. hash 1 GiB" >&2
rounds hash "cat big/big.bin > /dev/null" "openssl $OPENSSL dgst -sha256 big/big.bin" "kiln $KILN hash --no-stat-cache big/big.bin"

echo "== 2. archive and extract 1 GiB" >&2
rounds c1 "cat big/big.bin > /dev/null" "gnutar $GNUTAR -cf OUT -C big big.bin" "bsdtar $BSDTAR -cf OUT -C big big.bin" "kiln $KILN archive big/big.bin -o OUT"
rounds x1 "cat big.tar > /dev/null" "gnutar mkdir OUT && $GNUTAR -xf big.tar -C OUT" "bsdtar mkdir OUT && $BSDTAR -xf big.tar -C OUT" "kiln $KILN extract big.tar -C OUT 2>/dev/null"

echo "== 3. archive and extract 20,000 files of 4 KiB" >&2
rounds c2 "find small -type f -exec cat {} + > /dev/null" "gnutar $GNUTAR -cf OUT -C small ." "bsdtar $BSDTAR -cf OUT -C small ." "kiln $KILN archive small -o OUT"
rounds x2 "cat small.tar > /dev/null" "gnutar mkdir OUT && $GNUTAR -xf small.tar -C OUT" "bsdtar mkdir OUT && $BSDTAR -xf small.tar -C OUT" "kiln $KILN extract small.tar -C OUT 2>/dev/null"

echo "== 4. second kiln hash of an unchanged 100,000-file tree" >&2
sleep 1  # older than the racy-clean window, as any tree not being written is
"$KILN" hash --cache cache tree > first.txt
# Warm: the tree's inodes and the stat cache in memory (a second hash right after the first).
for i in $(seq "$RUNS"); do
  time_it kiln-rehash "find tree -printf '%s' > /dev/null; cat cache/statcache > /dev/null" "$KILN hash --cache cache tree"
done
"$KILN" hash --cache cache tree | cmp - first.txt

GB=1.073741824
o=$(med openssl-hash); k=$(med kiln-hash)
echo
echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "kiln: $KILN ($("$KILN" --version)); runs per case: $RUNS; medians in seconds"
echo
echo "| case | kiln | GNU tar | bsdtar | openssl | kiln ÷ fastest other |"
echo "|---|---|---|---|---|---|"
echo "| hash 1 GiB | $k ($(awk -v g=$GB -v t=$k 'BEGIN{printf "%.2f", g/t}') GB/s) | | | $o ($(awk -v g=$GB -v t=$o 'BEGIN{printf "%.2f", g/t}') GB/s) | $(ratio "$k" "$o") (throughput $(ratio "$o" "$k")× openssl's) |"
for c in c1 x1 c2 x2; do
  case $c in
    c1) label="archive 1 GiB file" ;;
    x1) label="extract 1 GiB file" ;;
    c2) label="archive 20,000 × 4 KiB" ;;
    x2) label="extract 20,000 × 4 KiB" ;;
  esac
  g=$(med gnutar-$c); b=$(med bsdtar-$c); kk=$(med kiln-$c)
  best=$(printf '%s\n%s\n' "$g" "$b" | sort -g | head -1)
  echo "| $label | $kk | $g | $b | | $(ratio "$kk" "$best") |"
done
r=$(med kiln-rehash)
echo "| second hash, 100,000 unchanged files | $r | | | | target ≤ 1 s |"
echo
echo "samples:"
for n in "${!SAMPLES[@]}"; do echo "  $n: ${SAMPLES[$n]}"; done | sort
