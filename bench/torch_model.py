#!/usr/bin/env python3
"""A PyTorch port of simdiff's U-ViT and diffusion loss (model/uvit.cpp, model/layers.cpp,
model/diffusion.cpp), for two outside checks of the engine. Parameter names are the checkpoint
keys (e.g. "down.0.0.conv1.w"), so a trace or checkpoint loads by name.

  torch_model.py --trace FILE [--tol 1e-4] [--dtype f64|f32]
      FILE comes from `simdiff trace --config C --out FILE`. Recomputes the forward from the
      trace's parameters on its z, logsnr and labels, the loss against its v_target and weights,
      and the backward; compares the loss, every act.<name>, grad.<name> and grad_param.<name>
      and exits 1 when any relative error (max |ours - torch| / max |torch|) exceeds --tol.
      The port runs in float64 by default, so the errors are those of our f32 engine.
      Dropout masks (Philox) are not reproduced: trace a config with "model.dropout": 0
      (configs/demo.json has it; for tests/data/tiny.json make a copy with dropout 0).
  torch_model.py --time --config configs/demo.json --threads 2 --steps N [--device cuda] [--bf16]
      Times the training step of the same architecture (CPU by default) at the config's batch size:
      zero grads, loss (noising + forward), backward, global-norm clipping, AdamW, EMA — what
      tools/train.cpp does per step, minus data loading. Prints one JSON line with ms/step and
      the process's peak resident memory. --bf16: mixed precision the PyTorch way, the forward
      and the loss under torch.autocast(dtype=torch.bfloat16) with f32 parameters, AdamW and EMA
      (no GradScaler: bf16 needs none), the baseline for train.precision "bf16".
      The baseline is PyTorch run the way a user who cares runs it: the model and the batch in
      channels_last, AdamW(foreach=True), zero_grad(set_to_none=True), clipping by
      torch._foreach_norm, and, unless already set in the environment (they must be before torch
      is imported, so this file sets them first): ATEN_CPU_CAPABILITY=avx512 (Debian's 1.13 build
      otherwise runs its AVX2 kernels on an AVX-512 CPU, while we build -march=native) and
      OPENBLAS_NUM_THREADS=1 (its OpenBLAS pool otherwise spins in sched_yield beside OpenMP's
      threads). bench/cpu_vs_torch.py runs it that way, with OMP_WAIT_POLICY=passive.

Only for bench/: numpy and torch are not product dependencies.
"""
import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time

os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx512")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# ---------------------------------------------------------------- safetensors (no package needed)

def load_safetensors(path):
    """-> ({name: np.ndarray}, metadata dict). 8-byte LE header length, JSON header, raw data."""
    import numpy as np  # only the trace check needs numpy

    dtypes = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "I64": np.int64, "F16": np.float16}
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, h in header.items():
        b, e = h["data_offsets"]
        buf = data[b:e]
        if h["dtype"] == "BF16":  # widen to f32: bf16 is the top half of an f32
            a = (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, dtype=dtypes[h["dtype"]])
        out[name] = a.reshape(h["shape"]).copy()
    return out, meta


# ---------------------------------------------------------------- the model


class Linear(nn.Module):
    def __init__(self, fan_in, fan_out, zero_init=False):
        super().__init__()
        self.w = nn.Parameter(torch.empty(fan_out, fan_in))
        self.b = nn.Parameter(torch.zeros(fan_out))
        self.w.init = ("zeros",) if zero_init else ("uniform", 1 / math.sqrt(fan_in))

    def forward(self, x):
        return F.linear(x, self.w, self.b)


class Conv2d(nn.Module):
    def __init__(self, cin, cout, k, zero_init=False):
        super().__init__()
        self.w = nn.Parameter(torch.empty(cout, cin, k, k))
        self.b = nn.Parameter(torch.zeros(cout))
        self.w.init = ("zeros",) if zero_init else ("uniform", 1 / math.sqrt(cin * k * k))
        self.padding = k // 2

    def forward(self, x):
        return F.conv2d(x, self.w, self.b, padding=self.padding)


