"""Training speed: our optimised path, our plain eager fp32 path and the published DP-GAN code,
measured side by side in one run on the same data.

One iteration = G step + D step with LabelMix + EMA update (+ the finiteness check of our
loop), as each implementation's training loop runs it. Repeats alternate between the
implementations (A B C, B C A, ...) so that load drift on a shared machine hits all of them;
times are medians. Reported: images/s, peak memory, FLOPs per image (torch.utils.flop_counter:
convolutions and matmuls, forward and backward) and MFU against the peak stated for the device.

The published implementation runs from a scratch copy outside this project, unmodified
(published_dpgan.py says how to get it and what the adapter does).

    python benchmarks/train_speed.py --quick --published-src /tmp/published_dpgan
    python benchmarks/train_speed.py --config cityscapes --batch 1 --repeats 2 --published-src ...
    python benchmarks/train_speed.py --config cityscapes --device cuda --bf16 --compile --published-src ...
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from statistics import median

import torch

from dpgan import losses
from dpgan.training import speed
from dpgan.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig
from dpgan.training.distributed import World
from dpgan.training.ema import ema_update, make_ema
from dpgan.losses import labelmix_mask_from_coins
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot
from dpgan.training.steps import Batch, Objective, discriminator_step, generator_step
from published_dpgan import NUM_CLASSES, PUBLISHED_HOWTO, published_iteration

# The published code fixes the discriminator (width 64), the pyramid (64) and z (64): so do we here.
CONFIGS = {
    "cityscapes": dict(height=256, width=512, batch=5, g_width=64),
    "cpu": dict(height=64, width=128, batch=4, g_width=16),
    "quick": dict(height=64, width=128, batch=2, g_width=8),
}
# Dense peak FLOP/s used for MFU (state yours with --peak-tflops).
PEAKS_TFLOPS = {("H100", "bf16"): 989.4, ("H100", "fp32"): 494.7, ("H200", "bf16"): 989.4, ("H200", "fp32"): 494.7,
                ("A100", "bf16"): 312.0, ("A100", "fp32"): 156.0}
CPU_GHZ, CPU_FLOP_PER_CYCLE = 2.6, 64  # AVX-512: 2 FMA units x 16 fp32 lanes x 2; per core used


def peak_flops(device: torch.device, precision: str, threads: int, override_tflops: float | None) -> tuple[float, str]:
    if override_tflops:
        return override_tflops * 1e12, f"{override_tflops} TFLOP/s (--peak-tflops)"
    if device.type == "cpu":
        peak = CPU_GHZ * 1e9 * CPU_FLOP_PER_CYCLE * threads
        return peak, f"{peak / 1e9:.0f} GFLOP/s = {threads} core(s) x {CPU_GHZ} GHz x {CPU_FLOP_PER_CYCLE} fp32 FLOP/cycle"
    name = torch.cuda.get_device_name(device)
    for (gpu, prec), tflops in PEAKS_TFLOPS.items():
        if gpu in name and prec == precision:
            return tflops * 1e12, f"{tflops} TFLOP/s ({gpu} dense {'bf16' if prec == 'bf16' else 'tf32'})"
    return float("nan"), f"unknown for {name}: pass --peak-tflops"


def config_for(size: dict, batch: int) -> Config:
    return Config(
        name="benchmark",
        data=DataConfig(dataset="cityscapes", height=size["height"], width=size["width"]),
        model=ModelConfig(g_width=size["g_width"], d_width=64, z_dim=64, pyramid_width=64),
        loss=LossConfig(lambda_labelmix=5.0),
        train=TrainConfig(batch_size=batch, ema_decay=0.999),
    )


def make_data(cfg: Config, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The same images in [-1, 1] and label ids for every implementation."""
    g = torch.Generator().manual_seed(seed)
    b, h, w = cfg.train.batch_size, cfg.data.height, cfg.data.width
    image = torch.rand(b, 3, h, w, generator=g) * 2 - 1
    label = torch.randint(0, NUM_CLASSES, (b, h, w), generator=g)
    return image.to(device), label.to(device)


# ---- ours ----------------------------------------------------------------------------------------

