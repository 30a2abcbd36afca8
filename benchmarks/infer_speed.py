"""Synthesis speed: generator images/s of our optimised path, our plain eager path and the
published DP-GAN code, side by side in one run, at batch 1 and 16 (by default).

Every implementation maps the same one-hot label maps (+ noise) to images with its generator
in eval mode, without autograd. Repeats alternate between implementations; times are medians.
See published_dpgan.py for how the published code is obtained and driven (it is not modified).

    python benchmarks/infer_speed.py --quick --published-src /tmp/published_dpgan
    python benchmarks/infer_speed.py --config cityscapes --batches 1,4 --published-src /tmp/published_dpgan
    python benchmarks/infer_speed.py --config cityscapes --device cuda --bf16 --compile --published-src ...
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
from pathlib import Path
from statistics import median

import torch

from dpgan.training import speed
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot
from published_dpgan import NUM_CLASSES, PUBLISHED_HOWTO, build_published
from train_speed import CONFIGS, config_for, count_flops, peak_flops, ratio, sync, time_interleaved


def make_runs(args, cfg, device: torch.device, batch: int) -> tuple[dict, dict]:
    """name -> closure generating one batch; name -> extra memory of one call (CUDA) or nan."""
    g = torch.Generator().manual_seed(0)
    label = torch.randint(0, NUM_CLASSES, (batch, cfg.data.height, cfg.data.width), generator=g).to(device)
    onehot = one_hot(label, NUM_CLASSES)
    z = torch.randn(batch, 64, generator=g).to(device)
    torch.manual_seed(0)
    G, _ = build_models_from_config(cfg.model, NUM_CLASSES)
    G = G.to(device)
    with torch.no_grad():  # BN running statistics as after training, not the initial (0, 1)
        G.train()(onehot, z)
    eager = copy.deepcopy(G).eval()
    fast = speed.prepare_generator_for_synthesis(copy.deepcopy(G), channels_last=True)
    if args.compile:
        speed.compile_or_eager(fast)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else contextlib.nullcontext())

    def ours_optimised():
        with torch.inference_mode(), amp:
            return fast(onehot, z)

    def ours_eager():
        with torch.no_grad():
            return eager(onehot, z)

    runs = {"ours optimised": ours_optimised, "ours eager fp32": ours_eager}
    if args.published_src:
        model, _, _, _ = build_published(Path(args.published_src), cfg, device)
        model.eval()  # its test.py; synthesis uses the EMA generator under no_grad ("generate" mode)

        def published():
            with torch.no_grad():
                return model.netEMA(onehot)

        runs["published"] = published
    return runs


def extra_memory(fn, device: torch.device) -> float:
    if device.type != "cuda":
        return float("nan")
    sync(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--quick", action="store_true", help="the 'quick' size, 5 repeats")
    p.add_argument("--batches", default="1,16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--bf16", action="store_true",
                   help="bf16 autocast in our optimised path (on CPU: a measurement only, not a training option)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--published-src", default=None)
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args()
    if args.quick:
        args.config, args.repeats = "quick", min(args.repeats, 5)
    device = torch.device(args.device)
    size = CONFIGS[args.config]
    cfg = config_for(size, 1)
    precision = "bf16" if args.bf16 else "fp32"
    peak, peak_text = peak_flops(device, precision, torch.get_num_threads(), args.peak_tflops)
    print(f"generator inference, config {args.config}: {cfg.data.height}x{cfg.data.width}, G width {cfg.model.g_width}, "
          f"{NUM_CLASSES} classes; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {torch.get_num_threads()} thread(s)") + f"; torch {torch.__version__}")
    print("ours optimised = spectral norm baked into the weights + channels_last + inference_mode"
          + (" + torch.compile" if args.compile else "") + (" + bf16 autocast" if args.bf16 else "")
          + f"; repeats {args.repeats} (interleaved), medians; MFU peak: {peak_text}")
    head = "| batch | implementation | images/s | vs ours eager | vs published | extra memory MiB | GFLOP/image | MFU |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for batch in [int(b) for b in args.batches.split(",")]:
        runs = make_runs(args, cfg, device, batch)
        flops = {}
        for name, fn in runs.items():
            flops[name] = count_flops(fn) / batch
            for _ in range(max(args.warmup, 3 if args.compile and name == "ours optimised" else 1) - 1):
                fn()
        load = os.getloadavg()[0]
        times = time_interleaved(runs, device, args.repeats)
        memory = {n: extra_memory(fn, device) for n, fn in runs.items()}
        ips = {n: batch / median(w for w, _ in times[n]) for n in runs}
        pub = "published" if "published" in runs else None
        for n in runs:
            mfu = flops[n] * ips[n] / peak
            cells = [str(batch), n, f"{ips[n]:.2f}", ratio(ips[n], ips["ours eager fp32"]),
                     ratio(ips[n], ips[pub]) if pub else "not measured",
                     "-" if memory[n] != memory[n] else f"{memory[n] / 2**20:.0f}",
                     f"{flops[n] / 1e9:.1f}", f"{100 * mfu:.1f}%" if mfu == mfu else "n/a"]
            print("| " + " | ".join(cells) + " |")
        print(f"(batch {batch}: load average {load:.2f} before timing)")
    if not args.published_src:
        print(f"\npublished: {PUBLISHED_HOWTO}")


if __name__ == "__main__":
    main()