class Norm(nn.Module):
    """Affine parameters g, b of a group norm or layer norm."""

    def __init__(self, c):
        super().__init__()
        self.g = nn.Parameter(torch.ones(c))
        self.b = nn.Parameter(torch.zeros(c))


def group_norm(n, x, groups):
    return F.group_norm(x, groups, n.g, n.b, eps=1e-5)


def layer_norm(n, x):
    return F.layer_norm(x, (x.shape[-1],), n.g, n.b, eps=1e-6)


def scale_shift(x, cond_proj, cond, channels_last):
    """x * (1 + scale) + shift; (scale, shift) = split(Linear(cond)) at the channel count."""
    s = cond_proj(cond)
    c = s.shape[1] // 2
    scale, shift = s[:, :c], s[:, c:]
    if channels_last:
        return x * (1 + scale[:, None, :]) + shift[:, None, :]
    shape = (x.shape[0], c) + (1,) * (x.dim() - 2)
    return x * (1 + scale.reshape(shape)) + shift.reshape(shape)


def haar_dwt(x):
    """[B, C, H, W] -> [B, 4C, H/2, W/2], bands LL, LH, HL, HH (kernels/cpu/wavelet.cpp)."""
    a, b = x[..., 0::2, 0::2], x[..., 0::2, 1::2]
    c, d = x[..., 1::2, 0::2], x[..., 1::2, 1::2]
    return torch.cat([(a + b) + (c + d), (a - b) + (c - d), (a + b) - (c + d), (a - b) - (c - d)], 1) * 0.5


def haar_idwt(y):
    C = y.shape[1] // 4
    p, q, r, s = y[:, :C], y[:, C : 2 * C], y[:, 2 * C : 3 * C], y[:, 3 * C :]
    a, b = ((p + q) + (r + s)) * 0.5, ((p - q) + (r - s)) * 0.5
    c, d = ((p + q) - (r + s)) * 0.5, ((p - q) - (r - s)) * 0.5
    B, _, h, w = a.shape
    top, bottom = torch.stack([a, b], -1), torch.stack([c, d], -1)  # [B, C, h, w, 2]
    return torch.stack([top, bottom], 3).reshape(B, C, 2 * h, 2 * w)


def sinusoidal_embedding(x, dim, max_period=10000.0):
    """[cos(x f_i), sin(x f_i)], f_i = max_period^(-i/h), in double then rounded (embed.cpp)."""
    h = dim // 2
    f = torch.exp(-math.log(max_period) * torch.arange(h, dtype=torch.float64, device=x.device) / h)
    ang = x.to(torch.float64)[:, None] * f[None, :]
    return torch.cat([torch.cos(ang), torch.sin(ang)], 1)


class ResBlock(nn.Module):
    def __init__(self, cin, cout, groups, cond_dim):
        super().__init__()
        self.norm1, self.norm2 = Norm(cin), Norm(cout)
        self.cond1, self.cond2 = Linear(cond_dim, 2 * cin, True), Linear(cond_dim, 2 * cout, True)
        self.conv1, self.conv2 = Conv2d(cin, cout, 3), Conv2d(cout, cout, 3, True)
        self.skip = Conv2d(cin, cout, 1) if cin != cout else None
        self.groups = groups

    def forward(self, x, cond):
        h = self.conv1(F.silu(scale_shift(group_norm(self.norm1, x, self.groups), self.cond1, cond, False)))
        h = F.silu(scale_shift(group_norm(self.norm2, h, self.groups), self.cond2, cond, False))
        h = self.conv2(h)
        return (self.skip(x) if self.skip is not None else x) + h


