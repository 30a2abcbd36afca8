"""Step time of the default CPU preset (`dpgan train` with no arguments: synthetic-streets,
64x128, batch 8, widths 8) with each speed option, side by side in one run.

Compares one training iteration (G step + D step with LabelMix + EMA) of: the plain path,
fused resampling in D alone, and fused resampling + channels_last (what the preset uses).
Repeats are interleaved so load drift hits every variant; medians are printed.

    OMP_NUM_THREADS=2 python benchmarks/default_preset_speed.py [--repeats 6]
"""

from __future__ import annotations

import argparse
import time
from statistics import median

import torch

from dpgan.presets import preset
from dpgan.data.synthetic import make_pair
from train_speed import our_iteration


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=6)
    args = p.parse_args()
    cfg = preset("synthetic-streets")
    b, h, w = cfg.train.batch_size, cfg.data.height, cfg.data.width
    pairs = [make_pair(0, "train", i, h, w) for i in range(b)]
    label = torch.stack([torch.from_numpy(lab.astype("int64")) for lab, _ in pairs])
    image = torch.stack([torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1 for _, img in pairs])
    n = 12
    variants = {
        "plain": dict(optimised=False, channels_last=False),
        "fused resampling": dict(optimised=True, channels_last=False),
        "fused + channels_last": dict(optimised=True, channels_last=True),
    }
    its = {}
    for name, kw in variants.items():
        its[name], _ = our_iteration(cfg, torch.device("cpu"), image, label, bf16=False, compile=False,
                                     num_classes=n, **kw)
        its[name]()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in its}
    names = list(its)
    for r in range(args.repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            t0 = time.perf_counter()
            its[name]()
            times[name].append(time.perf_counter() - t0)
    print(f"default preset {cfg.name}: {h}x{w}, batch {b}, G/D width {cfg.model.g_width}/{cfg.model.d_width}; "
          f"{torch.get_num_threads()} thread(s); torch {torch.__version__}; repeats {args.repeats}, medians")
    base = median(times["plain"])
    print("| variant | s/iteration | speed-up vs plain |\n|---|---:|---:|")
    for name, v in times.items():
        print(f"| {name} | {median(v):.3f} | {base / median(v):.2f}x |")


if __name__ == "__main__":
    main()
