#!/usr/bin/env python3
"""PyTorch DistributedDataParallel (gloo) on simdiff's model, the baseline of
bench/ddp_vs_torch.py: the training step of bench/torch_model.py (its U-ViT port, loss, clipping,
AdamW, EMA) with the global batch split among --world processes on this machine, gradients
all-reduced by DDP's buckets during the backward over gloo (TCP on the loopback).

  torch_ddp.py --config configs/demo.json --world 2 --threads 1 --steps 30 [--bucket-mb 4]

Each process holds train.batch_size / world examples and, when the cores suffice, is pinned to
its own (rank r: cores r*threads ..), as mpirun binds simdiff's ranks; rank 0 prints one JSON
line with the median ms per step (after --warmup steps), timed like torch_model.py --time.
--world 1 runs the same step without DDP (the one-process baseline).

Only for bench/: torch is not a product dependency.
"""
import argparse
import datetime
import json
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model as tm  # noqa: E402  (sets ATEN_CPU_CAPABILITY / OPENBLAS_NUM_THREADS first)
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402


def worker(rank, args):
    if args.world > 1 and args.world * args.threads <= os.cpu_count():
        # One core per rank, as mpirun binds simdiff's ranks (--bind-to core).
        os.sched_setaffinity(0, range(rank * args.threads, (rank + 1) * args.threads))
    torch.set_num_threads(args.threads)
    world = args.world
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{args.port}", rank=rank,
                                world_size=world, timeout=datetime.timedelta(seconds=120))
    with open(args.config) as f:
        cfg = tm.merged_config(json.load(f))
    m, d, tc = cfg["model"], cfg["diffusion"], cfg["train"]
    B, R, C = tc["batch_size"], m["resolution"], m["channels"]
    assert B % world == 0, f"batch {B} does not divide among {world} processes"
    b = B // world
    model = tm.UViT(m)
    model.init_like_simdiff(tc["seed"])
    model.to(memory_format=torch.channels_last)
    params = list(model.parameters())
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, bucket_cap_mb=args.bucket_mb)
    opt = torch.optim.AdamW(params, lr=tc["lr"], betas=(tc["beta1"], tc["beta2"]),
                            eps=tc["adam_eps"], weight_decay=tc["weight_decay"], foreach=True)
    ema = [p.detach().clone() for p in params]
    gen = torch.Generator().manual_seed(1 + rank)
    x = (torch.rand(b, C, R, R, generator=gen) * 2 - 1).contiguous(memory_format=torch.channels_last)
    labels = torch.randint(0, max(m["num_classes"], 1), (b,), generator=gen)
    grid = (torch.arange(b, dtype=torch.float64) + rank * b) / B

    def step(i):
        opt.zero_grad(set_to_none=True)
        t = (torch.rand(1, generator=gen).double() + grid) % 1.0
        logsnr = tm.logsnr_schedule(t, d, R).float()
        alpha, sigma = torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()
        eps = torch.randn(x.shape, generator=gen)
        a4, s4 = alpha[:, None, None, None], sigma[:, None, None, None]
        z, v = a4 * x + s4 * eps, a4 * eps - s4 * x
        loss = tm.diffusion_loss_from(net, cfg, z, logsnr, labels, v, alpha * alpha)
        loss.backward()  # DDP: the all-reduce of its buckets runs during this
        if tc["grad_clip"] > 0:
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
        loss = loss.detach()
        if world > 1:  # the global loss, as simdiff logs it (one small all-reduce)
            dist.all_reduce(loss)
            loss /= world
        return float(loss)

    for i in range(args.warmup):
        step(i)
    times = []
    for i in range(args.steps):
        t0 = time.perf_counter()
        step(args.warmup + i)
        times.append((time.perf_counter() - t0) * 1e3)
    if rank == 0:
        print(json.dumps({"name": f"ddp/gloo/world{world}", "config": args.config, "batch": B,
                          "per_rank": b, "world": world, "threads": args.threads,
                          "bucket_mb": args.bucket_mb, "steps": args.steps,
                          "ms_per_step": statistics.median(times), "times_ms": times,
                          "torch": torch.__version__}), flush=True)
    if world > 1:
        dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/demo.json")
    ap.add_argument("--world", type=int, default=2, help="processes (1: no DDP)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bucket-mb", type=float, default=4.0, help="DDP bucket_cap_mb (simdiff's default)")
    ap.add_argument("--port", type=int, default=0, help="rendezvous port (default: a free one)")
    args = ap.parse_args()
    if args.port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            args.port = s.getsockname()[1]
    if args.world == 1:
        worker(0, args)
    else:
        mp.spawn(worker, args=(args,), nprocs=args.world, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