def our_iteration(cfg: Config, device: torch.device, image, label, *, optimised: bool, bf16: bool,
                  compile: bool, channels_last: bool = True, num_classes: int = NUM_CLASSES) -> tuple[callable, list]:
    """A closure running one training iteration of our loop (train.py), and the models.
    optimised = fused resampling in D (+ channels_last unless told otherwise, + compile, bf16)."""
    NUM_CLASSES = num_classes  # noqa: N806 - the module constant, unless told otherwise
    torch.manual_seed(0)
    G, D = build_models_from_config(cfg.model, NUM_CLASSES, fused_resampling=optimised)
    G, D = G.to(device), D.to(device)
    G_ema = make_ema(G)
    cpu_bf16 = optimised and bf16 and device.type == "cpu"  # a measurement, not a training option
    t = TrainConfig(channels_last=optimised and channels_last, compile=optimised and compile,
                    precision="bf16" if optimised and bf16 and not cpu_bf16 else "fp32")
    if optimised:
        speed.prepare_models(G, D, t, device)
    objective = Objective.from_config(cfg)
    step_g = speed.with_autocast(generator_step, t, device)
    step_d = speed.with_autocast(discriminator_step, t, device)
    if cpu_bf16:
        step_g, step_d = (_under_cpu_bf16(f) for f in (step_g, step_d))
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.0, 0.999))
    world = World.single(device)
    b = label.shape[0]
    coins = torch.randint(0, 2, (b, NUM_CLASSES), generator=torch.Generator().manual_seed(1))
    mask = labelmix_mask_from_coins(label, coins)
    z_dim = cfg.model.z_dim
    batch = Batch(image, label, one_hot(label, NUM_CLASSES), z_g=torch.randn(b, z_dim, device=device),
                  z_d=torch.randn(b, z_dim, device=device), labelmix_mask=mask)

    def iteration() -> None:
        alpha = losses.class_balance_weights(batch.label_map, NUM_CLASSES, ignore_index=0)
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        g = step_g(objective, G, D, batch, alpha)["g/total"]
        g.backward()
        if world.sync_gradients(G.parameters(), g).item():
            opt_g.step()
        D.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        d = step_d(objective, G, D, batch, alpha)["d/total"]
        d.backward()
        if world.sync_gradients(D.parameters(), d).item():
            opt_d.step()
        ema_update(G_ema, G, cfg.train.ema_decay)

    return iteration, [G, D]


