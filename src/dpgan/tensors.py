"""Small tensor helpers shared by training, inference and evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def one_hot(label_map: Tensor, num_classes: int) -> Tensor:
    """(B, H, W) ids -> (B, N, H, W) float, built on the label's device."""
    return F.one_hot(label_map, num_classes).permute(0, 3, 1, 2).to(torch.float32)
