#!/usr/bin/env python3
"""Pairs our Google Benchmark results with the PyTorch baselines and writes a markdown table.

  python3 bench/compare.py OURS.json TORCH.json --out ratios.md

OURS.json: simdiff_bench --benchmark_format=json (or --benchmark_out=...) output; names such as
"layer_norm/65536x1024/cuda/fwd" (Google Benchmark's "/real_time"-style suffixes are dropped;
with --benchmark_repetitions the median aggregate is used). TORCH.json: bench/torch_baseline.py.
Per row: our time and throughput (TFLOP/s for compute-bound ops, GB/s otherwise, with GB/s as a
percentage of our measured copy bandwidth, copy/cuda), torch's, the speed ratio torch_ms /
ours_ms (> 1: we are faster) and the issue's target where one applies:
  layer_norm, group_norm, haar_dwt, haar_idwt   >= 80% of our copy bandwidth
  attention bf16 (vs SDPA flash)                 fwd >= 1.0x, bwd >= 0.8x
  matmul, linear (GEMM)                          >= 0.95x torch.matmul
A side that is missing or unreadable shows "-"; the script never fails on missing data. A file
of ours cut short (the run stopped by its time limit) gives its complete entries.
"""
import argparse
import json
import re
import statistics
import sys

SUFFIX = re.compile(r"/(real_time|manual_time|process_time|min_time:[^/]*|min_warmup_time:[^/]*|"
                    r"iterations:\d+|repeats:\d+|threads:\d+)")
MEMORY_TARGET = ("layer_norm", "group_norm", "haar_dwt", "haar_idwt")
GEMM = ("matmul", "linear")


def load_json(path, what):
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        print(f"compare: cannot read {what} results {path}: {e}", file=sys.stderr)
        return None
    try:
        return json.loads(text)
    except ValueError as e:
        doc = salvage_benchmarks(text)
        if doc and doc["benchmarks"]:
            print(f"compare: {path} is cut short ({e}); using its {len(doc['benchmarks'])} complete "
                  "entries", file=sys.stderr)
            return doc
        print(f"compare: cannot read {what} results {path}: {e}", file=sys.stderr)
        return None


def salvage_benchmarks(text):
    """The complete entries of a Google Benchmark JSON file cut short (a run stopped by its time
    limit leaves the "benchmarks" list unclosed), or None."""
    i = text.find('"benchmarks"')
    i = text.find("[", i) + 1 if i >= 0 else 0
    if i <= 0:
        return None
    decoder, entries = json.JSONDecoder(), []
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        try:
            entry, i = decoder.raw_decode(text, i)
        except ValueError:
            return {"benchmarks": entries}
        entries.append(entry)


def ours_results(doc):
    """Google Benchmark JSON -> {name: {"ms", "GB/s", "TFLOP/s"}} (median over runs)."""
    runs, medians, errors = {}, {}, {}
    for b in (doc or {}).get("benchmarks", []):
        name = SUFFIX.sub("", b.get("run_name") or b["name"])
        if b.get("error_occurred"):
            errors[name] = b.get("error_message", "error")
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                medians[name] = b
            continue
        runs.setdefault(name, []).append(b)
    scale = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    out = {}
    for name in set(runs) | set(medians):
        group = [medians[name]] if name in medians else runs[name]
        r = {"ms": statistics.median(b["real_time"] * scale[b.get("time_unit", "ns")] for b in group)}
        for k in ("GB/s", "TFLOP/s"):
            vals = [b[k] for b in group if k in b]
            if vals:
                r[k] = statistics.median(vals)
        out[name] = r
    for name, msg in errors.items():
        out.setdefault(name, {"error": msg})
    return out


def op_of(name):
    return name.split("/", 1)[0]


def target(name):
    """(description, kind, threshold) or None. kind: "copy" (fraction of our copy bandwidth)
    or "ratio" (torch_ms / ours_ms)."""
    op = op_of(name)
    if "/cuda/" not in name:
        return None
    if op in MEMORY_TARGET:
        return (">= 80% copy", "copy", 0.80)
    if op == "attention" and "/bf16 " in name:
        return (">= 1.0x flash", "ratio", 1.0) if name.endswith("/fwd") else (">= 0.8x flash", "ratio", 0.8)
    if op in GEMM:
        return (">= 0.95x torch", "ratio", 0.95)
    return None


def fmt(v, spec, suffix=""):
    return "-" if v is None else format(v, spec) + suffix


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ours")
    ap.add_argument("torch")
    ap.add_argument("--out", help="markdown file (default: stdout only)")
    args = ap.parse_args()
    ours = ours_results(load_json(args.ours, "our"))
    theirs = {k: v for k, v in (load_json(args.torch, "torch") or {}).items()
              if not k.startswith("_") and isinstance(v, dict) and "ms" in v}
    copy_ours = ours.get("copy/cuda", {}).get("GB/s")
    copy_torch = theirs.get("copy/cuda", {}).get("GB/s")

    lines = [
        f"device copy bandwidth: ours {fmt(copy_ours, '.0f', ' GB/s')}, torch {fmt(copy_torch, '.0f', ' GB/s')}",
        "",
        "| benchmark | ours ms | ours | % copy | torch ms | torch | ratio | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    met = total = 0
    for name in sorted((set(ours) | set(theirs)) - {"copy/cuda"}):
        o, t = ours.get(name, {}), theirs.get(name, {})
        flops = "TFLOP/s" in o or "TFLOP/s" in t
        unit = "TFLOP/s" if flops else "GB/s"
        spec = ".1f" if flops else ".0f"
        pct = None
        if not flops and o.get("GB/s") is not None and copy_ours:
            pct = 100.0 * o["GB/s"] / copy_ours
        ratio = t["ms"] / o["ms"] if o.get("ms") and t.get("ms") else None
        tg = target(name)
        verdict = ""
        if tg:
            value = (pct / 100.0 if pct is not None else None) if tg[1] == "copy" else ratio
            if value is not None:
                total += 1
                ok = value >= tg[2]
                met += ok
                verdict = "yes" if ok else "**no**"
            else:
                verdict = "-"
        ours_ms = "error: " + o["error"][:60] if "error" in o else fmt(o.get("ms"), ".4f")
        lines.append(
            f"| {name} | {ours_ms} | {fmt(o.get(unit), spec, ' ' + unit)} | {fmt(pct, '.0f', '%')} "
            f"| {fmt(t.get('ms'), '.4f')} | {fmt(t.get(unit), spec, ' ' + unit)} | {fmt(ratio, '.2f', 'x')} "
            f"| {tg[0] if tg else ''} | {verdict} |")
    lines += ["", f"targets met: {met}/{total} (ratio = torch ms / ours ms: > 1 means we are faster)"]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
