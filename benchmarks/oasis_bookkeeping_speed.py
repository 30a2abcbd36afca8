"""The two savings of 2026-12-01 in one run, side by side, on the OASIS row of the study
(synthetic-streets 64x128, batch 8, width 8, fused resampling + channels_last as the preset).

1. Where the OASIS generator resizes its [z ; label] condition: in every SPADE layer with
   F.interpolate (before), once per block with F.interpolate, or once per block as a strided
   view (now). Printed: seconds per training iteration (G step + D step + EMA) and speed-up.
2. What one BN recalibration of the EMA generator costs, in training iterations: training used
   to run it once per sample, checkpoint and evaluation at a step, and now once per step.

    cd benchmarks && OMP_NUM_THREADS=2 python oasis_bookkeeping_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import contextlib
import time
from statistics import median
from unittest import mock

import torch
import torch.nn.functional as F

import dpgan.models.oasis_generator as oasis_generator
import dpgan.models.spade as spade
from dpgan.presets import preset
from dpgan.data.synthetic import make_pair
from dpgan.training.ema import make_ema, recalibrate_batchnorm
from dpgan.tensors import one_hot
from train_speed import our_iteration


def _interpolate(x, size):
    return x if tuple(x.shape[-2:]) == tuple(size) else F.interpolate(x, size=tuple(size), mode="nearest")


def _every_spade(self, cond):
    return lambda i, size: cond  # each SPADE layer resizes the full-size condition itself


VARIANTS = {
    "interpolate in every SPADE (before)": [
        mock.patch.object(spade, "resize_nearest", _interpolate),
        mock.patch.object(oasis_generator, "resize_nearest", _interpolate),
        mock.patch.object(oasis_generator.OASISGenerator, "block_conditions", _every_spade),
    ],
    "interpolate once per block": [
        mock.patch.object(spade, "resize_nearest", _interpolate),
        mock.patch.object(oasis_generator, "resize_nearest", _interpolate),
    ],
    "strided view once per block (now)": [],
}


def patched(fn, patches):
    def run():
        with contextlib.ExitStack() as stack:
            for p in patches:
                stack.enter_context(p)
            fn()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    cfg = preset("synthetic-streets", "oa-oa")
    b, h, w, n = cfg.train.batch_size, cfg.data.height, cfg.data.width, 12
    pairs = [make_pair(0, "train", i, h, w) for i in range(b)]
    label = torch.stack([torch.from_numpy(lab.astype("int64")) for lab, _ in pairs])
    image = torch.stack([torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1 for _, img in pairs])

    z_dim, cond = cfg.model.z_dim, one_hot(label, n)
    its = {}
    for name, patches in VARIANTS.items():
        it, models = our_iteration(cfg, torch.device("cpu"), image, label, optimised=True, bf16=False,
                                   compile=False, channels_last=True, num_classes=n)
        G_ema = make_ema(models[0])

        def recalibrate(G_ema=G_ema) -> None:  # noqa: N803 - the generator, named as in training/loop.py
            batches = range(cfg.train.ema_bn_batches)
            recalibrate_batchnorm(G_ema, batches, lambda g, _: g(cond, torch.randn(b, z_dim)))

        its[name] = patched(it, patches)
        its[f"{name}: recalibration"] = patched(recalibrate, patches)
    for fn in its.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in its}
    names = list(its)
    for r in range(args.repeats):  # interleaved, so that load drift hits every variant
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            its[name]()
            times[name].append(time.perf_counter() - t0)
    med = {k: median(v) for k, v in times.items()}
    print(f"OASIS row of the study, preset {cfg.name}: {h}x{w}, batch {b}, G/D width {cfg.model.g_width}/"
          f"{cfg.model.d_width}; {torch.get_num_threads()} thread(s); torch {torch.__version__}; "
          f"repeats {args.repeats}, medians")
    before = "interpolate in every SPADE (before)"
    print(f"| condition resizing | s/iteration | speed-up vs before | s/EMA BN recalibration ({cfg.train.ema_bn_batches}"
          " batches) | speed-up vs before |\n|---|---:|---:|---:|---:|")
    for name in VARIANTS:
        it, rc = med[name], med[f"{name}: recalibration"]
        print(f"| {name} | {it:.3f} | {med[before] / it:.2f}x | {rc:.3f} | {med[f'{before}: recalibration'] / rc:.2f}x |")
    now = "strided view once per block (now)"
    print(f"\nOne EMA BN recalibration costs {med[f'{now}: recalibration'] / med[now]:.2f} training iterations; "
          "a step with a sample, a checkpoint and an evaluation ran it 3 times, now once.")


if __name__ == "__main__":
    main()
