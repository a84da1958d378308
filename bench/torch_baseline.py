#!/usr/bin/env python3
"""PyTorch baselines for simdiff's CUDA kernel benchmarks (bench/bench_ops.cpp, bench_model.cpp).

  python3 bench/torch_baseline.py --json OUT [--iters 20]

Times, on the GPU, the shapes of our CUDA bench cases in PyTorch and writes
  {"<op>/<case label>/cuda/<fwd|bwd>": {"ms": ..., "GB/s": ..., "TFLOP/s": ...}, ...,
   "copy/cuda": {"ms": ..., "GB/s": ...}, "_meta": {...}}
with the names of our Google Benchmark entries so bench/compare.py can pair them. Bytes are
counted as bench_ops.cpp counts them: forward = inputs + outputs (our saved statistics — layer
and group norm mean/rstd, attention's log-sum-exp — included, as our ops write them); backward =
inputs + outputs + output gradients + input gradients. FLOPs: matmul/linear/conv 2*M*N*K
(backward 2x), attention 4*B*H*N^2*D (backward 2.5x). Timing: CUDA events around each call
after warm-up; the median of --iters calls.

The baseline is set up to be strong and comparable: f32 GEMMs and convolutions with TF32
allowed (our cuBLAS calls use TF32 tensor cores) and cuDNN autotuning on; attention in bf16
with the flash backend forced (our "bf16 <case>" bench cases) and in f32 with the backend
PyTorch picks (memory-efficient on Hopper; flash has no f32 kernel) for our f32 cases. Without
a GPU it writes an empty result and exits 0.
"""
import argparse
import contextlib
import json
import statistics
import sys
import traceback

import torch
import torch.nn.functional as F

F32 = 4


def nbytes(*tensors):
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def time_ms(fn, iters, warmup=3):
    """Median milliseconds of fn() over `iters` calls, each bracketed by CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    pairs = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        pairs.append((s, e))
    torch.cuda.synchronize()
    return statistics.median(s.elapsed_time(e) for s, e in pairs)


class Runner:
    def __init__(self, iters):
        self.iters = iters
        self.results = {}
        self.errors = []

    def record(self, name, ms, gbytes=None, flops=None, note=None):
        r = {"ms": ms}
        if gbytes is not None:
            r["GB/s"] = gbytes / (ms * 1e-3) / 1e9
        if flops is not None:
            r["TFLOP/s"] = flops / (ms * 1e-3) / 1e12
        if note:
            r["note"] = note
        self.results[name] = r
        shown = f"{r['TFLOP/s']:.1f} TFLOP/s" if flops is not None else f"{r.get('GB/s', 0):.0f} GB/s"
        print(f"{name:<55} {ms:9.4f} ms  {shown}", flush=True)

    def op(self, name, fn, inputs, extra_out_bytes=0, flops=None, bwd_ratio=2.0, context=None, note=None):
        """Times fn(*inputs) forward and (when an input requires grad) backward.

        extra_out_bytes: bytes of the saved statistics our op writes besides its output."""
        ctx = context or contextlib.nullcontext
        try:
            with ctx():
                out = fn(*inputs)
                fb = nbytes(*inputs) + nbytes(out) + extra_out_bytes
                self.record(name + "/fwd", time_ms(lambda: fn(*inputs), self.iters), fb, flops, note)
                need = [t for t in inputs if t.requires_grad]
                if need:
                    g = torch.rand_like(out) * 2 - 1
                    bwd = lambda: torch.autograd.grad(out, need, g, retain_graph=True)
                    bb = fb + nbytes(g) + nbytes(*need)
                    self.record(name + "/bwd", time_ms(bwd, self.iters), bb,
                                None if flops is None else flops * bwd_ratio, note)
        except Exception as e:  # one unsupported case must not lose the others
            self.errors.append(f"{name}: {type(e).__name__}: {e}")
            print(f"{name}: FAILED {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            traceback.print_exc()
        torch.cuda.empty_cache()


def rand(*shape, grad=True, dtype=torch.float32, lo=-1.0, hi=1.0):
    t = torch.rand(*shape, device="cuda", dtype=torch.float32) * (hi - lo) + lo
    return t.to(dtype).requires_grad_(grad)


def flash_only():
    """A context forcing the flash backend of F.scaled_dot_product_attention."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel  # torch >= 2.3

        return lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION)
    except ImportError:
        return lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_mem_efficient=False,
                                                      enable_math=False)


