"""Does data loading keep up with training? Loader images/s next to training-step images/s.

Writes a folder dataset of PNG pairs (the synthetic streets at the chosen size) to a temporary
directory, reads it back through the real loader (PNG decode, resize, crop, flip, collate;
worker processes, pinned memory when on CUDA), and times full training steps (G step, D step
with LabelMix, EMA) on random batches of the same size. The ratio loader / step must stay
above 1: then the loader never starves training.

    python benchmarks/loader_vs_step.py                       # CPU default preset size
    python benchmarks/loader_vs_step.py --preset cityscapes --device cuda --workers 8
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace

import torch

from dpgan import losses
from dpgan.presets import preset
from dpgan.data.registry import build_dataset
from dpgan.data.synthetic import write_synthetic
from dpgan.training.ema import ema_update, make_ema
from dpgan.models import build_models_from_config
from dpgan.devices import resolve_device
from dpgan.tensors import one_hot
from dpgan.training.steps import Batch, Objective, discriminator_step, generator_step


def loader_images_per_s(cfg, workers: int, batches: int, pin: bool) -> float:
    ds = build_dataset(cfg.data, "train", train=True)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=cfg.train.batch_size, shuffle=True, num_workers=workers, pin_memory=pin,
        drop_last=True, persistent_workers=workers > 0,
    )
    it = iter(loader)
    next(it)  # start-up (worker launch) is not throughput
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        n += next(it)["image"].shape[0]
    return n / (time.perf_counter() - t0)


def step_images_per_s(cfg, dev: torch.device, steps: int, num_classes: int) -> float:
    G, D = build_models_from_config(cfg.model, num_classes)
    G, D = G.to(dev), D.to(dev)
    ema = make_ema(G)
    t = cfg.train
    opt_g = torch.optim.Adam(G.parameters(), lr=t.lr_g, betas=(0.0, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=t.lr_d, betas=(0.0, 0.999))
    b, h, w = t.batch_size, cfg.data.height, cfg.data.width
    label = torch.randint(0, num_classes, (b, h, w), device=dev)
    batch = Batch(torch.rand(b, 3, h, w, device=dev) * 2 - 1, label, one_hot(label, num_classes))

    def step() -> None:
        alpha = losses.class_balance_weights(label, num_classes)
        D.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        generator_step(Objective.from_config(cfg), G, D, batch, alpha)["g/total"].backward()
        opt_g.step()
        D.requires_grad_(True)
        opt_d.zero_grad(set_to_none=True)
        discriminator_step(Objective.from_config(cfg), G, D, batch, alpha)["d/total"].backward()
        opt_d.step()
        ema_update(ema, G, t.ema_decay)

    step()  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    return steps * b / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="synthetic-streets")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--images", type=int, default=96, help="PNG pairs written for the loader test")
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    cfg = preset(args.preset)
    dev = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic(tmp, height=cfg.data.height, width=cfg.data.width, num_train=args.images, num_val=1,
                        progress=False)
        folder_cfg = replace(cfg, data=replace(cfg.data, dataset="folder", root=tmp, num_workers=args.workers))
        num_classes = build_dataset(folder_cfg.data, "train", train=True).info.num_classes
        load = loader_images_per_s(folder_cfg, args.workers, args.batches, pin=dev.type == "cuda")
    train = step_images_per_s(cfg, dev, args.steps, num_classes)
    print(f"preset {args.preset}, {cfg.data.height}x{cfg.data.width}, batch {cfg.train.batch_size}, device {dev}, "
          f"torch {torch.__version__}")
    print(f"loader ({args.workers} workers, PNG decode + transforms): {load:8.1f} images/s")
    print(f"training step (G + D + LabelMix + EMA):          {train:8.1f} images/s")
    print(f"ratio loader / training: {load / train:.1f}x  ({'keeps up' if load > train else 'STARVES training'})")


if __name__ == "__main__":
    main()