class TransformerBlock(nn.Module):
    def __init__(self, width, heads, mlp_ratio, cond_dim):
        super().__init__()
        self.ln1, self.ln2 = Norm(width), Norm(width)
        self.cond1, self.cond2 = Linear(cond_dim, 2 * width, True), Linear(cond_dim, 2 * width, True)
        self.qkv = Linear(width, 3 * width)
        self.proj = Linear(width, width, True)
        self.fc1 = Linear(width, mlp_ratio * width)
        self.fc2 = Linear(mlp_ratio * width, width, True)
        self.heads = heads

    def forward(self, x, cond):
        B, N, D = x.shape
        H, Dh = self.heads, D // self.heads
        h = self.qkv(scale_shift(layer_norm(self.ln1, x), self.cond1, cond, True))
        q, k, v = h.reshape(B, N, 3, H, Dh).permute(2, 0, 3, 1, 4)
        p = torch.softmax((q @ k.transpose(-1, -2)) * (1 / math.sqrt(Dh)), -1)
        a = (p @ v).permute(0, 2, 1, 3).reshape(B, N, D)
        y = x + self.proj(a)
        m = F.gelu(self.fc1(scale_shift(layer_norm(self.ln2, y), self.cond2, cond, True)))
        return y + self.fc2(m)


class Container(nn.Module):
    pass


