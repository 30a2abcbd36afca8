"""What a run's D and G do, checkpoint by checkpoint (docs/training-dynamics.md).

    python scripts/training_dynamics.py RUN [--images 64]

For every RUN/checkpoints/step_*.pt, on the first validation images:
- D's (N+1)-class cross entropy on the real images (ln(N+1) for a D that has not started to
  segment) and its pixel accuracy among the N semantic classes: the numbers the trainer logs
  as train/d_real_ce and train/d_real_acc on its training batches, here on fixed images so
  that runs compare;
- row shares: the part of a map's energy (its mean per image and channel removed) held by its
  row means, for the gradient of G's pixel loss with respect to G's images (how much of D's
  signal to G is one value per row), for G's images (the training generator, noise seed 0)
  and for the real images. A map that is constant along rows scores 1.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from dpgan import losses
from dpgan.checkpoint import list_checkpoints, load_checkpoint
from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.data.registry import build_dataset
from dpgan.models import build_models_from_config
from dpgan.tensors import one_hot


def row_share(x: torch.Tensor) -> float:
    x = x - x.mean(dim=(2, 3), keepdim=True)
    rows = x.mean(dim=3, keepdim=True).expand_as(x)
    return float((rows**2).sum() / (x**2).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--images", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    val = None
    for path in list_checkpoints(args.run):
        ck = load_checkpoint(path, map_location="cpu")
        cfg = Config.from_json(ck["config"])
        info = DatasetInfo.from_dict(json.loads(ck["dataset_info"]))
        if val is None:
            val = build_dataset(cfg.data, "val", train=False)
            items = [val[i] for i in range(min(args.images, len(val)))]
            image = torch.stack([it["image"] for it in items])
            label = torch.stack([it["label"] for it in items])
        G, D = build_models_from_config(cfg.model, info.num_classes)
        G.load_state_dict(ck["generator"])
        D.load_state_dict(ck["discriminator"])
        G.eval(), D.eval()
        with torch.no_grad():
            d = losses.segmentation_diagnostics(D(image).logits, label)
            z = torch.randn(len(label), G.z_dim, generator=torch.Generator().manual_seed(0)) if G.z_dim else None
            fake = G(one_hot(label, info.num_classes), z)
        fake.requires_grad_(True)
        alpha = losses.class_balance_weights(label, info.num_classes, info.ignore_index) if cfg.loss.class_balancing else None
        grad, = torch.autograd.grad(losses.pixel_loss(D(fake).logits, label, real=True, class_weights=alpha), fake)
        print(f"step {int(ck['step']):6d}  d_real_ce {float(d['train/d_real_ce']):.3f}  "
              f"d_real_acc {float(d['train/d_real_acc']):.3f}  row share: gradient {row_share(grad):.2f}, "
              f"generated {row_share(fake.detach()):.2f}, real {row_share(image):.2f}")


if __name__ == "__main__":
    main()
