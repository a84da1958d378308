#!/usr/bin/env python3
"""The CPU op benchmarks of bench/cpu_vs_torch.py in PyTorch, under the names simdiff_bench gives
the same cases (`<op>/<case>/cpu/<fwd|bwd>`), run the way a PyTorch user who cares runs them:
images in channels_last (as the tuned model, bench/torch_model.py), ATEN_CPU_CAPABILITY=avx512
and OPENBLAS_NUM_THREADS=1 unless already set (both must be in the environment before torch is
imported), torch.set_num_threads(--threads).

  torch_cpu_ops.py --threads 2 [--min-time 0.5] [--filter REGEX] --json out.json

fwd times the op; bwd times torch.autograd.grad of its output (retain_graph, the forward done
once before), i.e. the gradients of every input as our backward computes them. Each number is
the mean over repeated calls for at least --min-time seconds after two warm-up calls, like
Google Benchmark's default. Output: Google Benchmark's JSON layout (benchmarks[].name,
real_time, time_unit "us"), so the same reader takes both sides.

Only for bench/: torch is not a product dependency.
"""
import argparse
import json
import os
import re
import sys
import time

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx512")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

CL = torch.channels_last


def conv_case(B, C, O, H, k=3, s=1):
    def make():
        x = torch.randn(B, C, H, H).to(memory_format=CL).requires_grad_()
        w = (torch.randn(O, C, k, k) * 0.1).to(memory_format=CL).requires_grad_()
        b = torch.randn(O).requires_grad_()
        return (x, w, b), lambda x, w, b: F.conv2d(x, w, b, stride=s, padding=k // 2)

    return make


def group_norm_mod_case(B, C, H, G):
    def make():
        x = torch.randn(B, C, H, H).to(memory_format=CL).requires_grad_()
        g, be = torch.randn(C).requires_grad_(), torch.randn(C).requires_grad_()
        sc, sh = torch.randn(B, C).requires_grad_(), torch.randn(B, C).requires_grad_()

        def f(x, g, be, sc, sh):
            n = F.group_norm(x, G, g, be, eps=1e-5)
            return F.silu(n * (1 + sc[:, :, None, None]) + sh[:, :, None, None])

        return (x, g, be, sc, sh), f

    return make


def layer_norm_case(rows, C):
    def make():
        x = torch.randn(rows, C).requires_grad_()
        g, b = torch.randn(C).requires_grad_(), torch.randn(C).requires_grad_()
        return (x, g, b), lambda x, g, b: F.layer_norm(x, (C,), g, b, eps=1e-6)

    return make


# Our registry's bench cases (kernels/cpu/conv.cpp, norm.cpp, fused.cpp) by their names.
CASES = {
    "conv2d/demo 3x3 B32 C12->32 16x16": conv_case(32, 12, 32, 16),
    "conv2d/demo 3x3 B32 C32 16x16": conv_case(32, 32, 32, 16),
    "conv2d/demo 3x3 B32 C32->64 8x8": conv_case(32, 32, 64, 8),
    "conv2d/demo 3x3 B32 C64 8x8": conv_case(32, 64, 64, 8),
    "conv2d/demo 3x3 B32 C128->64 8x8": conv_case(32, 128, 64, 8),
    "conv2d/demo 3x3 B32 C96->32 16x16": conv_case(32, 96, 32, 16),
    "conv2d/demo 3x3 B32 C32->12 16x16": conv_case(32, 32, 12, 16),
    "conv2d/demo 3x3 B32 C12->32 32x32": conv_case(32, 12, 32, 32),
    "conv2d/3x3 B32 C128 32x32": conv_case(32, 128, 128, 32),
    "conv2d/3x3 B32 C64 64x64": conv_case(32, 64, 64, 64),
    "conv2d/3x3 s2 B32 C128 32x32": conv_case(32, 128, 256, 32, 3, 2),
    "conv2d/1x1 B32 C256 16x16": conv_case(32, 256, 128, 16, 1),
    "layer_norm/65536x1024": layer_norm_case(65536, 1024),
    "group_norm_mod/B=32 C=64 32x32 G=32": group_norm_mod_case(32, 64, 32, 32),
}


def mean_time(fn, min_time):
    fn()
    fn()
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_time and n >= 3:
            return el / n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--filter", default=".*", help="regex over the benchmark names")
    ap.add_argument("--json", required=True, metavar="FILE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = []
    for name, make in CASES.items():
        for kind in ("fwd", "bwd"):
            full = f"{name}/cpu/{kind}"
            if not re.search(args.filter, full):
                continue
            inputs, f = make()
            if kind == "fwd":
                with torch.no_grad():
                    t = mean_time(lambda: f(*inputs), args.min_time)
            else:
                y = f(*inputs)
                g = torch.randn_like(y)
                t = mean_time(lambda: torch.autograd.grad(y, inputs, g, retain_graph=True), args.min_time)
            out.append({"name": full, "real_time": t * 1e6, "time_unit": "us"})
    meta = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "ATEN_CPU_CAPABILITY": os.environ.get("ATEN_CPU_CAPABILITY"),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS"),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "")}
    with open(args.json, "w") as fh:
        json.dump({"context": meta, "benchmarks": out}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