def haar_dwt(x):
    """Orthonormal Haar DWT by slicing: [B, C, H, W] -> [B, 4C, H/2, W/2] (LL, LH, HL, HH)."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([a + b + c + d, a - b + c - d, a + b - c - d, a - b - c + d], 1) * 0.5


def haar_idwt(y):
    C = y.shape[1] // 4
    p, q, r, s = y[:, :C], y[:, C:2 * C], y[:, 2 * C:3 * C], y[:, 3 * C:]
    a, b = (p + q + r + s) * 0.5, (p - q + r - s) * 0.5
    c, d = (p + q - r - s) * 0.5, (p - q - r + s) * 0.5
    B, _, h, w = a.shape
    return torch.stack([torch.stack([a, b], -1), torch.stack([c, d], -1)], 3).reshape(B, C, 2 * h, 2 * w)


def run_all(R):
    # Device copy bandwidth, as bench_ops.cpp's copy/cuda: read + write of a 256 MiB buffer.
    a = torch.zeros(64 << 20, device="cuda")
    b = torch.empty_like(a)
    R.record("copy/cuda", time_ms(lambda: b.copy_(a), R.iters), 2.0 * nbytes(a))
    del a, b

    # attention (kernels/cpu/attention.cpp bench cases)
    for label, (B, H, N, D) in {"B32 H16 N256 D64": (32, 16, 256, 64),
                                "B8 H16 N1024 D128": (8, 16, 1024, 128)}.items():
        flops = 4.0 * B * H * N * N * D
        lse = B * H * N * F32
        sdpa = F.scaled_dot_product_attention
        q, k, v = (rand(B, H, N, D, dtype=torch.bfloat16) for _ in range(3))
        R.op(f"attention/bf16 {label}/cuda", sdpa, [q, k, v], lse, flops, 2.5, flash_only(),
             "SDPA flash, bf16")
        q, k, v = (rand(B, H, N, D) for _ in range(3))
        R.op(f"attention/{label}/cuda", sdpa, [q, k, v], lse, flops, 2.5, None,
             "SDPA, f32, backend of torch's choice (flash has no f32 kernel)")
        del q, k, v

    # normalisation (kernels/cpu/norm.cpp)
    x, g, b = rand(65536, 1024), rand(1024), rand(1024)
    R.op("layer_norm/65536x1024/cuda", lambda x, g, b: F.layer_norm(x, (1024,), g, b, 1e-6), [x, g, b],
         2 * 65536 * F32)
    x, g, b = rand(32, 256, 32, 32, lo=-2, hi=2), rand(256), rand(256)
    R.op("group_norm/B=32 C=256 32x32 G=32/cuda", lambda x, g, b: F.group_norm(x, 32, g, b, 1e-5),
         [x, g, b], 2 * 32 * 32 * F32)

    # wavelets (kernels/cpu/wavelet.cpp), written with tensor ops
    R.op("haar_dwt/32x3x512x512/cuda", haar_dwt, [rand(32, 3, 512, 512)])
    R.op("haar_idwt/32x12x256x256/cuda", haar_idwt, [rand(32, 12, 256, 256)])

    # GEMMs (kernels/cpu/linalg.cpp)
    R.op("matmul/attn-scores 512x[256,64]x[64,256]/cuda", torch.matmul,
         [rand(512, 256, 64), rand(512, 64, 256)], 0, 2.0 * 512 * 256 * 256 * 64)
    R.op("matmul/attn-values 512x[256,256]x[256,64]/cuda", torch.matmul,
         [rand(512, 256, 256), rand(512, 256, 64)], 0, 2.0 * 512 * 256 * 64 * 256)
    R.op("matmul/shared [32,256,1024]x[1024,1024]^T/cuda", lambda a, b: torch.matmul(a, b.t()),
         [rand(32, 256, 1024), rand(1024, 1024)], 0, 2.0 * 32 * 256 * 1024 * 1024)
    R.op("linear/mlp [32*256,1024]x[4096,1024]/cuda", F.linear,
         [rand(8192, 1024), rand(4096, 1024), rand(4096)], 0, 2.0 * 8192 * 1024 * 4096)
    R.op("linear/proj [32*256,4096]x[1024,4096]/cuda", F.linear,
         [rand(8192, 4096), rand(1024, 4096), rand(1024)], 0, 2.0 * 8192 * 4096 * 1024)

    # convolutions and resampling (kernels/cpu/conv.cpp)
    for label, (B, C, S, O, k, s, p) in {"3x3 B32 C128 32x32": (32, 128, 32, 128, 3, 1, 1),
                                         "3x3 B32 C64 64x64": (32, 64, 64, 64, 3, 1, 1),
                                         "3x3 s2 B32 C128 32x32": (32, 128, 32, 256, 3, 2, 1),
                                         "1x1 B32 C256 16x16": (32, 256, 16, 128, 1, 1, 0)}.items():
        So = (S + 2 * p - k) // s + 1
        R.op(f"conv2d/{label}/cuda", lambda x, w, b, s=s, p=p: F.conv2d(x, w, b, s, p),
             [rand(B, C, S, S), rand(O, C, k, k), rand(O)], 0, 2.0 * B * O * C * k * k * So * So)
    R.op("space_to_depth/patchify p4 [32,3,256,256]/cuda", lambda x: F.pixel_unshuffle(x, 4),
         [rand(32, 3, 256, 256)])
    R.op("depth_to_space/unpatchify p4 [32,48,64,64]/cuda", lambda x: F.pixel_shuffle(x, 4),
         [rand(32, 48, 64, 64)])
    R.op("avg_pool2d/k2 [32,128,64,64]/cuda", lambda x: F.avg_pool2d(x, 2), [rand(32, 128, 64, 64)])
    R.op("upsample_nearest/f2 [32,128,32,32]/cuda",
         lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [rand(32, 128, 32, 32)])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, metavar="OUT", help="where to write the results")
    ap.add_argument("--iters", type=int, default=20, help="timed calls per benchmark (median)")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print(f"torch_baseline: no CUDA device visible to PyTorch {torch.__version__}; "
              f"writing an empty result to {args.json}")
        with open(args.json, "w") as f:
            json.dump({}, f)
        return 0
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    R = Runner(args.iters)
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name()}, median of {args.iters} calls")
    try:
        run_all(R)
    finally:
        R.results["_meta"] = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
                              "iters": args.iters, "tf32": True, "errors": R.errors}
        with open(args.json, "w") as f:
            json.dump(R.results, f, indent=1)
    if R.errors:
        print(f"{len(R.errors)} cases failed:\n  " + "\n  ".join(R.errors), file=sys.stderr)
    return 1 if R.errors else 0


if __name__ == "__main__":
    sys.exit(main())
