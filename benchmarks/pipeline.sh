#!/bin/sh
# Pipeline benchmarks (issue 4): a no-op `kiln run` (everything cached) beside `dvc repro` on the
# same generated pipelines, kiln alone at 1,000 and 10,000 stages, kiln's overhead per cache-miss
# stage, and 8 one-second stages on -j 2. dvc is installed into a venv here, and only here.
#   RUNS=7 benchmarks/pipeline.sh
# PARTS picks some of them (default: all): noop (kiln beside dvc), miss (per-stage overhead),
# scheduler; KILN=path measures that binary instead of building one.
#   PARTS=miss benchmarks/pipeline.sh
set -eu
cd "$(dirname "$0")/.."
runs=${RUNS:-7}
parts=${PARTS:-noop miss scheduler}
scripts/install-dependencies
if [ -n "${KILN:-}" ]; then
    kiln=$KILN
else
    swift build -c release --static-swift-stdlib --product kiln >/dev/null
    kiln=$PWD/.build/release/kiln
fi

venv=${DVC_VENV:-/tmp/kiln-bench-dvc-venv}
case " $parts " in *" noop "*) need_dvc=1 ;; *) need_dvc=0 ;; esac
if [ "$need_dvc" = 1 ] && [ ! -x "$venv/bin/dvc" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q dvc
fi
work=$(mktemp -d /tmp/kiln-bench-pipeline-XXXXXX)
trap 'rm -rf "$work"' EXIT

python3 - "$kiln" "$venv/bin/dvc" "$work" "$runs" "$parts" <<'PY'
import os, statistics, subprocess, sys, time

kiln, dvc, work, runs, parts = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5].split()

def stages(shape, n):
    """(name, command, inputs, outputs) for a chain or a fan-out of trivial stages."""
    out = []
    for i in range(n):
        if shape == "chain":
            inputs = [f"out/s{i-1}.txt"] if i else []
            command = f"cat out/s{i-1}.txt > out/s{i}.txt; echo {i} >> out/s{i}.txt" if i else "echo 0 > out/s0.txt"
        else:  # fan-out: one root, every other stage reads it
            inputs = ["out/s0.txt"] if i else []
            command = f"echo {i} > out/s{i}.txt" if i else "echo root > out/s0.txt"
        out.append((f"s{i}", command, inputs, [f"out/s{i}.txt"]))
    return out

def make_workspace(name, shape, n, with_dvc):
    ws = os.path.join(work, name)
    os.makedirs(os.path.join(ws, "recipes"))
    os.makedirs(os.path.join(ws, "out"))
    with open(os.path.join(ws, "recipes", "p.yaml"), "w") as f:
        f.write("kiln: 1\nstages:\n")
        for name_, command, inputs, outputs in stages(shape, n):
            f.write(f"  {name_}:\n    run: \"{command}\"\n    inputs: {inputs}\n    outputs: {outputs}\n")
    if with_dvc:
        with open(os.path.join(ws, "dvc.yaml"), "w") as f:
            f.write("stages:\n")
            for name_, command, inputs, outputs in stages(shape, n):
                f.write(f"  {name_}:\n    cmd: {command}\n")
                if inputs: f.write(f"    deps: {inputs}\n")
                f.write(f"    outs: {outputs}\n")
        subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=ws, check=True)
        subprocess.run([dvc, "repro", "-q"], cwd=ws, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([kiln, "run", "p"], cwd=ws, check=True, stdout=subprocess.DEVNULL)
    return ws

def timed(argv, cwd):
    start = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start

if "noop" in parts:
    print("| no-op run (all cached) | stages | kiln median (s) | dvc repro median (s) | kiln / dvc |")
    print("|---|---|---|---|---|")
    for shape in ["chain", "fan-out"]:
        for n in [3, 100]:
            ws = make_workspace(f"{shape}-{n}", shape, n, True)
            k, d = [], []
            for r in range(runs):
                for tool in (["kiln", "dvc"] if r % 2 == 0 else ["dvc", "kiln"]):
                    if tool == "kiln": k.append(timed([kiln, "run", "p"], ws))
                    else: d.append(timed([dvc, "repro", "-q"], ws))
            km, dm = statistics.median(k), statistics.median(d)
            print(f"| {shape} | {n} | {km:.3f} | {dm:.3f} | {km/dm:.3f} (1/{dm/km:.0f}) |")
        for n in [1000, 10000]:
            ws = make_workspace(f"{shape}-{n}", shape, n, False)
            k = [timed([kiln, "run", "p"], ws) for _ in range(max(3, runs // 2))]
            print(f"| {shape} | {n} | {statistics.median(k):.3f} | — | — |")

if "miss" in parts:
    # Overhead of a cache-miss stage: 100 independent stages running `true`, one at a time.
    ws = make_workspace("miss-100", "fan-out", 101, False)
    t = [timed([kiln, "run", "p", "--no-cache", "-j", "1"], ws) for _ in range(max(3, runs // 2))]
    print()
    print(f"Cache miss: 101 stages of `echo` with `--no-cache -j 1`: median {statistics.median(t):.3f} s, "
          f"{statistics.median(t) / 101 * 1000:.1f} ms per stage (sandbox, hashing, archiving and storing included).")

if "scheduler" in parts:
    # The scheduler: 8 independent one-second stages on -j 2.
    ws = os.path.join(work, "sleep")
    os.makedirs(os.path.join(ws, "recipes"))
    with open(os.path.join(ws, "recipes", "p.yaml"), "w") as f:
        f.write("kiln: 1\nstages:\n")
        for i in range(8):
            f.write(f"  s{i}:\n    run: \"sleep 1; echo {i} > out/s{i}.txt\"\n    outputs: [out/s{i}.txt]\n")
    os.makedirs(os.path.join(ws, "out"))
    t = timed([kiln, "run", "p", "--no-cache", "-j", "2"], ws)
    print(f"Scheduler: 8 independent 1-second stages with -j 2 took {t:.2f} s (ideal 4 s).")
PY
