"""How well a run's discriminator segments real images, checkpoint by checkpoint.

    python scripts/d_segmentation.py RUN [--images 64]

For every RUN/checkpoints/step_*.pt: D's (N+1)-class cross entropy on the first validation
images (ln(N+1) for a D that has not started to segment) and its pixel accuracy among the N
semantic classes: the same two numbers the trainer logs as train/d_real_ce and
train/d_real_acc on its training batches, here on fixed validation images so that runs
compare (docs/training-dynamics.md).
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
        _, D = build_models_from_config(cfg.model, info.num_classes)
        D.load_state_dict(ck["discriminator"])
        with torch.no_grad():
            d = losses.segmentation_diagnostics(D.eval()(image).logits, label)
        print(f"step {int(ck['step']):6d}  d_real_ce {float(d['train/d_real_ce']):.3f}  "
              f"d_real_acc {float(d['train/d_real_acc']):.3f}")


if __name__ == "__main__":
    main()
