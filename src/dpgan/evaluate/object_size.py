"""IoU by object size: does a generator draw small objects as well as large ones?

DP-GAN's claim is that its pyramid conditioning helps small objects; one mIoU over the whole
set cannot show that, because a class's IoU is dominated by its largest instances. Here every
object instance is scored on its own pixels and the counts are pooled per size bin.

Definitions (all at the evaluation resolution, ids in the judge's label space):

- An *instance* is an 8-connected component of one object class `c` (the dataset's
  small-object classes, e.g. the 11 obj-mIoU classes of Cityscapes) in the ground-truth map.
  Touching objects of one class form one instance (the label maps carry no instance ids).
- Its *relative area* is |I| / (H * W); it falls in bin b when edges[b-1] <= area < edges[b]
  (default edges 0.25 %, 1 %, 4 %: bins <0.25 %, 0.25-1 %, 1-4 %, >=4 %).
- For prediction P: tp(I) = #{p in I : P(p) = c}; fn(I) = |I| - tp(I);
  fp(I) = #{p : P(p) = c, GT(p) is another class (not ignored), and the ground-truth pixel of
  class c nearest to p (Euclidean) belongs to I}. Every false positive of c in an image is
  charged to exactly one instance of c, so painting c everywhere cannot score well; false
  positives in an image without any instance of c are charged to no bin (they still lower
  the class's IoU in the per-class scores).
- IoU of bin b = sum_{I in b} tp(I) / sum_{I in b} (tp(I) + fn(I) + fp(I)); NaN for an empty bin.

Pooled (not averaged per instance), like the confusion-matrix IoU, so that one-pixel instances
do not dominate a bin; the number of instances per bin is reported beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy import ndimage

SIZE_BIN_EDGES: tuple[float, ...] = (0.0025, 0.01, 0.04)
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def size_bin_names(edges: Sequence[float]) -> list[str]:
    """["<0.25%", "0.25-1%", "1-4%", ">=4%"] for the default edges."""

    def pct(v: float) -> str:
        return f"{100 * v:g}%"

    if not edges:
        return ["all"]
    names = [f"<{pct(edges[0])}"]
    names += [f"{pct(a)[:-1]}-{pct(b)}" for a, b in zip(edges[:-1], edges[1:])]
    return names + [f">={pct(edges[-1])}"]


def instance_counts(
    prediction: np.ndarray, target: np.ndarray, cls: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(area, tp, fp) per instance of class `cls` in one H x W ground-truth map."""
    components, n = ndimage.label(target == cls, structure=_EIGHT_CONNECTED)
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    flat = components.ravel()
    hit = prediction == cls
    area = np.bincount(flat, minlength=n + 1)[1:]
    tp = np.bincount(flat, weights=hit.ravel(), minlength=n + 1)[1:].astype(np.int64)
    spurious = hit & (target != cls) & (target >= 0) & (target < num_classes)
    fp = np.zeros(n, dtype=np.int64)
    if spurious.any():
        # For every pixel, the coordinates of the nearest instance pixel (distance transform of
        # the background), hence the instance each false positive is charged to.
        rows, cols = ndimage.distance_transform_edt(components == 0, return_distances=False, return_indices=True)
        nearest = components[rows, cols]
        fp = np.bincount(nearest[spurious], minlength=n + 1)[1:].astype(np.int64)
    return area.astype(np.int64), tp, fp


class ObjectSizeIoU:
    """Pooled tp / fn / fp of object instances, per relative-area bin (module docstring)."""

    def __init__(
        self,
        object_classes: Sequence[int],
        num_classes: int,
        edges: Sequence[float] = SIZE_BIN_EDGES,
    ) -> None:
        if list(edges) != sorted(edges) or any(not 0 < e < 1 for e in edges):
            raise ValueError(f"size-bin edges must be increasing fractions in (0, 1), got {edges}")
        self.object_classes = tuple(int(c) for c in object_classes)
        self.num_classes = num_classes
        self.edges = tuple(float(e) for e in edges)
        bins = len(self.edges) + 1
        self.tp = np.zeros(bins, dtype=np.int64)
        self.fn = np.zeros(bins, dtype=np.int64)
        self.fp = np.zeros(bins, dtype=np.int64)
        self.instances = np.zeros(bins, dtype=np.int64)

    def update(self, prediction: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add integer maps (N x H x W or H x W) in the judge's ids; ignored ids lie outside
        [0, num_classes)."""
        if not self.object_classes:
            return
        pred = np.asarray(prediction.cpu() if isinstance(prediction, torch.Tensor) else prediction)
        gt = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {pred.shape} and target {gt.shape} differ in shape")
        if gt.ndim == 2:
            pred, gt = pred[None], gt[None]
        for p, t in zip(pred, gt):
            pixels = t.shape[0] * t.shape[1]
            for cls in self.object_classes:
                area, tp, fp = instance_counts(p, t, cls, self.num_classes)
                if not area.size:
                    continue
                bins = np.searchsorted(self.edges, area / pixels, side="right")
                np.add.at(self.tp, bins, tp)
                np.add.at(self.fn, bins, area - tp)
                np.add.at(self.fp, bins, fp)
                np.add.at(self.instances, bins, 1)

    def iou(self) -> np.ndarray:
        denominator = (self.tp + self.fn + self.fp).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.instances > 0, self.tp / denominator, np.nan)

    def result(self) -> dict[str, Any]:
        return {
            "bins": size_bin_names(self.edges),
            "edges": list(self.edges),
            "iou": [float(v) for v in self.iou()],
            "instances": [int(v) for v in self.instances],
            "pixels": [int(v) for v in self.tp + self.fn],
        }