class UViT(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m
        cd, levels = m["cond_dim"], len(m["channel_mult"])
        dwt = m["downsample"] == "dwt"
        in_ch = m["channels"] << (2 * m["dwt_levels"]) if dwt else m["channels"] * m["patch_size"] ** 2
        in_res = m["resolution"] >> m["dwt_levels"] if dwt else m["resolution"] // m["patch_size"]
        self.cond = Container()
        self.cond.time1, self.cond.time2 = Linear(cd, cd), Linear(cd, cd)
        if m["num_classes"] > 0:
            self.cond.register_parameter("class", nn.Parameter(torch.empty(m["num_classes"] + 1, cd)))
            getattr(self.cond, "class").init = ("normal", 1.0)
        ch = [m["base_channels"] * k for k in m["channel_mult"]]
        self.embed = Conv2d(in_ch, m["base_channels"], 3)
        self.down = nn.ModuleList()
        c_in = m["base_channels"]
        for i in range(levels):
            blocks = nn.ModuleList()
            for _ in range(m["res_blocks"]):
                blocks.append(ResBlock(c_in, ch[i], m["groups"], cd))
                c_in = ch[i]
            self.down.append(blocks)
        low = ch[-1]
        w = m["transformer_width"] or low
        self.mid = None
        if m["transformer_depth"] > 0:
            self.mid = Container()
            if w != low:
                self.mid.proj_in, self.mid.proj_out = Linear(low, w), Linear(w, low)
            r = in_res >> (levels - 1)
            self.mid.pos = nn.Parameter(torch.empty(1, r * r, w))
            self.mid.pos.init = ("normal", 0.02)
            self.mid.block = nn.ModuleList(
                TransformerBlock(w, m["heads"], m["mlp_ratio"], cd) for _ in range(m["transformer_depth"])
            )
            self.mid.ln = Norm(w)
        self.up = nn.ModuleList(nn.ModuleList() for _ in range(levels))
        for i in reversed(range(levels)):
            frm = ch[i] if i == levels - 1 else ch[i + 1]
            for j in range(m["res_blocks"]):
                self.up[i].append(ResBlock(frm + ch[i] if j == 0 else ch[i], ch[i], m["groups"], cd))
        self.out = Container()
        self.out.norm = Norm(ch[0])
        self.out.conv = Conv2d(ch[0], in_ch, 3, True)

    def init_like_simdiff(self, seed=0):
        """The same distributions as ParamStore::finalize (not the same draws): for timing."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                init = getattr(p, "init", None)
                if init is None:
                    continue
                if init[0] == "zeros":
                    p.zero_()
                elif init[0] == "uniform":
                    p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * init[1])
                else:
                    p.copy_(torch.randn(p.shape, generator=g) * init[1])

    def to_features(self, x):
        m = self.m
        if m["downsample"] == "patch":
            return F.pixel_unshuffle(x, m["patch_size"])
        for _ in range(m["dwt_levels"]):
            x = haar_dwt(x)
        return x

    def from_features(self, x):
        m = self.m
        if m["downsample"] == "patch":
            return F.pixel_shuffle(x, m["patch_size"])
        for _ in range(m["dwt_levels"]):
            x = haar_idwt(x)
        return x

    def forward(self, z, logsnr, labels, acts=None):
        """acts: an optional dict that receives the named activations, in forward order."""

        def mark(name, t):
            if acts is not None:
                if t.requires_grad:
                    t.retain_grad()
                acts[name] = t
            return t

        m = self.m
        e = sinusoidal_embedding(logsnr, m["cond_dim"]).to(z.dtype)
        c = self.cond.time2(F.silu(self.cond.time1(e)))
        if m["num_classes"] > 0:
            c = c + getattr(self.cond, "class")[labels.long()]
        cond = mark("cond", F.silu(c))
        h = mark("embed", self.embed(self.to_features(z)))
        skips = []
        for i, blocks in enumerate(self.down):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            for j, blk in enumerate(blocks):
                h = mark(f"down.{i}.{j}", blk(h, cond))
            skips.append(h)
        if self.mid is not None:
            B, C, r, _ = h.shape
            t = h.permute(0, 2, 3, 1).reshape(B, r * r, C)
            if hasattr(self.mid, "proj_in"):
                t = self.mid.proj_in(t)
            t = t + self.mid.pos
            for k, blk in enumerate(self.mid.block):
                t = mark(f"mid.block.{k}", blk(t, cond))
            t = layer_norm(self.mid.ln, t)
            if hasattr(self.mid, "proj_out"):
                t = self.mid.proj_out(t)
            h = t.reshape(B, r, r, C).permute(0, 3, 1, 2)
        for i in reversed(range(len(self.up))):
            if i < len(self.up) - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = torch.cat([h, skips[i]], 1)
            for j, blk in enumerate(self.up[i]):
                h = mark(f"up.{i}.{j}", blk(h, cond))
        out = self.from_features(self.out.conv(F.silu(group_norm(self.out.norm, h, m["groups"]))))
        return mark("v_hat", out)


def loss_scales(d, resolution):
    res = d.get("loss_resolutions") or []
    if not res:
        return [(resolution, 1.0)]
    w = d.get("loss_weights") or [1.0 / r for r in res]
    return list(zip(res, w))


def diffusion_loss_from(model, cfg, z, logsnr, labels, v_target, weights, acts=None):
    """model/diffusion.cpp after the draws: multiscale eps-space MSE of v, weighted, averaged."""
    R = cfg["model"]["resolution"]
    v_hat = model(z, logsnr, labels, acts)
    per_sample = 0
    for res, w in loss_scales(cfg["diffusion"], R):
        k = R // res
        pred = F.avg_pool2d(v_hat, k) if k > 1 else v_hat
        tgt = F.avg_pool2d(v_target, k) if k > 1 else v_target
        per_sample = per_sample + ((pred - tgt) ** 2).flatten(1).mean(1) * w
    return (per_sample * weights).mean()


def logsnr_schedule(t, d, image_d):
    """Shifted / cosine / interpolated logSNR (kernels/cpu/diffusion.cpp), in double."""
    t = t.to(torch.float64)
    t_min, t_max = math.atan(math.exp(-0.5 * d["logsnr_max"])), math.atan(math.exp(-0.5 * d["logsnr_min"]))
    base = -2 * torch.log(torch.tan(t_min + t * (t_max - t_min)))
    s0 = s1 = 0.0
    if d["schedule"] == "shifted":
        s0 = s1 = 2 * math.log(d["noise_d"] / image_d)
    elif d["schedule"] == "interpolated":
        s0, s1 = 2 * math.log(1.0), 2 * math.log(d["interp_low"] / image_d)
    return base + s0 + t * (s1 - s0)


# ---------------------------------------------------------------- --trace


def merged_config(cfg):
    """Fill the defaults of model/config.h for keys a hand-written config may leave out."""
    m = dict(
        resolution=32, channels=3, num_classes=0, downsample="dwt", dwt_levels=1, patch_size=2,
        base_channels=64, channel_mult=[1, 2], res_blocks=2, groups=8, transformer_depth=2,
        transformer_width=0, heads=4, mlp_ratio=4, cond_dim=256, dropout=0.0, dropout_max_resolution=16,
    )
    d = dict(schedule="shifted", noise_d=64, logsnr_min=-15, logsnr_max=15, interp_low=32,
             loss_resolutions=[], loss_weights=[], weighting="eps", sigmoid_bias=2.0, stratified_t=True)
    t = dict(batch_size=32, lr=3e-4, weight_decay=0.0, beta1=0.9, beta2=0.99, adam_eps=1e-8,
             grad_clip=1.0, ema_decay=0.999, seed=0)
    m.update(cfg.get("model", {}))
    d.update(cfg.get("diffusion", {}))
    t.update(cfg.get("train", {}))
    return {"model": m, "diffusion": d, "train": t}


def rel_err(ours, ref):
    """max |ours - ref| / max |ref| (0 when both are all zeros)."""
    import numpy as np

    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return float("inf"), f"shape {list(ours.shape)} vs {list(ref.shape)}"
    diff = float(np.max(np.abs(ours - ref))) if ref.size else 0.0
    scale = float(np.max(np.abs(ref))) if ref.size else 0.0
    if scale == 0:
        return (0.0 if diff == 0 else float("inf")), f"ref all zero, max |ours| {diff:.3g}"
    return diff / scale, f"max|ref| {scale:.3g}"


def run_trace(args):
    try:
        t, meta = load_safetensors(args.trace)
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{args.trace}: cannot read the trace: {type(e).__name__}: {e}")
    if "config" not in meta:
        sys.exit(f"{args.trace}: no 'config' in the safetensors metadata (not a `simdiff trace` file?)")
    cfg = merged_config(json.loads(meta["config"]))
    m = cfg["model"]
    if m["dropout"] > 0:
        sys.exit(f"{args.trace}: model.dropout = {m['dropout']}: the port cannot redraw simdiff's Philox "
                 "dropout masks; trace a copy of the config with \"dropout\": 0")
    dt = torch.float64 if args.dtype == "f64" else torch.float32
    model = UViT(m)
    names = dict(model.named_parameters())
    missing = sorted(set(names) - {k[6:] for k in t if k.startswith("param.")})
    extra = sorted({k[6:] for k in t if k.startswith("param.")} - set(names))
    if missing or extra:
        sys.exit(f"parameter names differ: missing in the trace {missing}, not in the port {extra}")
    with torch.no_grad():
        for n, p in names.items():
            src = t["param." + n]
            if tuple(src.shape) != tuple(p.shape):
                sys.exit(f"param.{n}: trace shape {list(src.shape)}, port shape {list(p.shape)}")
            p.data = torch.from_numpy(src).to(dt)
    g = lambda k: torch.from_numpy(t[k])
    acts = {}
    loss = diffusion_loss_from(model, cfg, g("input.z").to(dt), g("input.logsnr"), g("input.labels"),
                               g("input.v_target").to(dt), g("input.weights").to(dt), acts)
    loss.backward()

    rows = [("loss", *rel_err(t["loss"], loss.detach().numpy()))]
    for n, a in acts.items():  # forward order
        if "act." + n in t:
            rows.append(("act." + n, *rel_err(t["act." + n], a.detach().numpy())))
        else:
            rows.append(("act." + n, float("inf"), "missing in the trace"))
    for n, a in reversed(list(acts.items())):  # backward order
        if "grad." + n in t and a.grad is not None:
            rows.append(("grad." + n, *rel_err(t["grad." + n], a.grad.numpy())))
    for n, p in names.items():
        gp = p.grad.numpy() if p.grad is not None else torch.zeros(p.shape).numpy()
        rows.append(("grad_param." + n, *rel_err(t["grad_param." + n], gp)))
    unmatched = sorted(k for k in t if k.startswith("act.") and k[4:] not in acts)

    width = max(len(r[0]) for r in rows)
    print(f"trace {args.trace}: port in {args.dtype}, tolerance {args.tol:g} (max|ours-torch| / max|torch|)")
    print(f"{'tensor':<{width}}  {'rel err':>9}  note")
    bad = []
    for name, err, note in rows:
        flag = "  FAIL" if not err <= args.tol else ""
        print(f"{name:<{width}}  {err:9.2e}  {note}{flag}")
        if flag:
            bad.append(name)
    for k in unmatched:
        print(f"{k}: in the trace but not marked by the port")
    worst = max(rows, key=lambda r: r[1])
    print(f"{len(rows)} tensors compared; worst {worst[0]} {worst[1]:.2e}; "
          f"{len(bad)} above tolerance" + (f"; first divergence: {bad[0]}" if bad else ""))
    return 1 if bad or unmatched else 0


# ---------------------------------------------------------------- --time


def run_time(args):
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    if dev.type == "cuda":  # as our cuBLAS calls: TF32 tensor cores for f32 GEMMs
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    with open(args.config) as f:
        cfg = merged_config(json.load(f))
    m, d, tc = cfg["model"], cfg["diffusion"], cfg["train"]
    B, R, C = tc["batch_size"], m["resolution"], m["channels"]
    model = UViT(m)
    model.init_like_simdiff(tc["seed"])
    model.to(dev, memory_format=torch.channels_last)
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]), eps=tc["adam_eps"],
                            weight_decay=tc["weight_decay"], foreach=True)
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator(device=dev).manual_seed(1)
    x = torch.rand(B, C, R, R, generator=gen, device=dev) * 2 - 1  # fixed, as bench_model.cpp's
    x = x.contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, max(m["num_classes"], 1), (B,), generator=gen, device=dev)
    grid = torch.arange(B, dtype=torch.float64, device=dev) / B

    def step(i):
        opt.zero_grad(set_to_none=True)
        t = (torch.rand(1, generator=gen, device=dev).double() + grid) % 1.0
        logsnr = logsnr_schedule(t, d, R).float()
        alpha, sigma = torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()
        eps = torch.randn(x.shape, generator=gen, device=dev)
        a4, s4 = alpha[:, None, None, None], sigma[:, None, None, None]
        z, v = a4 * x + s4 * eps, a4 * eps - s4 * x
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = diffusion_loss_from(model, cfg, z, logsnr, labels, v, alpha * alpha)
        loss.backward()
        if tc["grad_clip"] > 0:  # clip_grad_norm_ with foreach norms (its 1.13 form is per tensor)
            grads = [p.grad for p in params if p.grad is not None]
            total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
            coef = float(tc["grad_clip"] / (total + 1e-6))
            if coef < 1:
                torch._foreach_mul_(grads, coef)
        opt.step()
        decay = min(tc["ema_decay"], (i + 1) / (i + 10))
        with torch.no_grad():
            torch._foreach_mul_(ema, decay)
            torch._foreach_add_(ema, [p.detach() for p in params], alpha=1 - decay)
        return float(loss)  # waits for the step, as our loss.item() does

    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(args.warmup + i)
        times.append((time.perf_counter() - t0) * 1e3)
    name = "train_step/torch" + ("-bf16" if args.bf16 else "") + f"/{dev.type}"
    print(json.dumps({"name": name, "config": args.config, "batch": B, "bf16": args.bf16,
                      "threads": args.threads, "steps": args.steps,
                      "ms_per_step": statistics.median(times), "mean_ms": statistics.fmean(times),
                      "min_ms": min(times), "times_ms": times, "torch": torch.__version__,
                      "torch_threads": torch.get_num_threads(),
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "env": {k: os.environ.get(k, "") for k in
                              ("ATEN_CPU_CAPABILITY", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")},
                      "parameters": sum(p.numel() for p in params)}))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trace", metavar="FILE", help="compare with a `simdiff trace` file")
    ap.add_argument("--tol", type=float, default=1e-4, help="relative error bound (default 1e-4, for f32)")
    ap.add_argument("--dtype", choices=["f64", "f32"], default="f64", help="precision of the port")
    ap.add_argument("--time", action="store_true", help="time the training step on the CPU")
    ap.add_argument("--config", default="configs/demo.json")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (--time)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (--time)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward and loss (--time)")
    args = ap.parse_args()
    if args.trace:
        return run_trace(args)
    if args.time:
        return run_time(args)
    ap.error("give --trace FILE or --time")


if __name__ == "__main__":
    sys.exit(main())
