#!/usr/bin/env python3
"""Ours vs a tuned PyTorch on the CPU, side by side, in one run: the table of bench/RESULTS.md.

  python3 bench/cpu_vs_torch.py [--build build] [--rounds 5] [--threads 2] [--out table.md]
                                [--baseline-rev REV | --baseline-bench OLD/simdiff_bench]
                                [--im2col] [--quick]

The recorded run of issue 13 (before = the engine of commit baa23ba, built by the script):

  python3 bench/cpu_vs_torch.py --build build --baseline-rev baa23ba --im2col --rounds 5 --out table.md

Each round runs, in alternating order (ours first in odd rounds, PyTorch first in even ones):
  train steps   configs/demo.json at batch 32 and 128 (32x32 images), and the same widths at
                64x64 (batch 32): our `simdiff_bench --benchmark_filter=train_step` (SIMDIFF_CONFIG,
                --benchmark_repetitions=--steps with --benchmark_min_time=0, i.e. one warm-up and
                --steps timed steps, as many as PyTorch's) against `bench/torch_model.py --time`,
                each process's peak resident memory from /usr/bin/time (ours: the whole benchmark
                process; PyTorch: its Python process, torch's own libraries included). The same
                number of steps on every side matters for memory too: the heap's high-water mark
                creeps up over a run's first steps (2-4 MiB at batch 32). Each simdiff_bench's
                resident memory at start-up (no benchmark run: binary and shared libraries) is
                recorded once, to tell the engine's memory from what the binary links.
  op benchmarks conv2d 3x3 at every U-ViT shape of kernels/cpu/conv.cpp's bench cases, the
                layer_norm and group_norm_mod outliers of issue 13: `simdiff_bench` against
                bench/torch_cpu_ops.py (same names)
and records the 1-minute load average before each round. Every number in the table is the
median over rounds (and over the repetitions within them); ratio = ours / PyTorch time (< 1:
ours faster); peak RSS is the largest over rounds. --baseline-bench adds a column for another
simdiff_bench binary (the engine before a change), run in the same rounds; --baseline-rev REV
builds that binary from commit REV first (`git archive` into /tmp/simdiff-bench-REV, a CPU-only
Release build of the simdiff_bench target; kept for the next run); --im2col one for ours with
the 3x3 convolutions on the im2col + GEMM reference path (SIMDIFF_CONV3X3=reference) instead of
Winograd. The table's header records the command line, both commits, the machine, PyTorch's
version and the exact command of every side, so it can be pasted into bench/RESULTS.md as is.

Settings, both sides: OMP_NUM_THREADS=--threads, OMP_WAIT_POLICY=passive, OPENBLAS_NUM_THREADS=1;
PyTorch additionally ATEN_CPU_CAPABILITY=avx512, the model and images in channels_last,
AdamW(foreach=True), zero_grad(set_to_none=True), foreach clipping (bench/torch_model.py).
PyTorch is whatever `python3 -c "import torch"` finds (--python to choose; Debian's
python3-torch 1.13.1 in RESULTS.md).
"""
import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OPS_FILTER = r"^(conv2d/(demo )?3x3 (B32|s2)|layer_norm/65536x1024|group_norm_mod/B=32 C=64 32x32)"


def step_configs(tmp):
    """(label, config path): demo.json at batch 32 and 128, and at resolution 64 (batch 32)."""
    with open(os.path.join(ROOT, "configs", "demo.json")) as f:
        base = json.load(f)
    out = []
    for label, res, batch in (("32x32 batch 32", 32, 32), ("32x32 batch 128", 32, 128), ("64x64 batch 32", 64, 32)):
        c = json.loads(json.dumps(base))
        c["model"]["resolution"] = res
        c["train"]["batch_size"] = batch
        path = os.path.join(tmp, f"demo_r{res}_b{batch}.json")
        with open(path, "w") as f:
            json.dump(c, f)
        out.append((label, path))
    return out


