#!/usr/bin/env python3
"""Data-parallel scaling on this machine: simdiff under mpirun against PyTorch DDP (gloo), in
one run, for bench/RESULTS.md.

  python3 bench/ddp_vs_torch.py [--build build] [--rounds 3] [--steps 30] [--warmup 5]
                                [--config configs/demo.json] [--out table.md]

Each round times, in alternating order (ours first in odd rounds, PyTorch first in even ones),
the training step of --config at its global batch, as processes x threads:
  simdiff  1 x 1, 1 x 2 (OpenMP), 2 x 1 under mpirun (gradients all-reduced during the
           backward), and 2 x 1 with --no-overlap (all-reduced after it): `simdiff train`, the
           step time from metrics.jsonl (the median of the last --steps steps' intervals)
  PyTorch  1 x 1, 1 x 2, and DDP 2 x 1 over gloo: bench/torch_ddp.py (the port of
           bench/torch_model.py, the same step)
and records the 1-minute load average before each process (the table gives the medians over
rounds, and each variant's best round: the least disturbed on a shared machine). 2-rank runs
have one core each
(mpirun --bind-to core; torch_ddp.py pins its processes alike). Scaling efficiency =
t(1 x 1) / (2 t(2 x 1)); the table also gives 2 x 1 against 1 x 2, the other way to use the two
cores.

The ceiling, both engines: "2 alone x 1" is two independent one-thread processes started
together, each at half the global batch with no communication at all (the step time is the
slower one's). It is what this machine gives two processes at the time of the round: a
data-parallel 2 x 1 cannot do better, and on a machine shared with other work it can be far
from 1 x 1 / 2. "vs ceiling" = t(2 alone x 1) / t(2 x 1): what the all-reduce and the lockstep
of the ranks cost (the two processes are not pinned).

For simdiff's 2-rank runs, the all-reduce's exposed wait (after the backward) and span (first
bucket's start to last one's end) per step are those its own summary line reports.

Settings, both sides: OMP_WAIT_POLICY=passive, OPENBLAS_NUM_THREADS=1; simdiff's buckets and
DDP's bucket_cap_mb both --bucket-mb (default 4).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def run(cmd, env):
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=900)
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}")
    return r.stdout


def simdiff_step(args, cfg, tmp, ranks, threads, overlap, env):
    out = os.path.join(tmp, "run")
    cmd = [os.path.join(args.build, "simdiff"), "train", "--quiet", "--device", "cpu", "--config", cfg,
           "--out", out, "--overwrite", "--stop-after", str(args.warmup + args.steps),
           "--bucket-mb", str(args.bucket_mb)]
    if not overlap:
        cmd.append("--no-overlap")
    if ranks > 1:
        cmd = [args.mpirun, "-np", str(ranks), "--bind-to", "core", "--mca", "btl", "self,vader"] + cmd
    text = run(cmd, dict(env, OMP_NUM_THREADS=str(threads)))
    res = {"ms": simdiff_ms(out, args.steps)}
    m = re.search(r"([\d.]+) ms per step waited after the backward, ([\d.]+) ms from", text)
    if m:
        res["waited_ms"], res["span_ms"] = float(m.group(1)), float(m.group(2))
    return res


def torch_cmd(args, cfg, world, threads):
    return [args.python, os.path.join(HERE, "torch_ddp.py"), "--config", cfg, "--world", str(world),
            "--threads", str(threads), "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--bucket-mb", str(args.bucket_mb)]


def torch_ms(text):
    return json.loads([l for l in text.splitlines() if l.startswith("{")][-1])["ms_per_step"]


def torch_step(args, cfg, world, threads, env):
    return {"ms": torch_ms(run(torch_cmd(args, cfg, world, threads), env))}


def simdiff_ms(out, steps):
    with open(os.path.join(out, "metrics.jsonl")) as f:
        secs = [json.loads(line)["seconds"] for line in f]
    return statistics.median([(b - a) * 1e3 for a, b in zip(secs, secs[1:])][-steps:])


def two_alone(args, half_cfg, tmp, engine, env):
    """The ceiling: two independent 1-thread processes at half the batch, started together."""
    env = dict(env, OMP_NUM_THREADS="1")
    outs = [os.path.join(tmp, f"alone{i}") for i in range(2)]
    if engine == "simdiff":
        cmds = [[os.path.join(args.build, "simdiff"), "train", "--quiet", "--device", "cpu",
                 "--config", half_cfg, "--out", o, "--overwrite", "--stop-after",
                 str(args.warmup + args.steps)] for o in outs]
    else:
        cmds = [torch_cmd(args, half_cfg, 1, 1) for _ in outs]
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for c in cmds]
    texts = [p.communicate(timeout=900)[0] for p in procs]
    for c, p, t in zip(cmds, procs, texts):
        if p.returncode != 0:
            sys.exit(f"failed ({p.returncode}): {' '.join(c)}\n{t[-3000:]}")
    if engine == "simdiff":
        return {"ms": max(simdiff_ms(o, args.steps) for o in outs)}
    return {"ms": max(torch_ms(t) for t in texts)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory with simdiff (built with MPI)")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "demo.json"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="timed steps per process and round")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--bucket-mb", type=float, default=4.0)
    ap.add_argument("--mpirun", default=shutil.which("mpirun") or "mpirun")
    ap.add_argument("--python", default="/usr/bin/python3", help="Python with torch")
    ap.add_argument("--out", help="also write the table here")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="ddp_bench_")
    with open(args.config) as f:
        c = json.load(f)
    c["train"].update(steps=10**6, ckpt_every=10**6, sample_every=0)  # no final samples
    cfg = os.path.join(tmp, "config.json")
    with open(cfg, "w") as f:
        json.dump(c, f)
    half_cfg = os.path.join(tmp, "half.json")
    with open(half_cfg, "w") as f:
        json.dump(dict(c, train=dict(c["train"], batch_size=c["train"]["batch_size"] // 2)), f)
    env = dict(os.environ, OMP_WAIT_POLICY="passive", OPENBLAS_NUM_THREADS="1",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    ours = [("simdiff", "1 x 1", lambda: simdiff_step(args, cfg, tmp, 1, 1, True, env)),
            ("simdiff", "1 x 2", lambda: simdiff_step(args, cfg, tmp, 1, 2, True, env)),
            ("simdiff", "2 x 1", lambda: simdiff_step(args, cfg, tmp, 2, 1, True, env)),
            ("simdiff", "2 x 1 --no-overlap", lambda: simdiff_step(args, cfg, tmp, 2, 1, False, env)),
            ("simdiff", "2 alone x 1", lambda: two_alone(args, half_cfg, tmp, "simdiff", env))]
    theirs = [("PyTorch", "1 x 1", lambda: torch_step(args, cfg, 1, 1, env)),
              ("PyTorch", "1 x 2", lambda: torch_step(args, cfg, 1, 2, env)),
              ("PyTorch DDP gloo", "2 x 1", lambda: torch_step(args, cfg, 2, 1, env)),
              ("PyTorch", "2 alone x 1", lambda: two_alone(args, half_cfg, tmp, "torch", env))]
    results = {}
    loads = []
    for r in range(args.rounds):
        for who, what, fn in (ours + theirs if r % 2 == 0 else theirs + ours):
            loads.append(loadavg())
            res = fn()
            results.setdefault((who, what), []).append(res)
            print(f"round {r + 1}: {who} {what}: {res} (load {loads[-1]:.2f})", file=sys.stderr, flush=True)
    shutil.rmtree(tmp, ignore_errors=True)

    def med(key, field="ms"):
        vals = [x[field] for x in results[key] if field in x]
        return statistics.median(vals) if vals else None

    def best(key):
        return min(x["ms"] for x in results[key])

    lines = [f"Config {os.path.relpath(args.config, ROOT)} (global batch {c['train']['batch_size']}), "
             f"{args.rounds} rounds x {args.steps} steps, median ms per step; --bucket-mb "
             f"{args.bucket_mb:g}; load average {min(loads):.2f}..{max(loads):.2f} before the runs.", "",
             "| engine | processes x threads | ms / step (median) | best round | vs 1 x 1 | "
             "scaling efficiency | vs ceiling | all-reduce waited / span per step |",
             "|---|---|---|---|---|---|---|---|"]
    for who in ("simdiff", "PyTorch", "PyTorch DDP gloo"):
        engine = who if who != "PyTorch DDP gloo" else "PyTorch"
        base, ceiling = med((engine, "1 x 1")), med((engine, "2 alone x 1"))
        for (w, what), _ in results.items():
            if w != who:
                continue
            ms = med((w, what))
            n = 2 if what.startswith("2") else (1 if what == "1 x 1" else None)
            eff = f"{base / (2 * ms):.2f}" if n == 2 else ("1.00" if n == 1 else "")
            vs_ceiling = f"{ceiling / ms:.2f}" if what.startswith("2 x 1") else ""
            comm = ""
            if med((w, what), "waited_ms") is not None:
                comm = f"{med((w, what), 'waited_ms'):.1f} / {med((w, what), 'span_ms'):.1f} ms"
            lines.append(f"| {w} | {what} | {ms:.1f} | {best((w, what)):.1f} | {base / ms:.2f}x | "
                         f"{eff} | {vs_ceiling} | {comm} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
