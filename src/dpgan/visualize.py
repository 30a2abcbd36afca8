"""Pictures: label maps in their class colours and grids of label | generated | real."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def colorize(label_map: Tensor, colors: Sequence[Sequence[int]]) -> Tensor:
    """(B, H, W) class ids -> (B, 3, H, W) float in [-1, 1] using the dataset's colours."""
    palette = torch.tensor(colors, dtype=torch.float32, device=label_map.device) / 127.5 - 1.0
    ids = label_map.clamp(0, len(colors) - 1)
    return palette[ids].permute(0, 3, 1, 2)


def to_uint8(images: Tensor) -> np.ndarray:
    """(B, 3, H, W) in [-1, 1] -> (B, H, W, 3) uint8, rounded and clamped (not truncated)."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def image_grid(columns: Sequence[Tensor], pad: int = 2, scale: int = 1) -> np.ndarray:
    """Rows = examples, columns = the given (B, 3, H, W) tensors side by side; uint8 HxWx3."""
    cols = [to_uint8(c) for c in columns]
    b, h, w, _ = cols[0].shape
    grid = np.full((b * (h + pad) + pad, len(cols) * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for j, col in enumerate(cols):
        for i in range(b):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = col[i]
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    return grid


def save_png(array: np.ndarray, path: str | Path) -> None:
    """Write through a temporary name so a crash never leaves a truncated PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)