def _under_cpu_bf16(fn):
    def run(*args, **kwargs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return fn(*args, **kwargs)
    return run


# ---- measuring -----------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def time_interleaved(runs: dict, device: torch.device, repeats: int) -> dict[str, list[tuple[float, float]]]:
    """(wall s, process CPU s) per repeat; repeat r runs the implementations in rotated order."""
    names = list(runs)
    out: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync(device)
            w0, c0 = time.perf_counter(), time.process_time()
            runs[name]()
            sync(device)
            out[name].append((time.perf_counter() - w0, time.process_time() - c0))
    return out


def build_variant(name: str, args, cfg: Config, device: torch.device, image, label):
    if name == "published":
        return published_iteration(Path(args.published_src), cfg, device, image, label)
    return our_iteration(cfg, device, image, label, optimised=name == "ours optimised", bf16=args.bf16,
                         compile=args.compile)


def memory_probe(args) -> None:
    """Child process: peak memory of one implementation alone (printed as one JSON line).
    CUDA: peak allocated during the third iteration. CPU: peak RSS of the process minus its RSS
    before the models were built (weights, gradients, Adam state and activations)."""
    device = torch.device(args.device)
    cfg = config_for(CONFIGS[args.config], args.batch or CONFIGS[args.config]["batch"])
    image, label = make_data(cfg, device)
    before = _proc_status_bytes("VmRSS")
    iteration, _ = build_variant(args.memory_probe, args, cfg, device, image, label)
    for _ in range(2):
        iteration()
    if device.type == "cuda":
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        iteration()
        sync(device)
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = _proc_status_bytes("VmHWM") - before
    print(json.dumps({"peak_bytes": peak}))


def _proc_status_bytes(key: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process from /proc (Linux). Not ru_maxrss: Linux
    carries that over from the parent across fork and exec, so a child would inherit our peak."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def measure_memory(name: str) -> float:
    cmd = [sys.executable, __file__, "--memory-probe", name] + [a for a in sys.argv[1:]]
    res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("{")]
    if res.returncode or not lines:
        print(f"memory probe of {name} failed:\n{res.stderr[-2000:]}")
        return float("nan")
    return json.loads(lines[-1])["peak_bytes"]


def ratio(a: float, b: float) -> str:
    return "n/a" if not (a == a and b == b and b) else f"{a / b:.2f}x"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="cpu")
    p.add_argument("--quick", action="store_true", help="the 'quick' size (64x128, width 8, batch 2), 3 repeats")
    p.add_argument("--batch", type=int, default=None, help="override the configuration's batch size")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations per implementation (3 with --compile)")
    p.add_argument("--bf16", action="store_true",
                   help="our optimised path with bf16 autocast (CUDA; on CPU a measurement only, not a training option)")
    p.add_argument("--compile", action="store_true", help="our optimised path with torch.compile")
    p.add_argument("--published-src", default=None)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory child processes")
    p.add_argument("--memory-probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.config, args.repeats = "quick", min(args.repeats, 3)
    if args.memory_probe:
        return memory_probe(args)
    device = torch.device(args.device)
    size = CONFIGS[args.config]
    cfg = config_for(size, args.batch or size["batch"])
    b = cfg.train.batch_size
    image, label = make_data(cfg, device)
    names = ["ours optimised", "ours eager fp32"] + (["published"] if args.published_src else [])
    runs, flops, params = {}, {}, {}
    for name in names:
        iteration, models = build_variant(name, args, cfg, device, image, label)
        params[name] = [sum(q.numel() for q in m.parameters()) for m in models]
        for i in range(max(args.warmup, 3 if args.compile and name == "ours optimised" else 1)):
            if i == 0:
                flops[name] = count_flops(iteration) / b  # the first iteration: counted, not timed
            else:
                iteration()
        runs[name] = iteration
    load_before = os.getloadavg()
    times = time_interleaved(runs, device, args.repeats)
    load_after = os.getloadavg()
    memory = {n: float("nan") for n in names} if args.no_memory else {n: measure_memory(n) for n in names}

    precision = "bf16" if args.bf16 else "fp32"
    peak, peak_text = peak_flops(device, precision, torch.get_num_threads(), args.peak_tflops)
    ips = {n: b / median(w for w, _ in times[n]) for n in names}
    cpu_ips = {n: b / median(c for _, c in times[n]) for n in names}
    pub = "published" if "published" in names else None
    print(f"training iteration (G step + D step with LabelMix + EMA), config {args.config}: "
          f"{cfg.data.height}x{cfg.data.width}, G width {cfg.model.g_width}, D width 64, batch {b}, "
          f"{NUM_CLASSES} classes; device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
             f", {torch.get_num_threads()} thread(s)") + f"; torch {torch.__version__}")
    print("ours optimised = fused resampling in D + channels_last" + (" + torch.compile" if args.compile else "")
          + (" + bf16 autocast" + (" (CPU: not a training option)" if device.type == "cpu" else "")
             if precision == "bf16" else "") + f"; repeats {args.repeats} (interleaved), medians")
    print(f"load average before/after timing: {load_before[0]:.2f} / {load_after[0]:.2f}; MFU peak: {peak_text}")
    print("parameters (G, D): " + "; ".join(f"{n} {g:,} / {d:,}" for n, (g, d) in params.items()))
    print()
    head = ("| implementation | images/s | vs ours eager | vs published | CPU-time images/s | vs published (CPU time) "
            "| peak memory MiB | memory vs published | TFLOP/image | MFU |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for n in names:
        mfu = flops[n] * ips[n] / peak
        cells = [n, f"{ips[n]:.3f}", ratio(ips[n], ips["ours eager fp32"]),
                 ratio(ips[n], ips[pub]) if pub else "not measured",
                 f"{cpu_ips[n]:.3f}" if device.type == "cpu" else "-",
                 ratio(cpu_ips[n], cpu_ips[pub]) if pub and device.type == "cpu" else "-",
                 "-" if memory[n] != memory[n] else f"{memory[n] / 2**20:.0f}",
                 ratio(memory[n], memory[pub]) if pub else "not measured",
                 f"{flops[n] / 1e12:.3f}", f"{100 * mfu:.1f}%" if mfu == mfu else "n/a"]
        print("| " + " | ".join(cells) + " |")
    if not pub:
        print(f"\npublished: {PUBLISHED_HOWTO}")
    print("\nper-repeat wall seconds: " + "; ".join(f"{n}: " + ", ".join(f"{w:.2f}" for w, _ in times[n]) for n in names))


if __name__ == "__main__":
    main()