def run(cmd, env, timeout=1800):
    """Runs cmd under /usr/bin/time; returns (stdout, peak RSS in MiB)."""
    tf = tempfile.NamedTemporaryFile(delete=False)
    tf.close()
    full = ["/usr/bin/time", "-f", "%M", "-o", tf.name] + cmd
    p = subprocess.run(full, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-2000:]}")
    with open(tf.name) as f:
        rss = int(f.read().split()[-1]) / 1024
    os.unlink(tf.name)
    return p.stdout, rss


def gb_times(text):
    """Google Benchmark JSON -> {name: [ms, ...]} of the per-repetition (non-aggregate) runs."""
    out = {}
    for b in json.loads(text)["benchmarks"]:
        if b.get("run_type") == "aggregate" or b.get("error_occurred"):
            continue
        scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}[b["time_unit"]]
        name = re.sub(r"/real_time$", "", b["name"])
        out.setdefault(name, []).append(b["real_time"] * scale)
    return out


def git(*a, cwd=ROOT):
    p = subprocess.run(["git", *a], cwd=cwd, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else "?"


def build_rev(rev):
    """simdiff_bench of commit rev: `git archive` + a CPU-only Release build, cached in /tmp."""
    full = git("rev-parse", "--verify", rev + "^{commit}")
    if full == "?":
        sys.exit(f"--baseline-rev {rev}: not a commit of {ROOT}")
    src = os.path.join(tempfile.gettempdir(), f"simdiff-bench-{full[:12]}")
    bench = os.path.join(src, "build", "simdiff_bench")
    if os.path.exists(bench):
        return bench, full
    print(f"building simdiff_bench of {full[:12]} in {src} (once; minutes)", file=sys.stderr)
    os.makedirs(src, exist_ok=True)
    arch = subprocess.run(["git", "archive", full], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", src], input=arch, check=True)
    for cmd in (["cmake", "-S", ".", "-B", "build", "-DSIMDIFF_CUDA=OFF", "-DCMAKE_BUILD_TYPE=Release"],
                ["cmake", "--build", "build", "-j", str(os.cpu_count() or 2), "--target", "simdiff_bench"]):
        p = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(f"--baseline-rev {rev}: {' '.join(cmd)} failed in {src}:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return bench, full


def machine():
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} logical CPUs, {platform.platform()}"


def loadavg():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="build directory with simdiff_bench")
    ap.add_argument("--baseline-bench", help="another simdiff_bench to time in the same rounds")
    ap.add_argument("--baseline-rev", help="build commit REV's simdiff_bench and use it as --baseline-bench")
    ap.add_argument("--im2col", action="store_true", help="also time ours with SIMDIFF_CONV3X3=reference")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per process and round")
    ap.add_argument("--python", default=None, help="Python with torch (default: python3, else /usr/bin/python3)")
    ap.add_argument("--quick", action="store_true", help="train steps only at 32x32 batch 32, shorter op timing")
    ap.add_argument("--no-ops", action="store_true")
    ap.add_argument("--no-steps", action="store_true")
    ap.add_argument("--out", help="also write the Markdown table here")
    args = ap.parse_args()

    bench = os.path.join(ROOT, args.build, "simdiff_bench") if not os.path.isabs(args.build) else os.path.join(args.build, "simdiff_bench")
    if not os.path.exists(bench):
        sys.exit(f"{bench}: not found (build with -DSIMDIFF_BENCH=ON)")
    py = args.python
    if not py:
        for cand in ("python3", "/usr/bin/python3"):
            if shutil.which(cand) and subprocess.run([cand, "-c", "import torch"], capture_output=True).returncode == 0:
                py = cand
                break
    if not py:
        sys.exit("no Python with torch found (apt-get install -y python3-torch python3-numpy)")
    if args.baseline_bench and args.baseline_rev:
        sys.exit("--baseline-bench and --baseline-rev: give one")
    base_rev = None
    if args.baseline_rev:
        args.baseline_bench, base_rev = build_rev(args.baseline_rev)
    elif args.baseline_bench and not os.path.exists(args.baseline_bench):
        sys.exit(f"--baseline-bench {args.baseline_bench}: not found")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY="passive",
               OPENBLAS_NUM_THREADS="1", ATEN_CPU_CAPABILITY="avx512")
    min_time = "0.2" if args.quick else "0.5"
    tmp = tempfile.mkdtemp(prefix="cpu_vs_torch_")
    configs = step_configs(tmp)[: 1 if args.quick else 3]
    sides = {"ours": bench}
    if args.baseline_bench:
        sides["before"] = args.baseline_bench
    if args.im2col:
        sides["im2col"] = bench
    side_env = lambda side: dict(env, SIMDIFF_CONV3X3="reference") if side == "im2col" else env

    steps = {}  # (label, side) -> [ms]
    rss = {}    # (label, side) -> [MiB]
    ops = {}    # (name, side) -> [us]
    loads = []
    t_start = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    for r in range(args.rounds):
        loads.append(loadavg())
        order = ["torch"] + list(sides) if r % 2 else list(sides) + ["torch"]
        print(f"round {r + 1}/{args.rounds}: load {loads[-1]:.2f}", file=sys.stderr)
        for side in order:
            if not args.no_steps:
                for label, cfg in configs:
                    if side == "torch":
                        out, m = run([py, "bench/torch_model.py", "--time", "--config", cfg, "--threads",
                                      str(args.threads), "--steps", str(args.steps), "--warmup", "1"], env)
                        times = json.loads(out.strip().splitlines()[-1])["times_ms"]
                    else:
                        out, m = run([sides[side], "--benchmark_filter=^train_step/",
                                      f"--benchmark_repetitions={args.steps}", "--benchmark_min_time=0",
                                      "--benchmark_format=json"],
                                     dict(side_env(side), SIMDIFF_CONFIG=cfg))
                        times = [t for v in gb_times(out).values() for t in v]
                    steps.setdefault((label, side), []).extend(times)
                    rss.setdefault((label, side), []).append(m)
            if not args.no_ops:
                if side == "torch":
                    jf = os.path.join(tmp, "torch_ops.json")
                    run([py, "bench/torch_cpu_ops.py", "--threads", str(args.threads), "--min-time", min_time,
                         "--filter", OPS_FILTER, "--json", jf], env)
                    with open(jf) as f:
                        res = {re.sub(r"/real_time$", "", b["name"]): [b["real_time"] * 1e-3]
                               for b in json.load(f)["benchmarks"]}
                else:
                    out, _ = run([sides[side], f"--benchmark_filter={OPS_FILTER}.*/cpu/",
                                  f"--benchmark_min_time={min_time}", "--benchmark_format=json"], side_env(side))
                    res = gb_times(out)
                for name, v in res.items():
                    ops.setdefault((name, side), []).extend(v)
    loads.append(loadavg())
    t_end = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    startup = {}  # simdiff_bench path -> MiB resident at start-up, no benchmark run
    for path in dict.fromkeys(sides.values()):
        startup[path] = run([path, "--benchmark_filter=^$"], env)[1]

    med = lambda v: statistics.median(v) if v else float("nan")
    extra = [s for s in sides if s != "ours"]
    torch_ver = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], env=env,
                               capture_output=True, text=True).stdout.strip()
    envs = " ".join(f"{k}={env[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_NUM_THREADS",
                                                "ATEN_CPU_CAPABILITY"))
    q = lambda a: " ".join(shlex.quote(x) for x in a)
    lines = [f"- Command: `{q(['python3', os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)] + sys.argv[1:])}`",
             f"- When: {t_start} to {t_end}, {args.rounds} interleaved rounds, {args.threads} threads; "
             f"load average (1 min) before each round and at the end: {', '.join(f'{l:.2f}' for l in loads)}",
             f"- Machine: {machine()}",
             f"- ours: `{bench}`, tree at {git('describe', '--always', '--dirty')} (`git status` clean: "
             f"{'yes' if not git('status', '--porcelain', '--untracked-files=no') else 'no'})"]
    if args.baseline_bench:
        lines.append(f"- before: `{args.baseline_bench}`" + (f", commit {base_rev[:12]}" if base_rev else ""))
    if args.im2col:
        lines.append("- im2col: ours with SIMDIFF_CONV3X3=reference")
    lines += [f"- PyTorch {torch_ver} (`{py}`)",
              f"- Environment, every side: `{envs}`",
              f"- Train step, ours: `SIMDIFF_CONFIG=<config> <simdiff_bench> --benchmark_filter=^train_step/ "
              f"--benchmark_repetitions={args.steps} --benchmark_min_time=0 --benchmark_format=json` (one warm-up "
              f"step, then {args.steps} timed steps); PyTorch: `{py} bench/torch_model.py "
              f"--time --config <config> --threads {args.threads} --steps {args.steps} --warmup 1`; configs: "
              "configs/demo.json with model.resolution and train.batch_size set as in each row",
              f"- Ops, ours: `<simdiff_bench> '--benchmark_filter={OPS_FILTER}.*/cpu/' --benchmark_min_time={min_time} "
              f"--benchmark_format=json`; PyTorch: `{py} bench/torch_cpu_ops.py --threads {args.threads} "
              f"--min-time {min_time} --filter '{OPS_FILTER}'`",
              "- Times: medians over rounds (and repetitions); peak RSS: `/usr/bin/time -f %M` of each process, "
              "the largest over rounds (ours: the whole benchmark process; PyTorch: its Python process)",
              "- Resident memory at start-up (`<simdiff_bench> --benchmark_filter=^$`: binary and shared libraries): " +
              ", ".join(f"{s} {startup[b]:.1f} MiB" for s, b in sides.items() if s != "im2col"),
              ""]
    if steps:
        hdr = "| train step | ours ms | " + "".join(f"{s} ms | " for s in extra) + "PyTorch ms | ours / PyTorch | " + \
              "".join(f"{s} / PyTorch | " for s in extra) + "peak RSS MiB, ours / " + "".join(f"{s} / " for s in extra) + "PyTorch |"
        lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
        for label, _ in configs:
            o, t = med(steps[(label, "ours")]), med(steps[(label, "torch")])
            row = f"| {label} | {o:.1f} | " + "".join(f"{med(steps[(label, s)]):.1f} | " for s in extra)
            row += f"{t:.1f} | **{o / t:.2f}** | " + "".join(f"{med(steps[(label, s)]) / t:.2f} | " for s in extra)
            row += " / ".join(f"{max(rss[(label, s)]):.0f}" for s in ["ours"] + extra + ["torch"]) + " |"
            lines.append(row)
        lines.append("")
    if ops:
        names = sorted({n for n, _ in ops}, key=lambda n: (n.split("/")[0] != "conv2d", n))
        hdr = "| op | ours ms | " + "".join(f"{s} ms | " for s in extra) + "PyTorch ms | ours / PyTorch | " + \
              "".join(f"{s} / PyTorch | " for s in extra)
        lines += [hdr, "|" + "---|" * (hdr.count("|") - 1)]
        for n in names:
            if (n, "ours") not in ops or (n, "torch") not in ops:
                continue
            o, t = med(ops[(n, "ours")]), med(ops[(n, "torch")])
            row = f"| {n} | {o:.3f} | " + "".join(f"{med(ops.get((n, s), [])):.3f} | " for s in extra)
            row += f"{t:.3f} | **{o / t:.2f}** | " + "".join(f"{med(ops.get((n, s), [])) / t:.2f} | " for s in extra)
            lines.append(row)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
