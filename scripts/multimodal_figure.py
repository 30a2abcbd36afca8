"""Make docs/images/multimodal.png with the Python API: one synthetic street label map, then
(row 1) seeds 0-3, (row 2) the sky and then the buildings redrawn with new noise, keeping the
rest, (row 3) five steps on the great circle from seed 0 to seed 3.

Usage: python scripts/multimodal_figure.py [MODEL] [OUT]   (defaults: the built-in model
synthetic-streets, docs/images/multimodal.png). MODEL is a run folder, a checkpoint file, a saved
model folder or a built-in model's name. Every image is the model's output, scaled up 2x for
viewing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dpgan import DPGAN
from dpgan.data.synthetic import make_pair
from dpgan.visualize import colorize, to_uint8

PAD = 4


def sheet(rows: list[list[np.ndarray]], scale: int = 2) -> Image.Image:
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    canvas = np.full((len(rows) * (h + PAD) - PAD, cols * (w + PAD) - PAD, 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas[i * (h + PAD): i * (h + PAD) + h, j * (w + PAD): j * (w + PAD) + w] = img
    im = Image.fromarray(canvas)
    return im.resize((im.width * scale, im.height * scale), Image.NEAREST)


def main(argv: list[str]) -> int:
    source = argv[0] if argv else "synthetic-streets"
    out = Path(argv[1] if len(argv) > 1 else "docs/images/multimodal.png")
    model = DPGAN.from_checkpoint(source, device="cpu")
    label, real = make_pair(0, "val", 3, model.config.data.height, model.config.data.width)
    shown = to_uint8(colorize(torch.from_numpy(label.astype(np.int64))[None], model.info.colors))[0]
    seeds = list(model.generate(label, seed=0, num_samples=4))
    sky = model.resample(label, 0, 7, class_id="sky")
    building = model.resample(label, 0, 7, class_id="building")
    walk = list(model.interpolate(label, 0, 3, steps=5))
    blank = np.full_like(seeds[0], 255)
    sheet([[shown, *seeds], [shown, seeds[0], sky, building, blank], walk]).save(out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
