"""Segmentation-based scores of generated images: mIoU, pixel accuracy, obj-mIoU (docs/evaluation.md 2).

A pretrained segmenter labels each generated image; its prediction is compared with the label
map the image was generated from. Counts go into one confusion matrix over the whole test set
(not per image). The reference evaluators disagree on classes absent from the ground truth, and
on small generated test sets that changes the score, so the policy is explicit:

- `drn` / `cityscapes` (fyu/drn, cityscapesScripts): a class absent from GT *and* prediction has
  IoU 0/0 = NaN and is left out (nanmean); a class only predicted has IoU 0 and counts.
- `ade20k` (mit_semseg): every class counts, 0/0 is taken as 0; plain mean over all classes.
- `deeplab` (deeplab-pytorch, COCO-Stuff): only classes with ground-truth pixels count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from dpgan.errors import DataError

MIoUPolicy = Literal["drn", "cityscapes", "ade20k", "deeplab"]
MIOU_POLICIES: tuple[str, ...] = ("drn", "cityscapes", "ade20k", "deeplab")
MIOU_POLICY_BY_DATASET: dict[str, MIoUPolicy] = {
    "cityscapes": "drn",
    "ade20k": "ade20k",
    "ade20k-outdoor": "ade20k",
    "coco-stuff": "deeplab",
}

# ------------------------------------------------------------------------ Cityscapes tables
CITYSCAPES_IGNORE_ID = 255
# labelId -> trainId (cityscapesScripts labels.py); every other labelId is ignored.
CITYSCAPES_LABEL_TO_TRAIN_ID: dict[int, int] = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip
CITYSCAPES_TRAIN_ID_NAMES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)  # fmt: skip
# DP-GAN's obj-mIoU classes: pole, traffic light, traffic sign, person, rider, car, truck, bus,
# train, motorcycle, bicycle.
CITYSCAPES_OBJECT_TRAIN_IDS: tuple[int, ...] = (5, 6, 7, 11, 12, 13, 14, 15, 16, 17, 18)


def cityscapes_label_to_train_id(label_ids: torch.Tensor) -> torch.Tensor:
    """Map a Cityscapes labelId map (0..33, also -1) to trainIds 0..18, everything else 255."""
    table = torch.full((256,), CITYSCAPES_IGNORE_ID, dtype=torch.long, device=label_ids.device)
    for label_id, train_id in CITYSCAPES_LABEL_TO_TRAIN_ID.items():
        table[label_id] = train_id
    ids = label_ids.long()
    in_range = (ids >= 0) & (ids < 256)
    return torch.where(in_range, table[ids.clamp(0, 255)], CITYSCAPES_IGNORE_ID)


def shift_out_dont_care(label_map: torch.Tensor) -> torch.Tensor:
    """OASIS label maps of ADE20K (0..150) and COCO-Stuff (0..182) keep class 0 as don't-care;
    the segmenters' classes start at that map's id 1. Returns id - 1, so don't-care becomes -1,
    which `ConfusionMatrix` drops."""
    return label_map.long() - 1


# ------------------------------------------------------------------------ confusion matrix
@dataclass(frozen=True)
class SegmentationScores:
    miou: float
    pixel_accuracy: float
    per_class_iou: tuple[float, ...]  # NaN where ground truth and prediction are both empty
    obj_miou: float | None = None


class ConfusionMatrix:
    """`counts[t, p]`: pixels with ground truth t predicted as p, summed over the whole set.

    Ground-truth pixels outside [0, num_classes) (the ignore id 255, -1) are dropped before
    counting, as every reference evaluator does; their prediction does not matter.
    """

    def __init__(self, num_classes: int, device: str | torch.device = "cpu") -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        self.num_classes = num_classes
        self.counts = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.counts.zero_()

    def update(self, prediction: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch: integer maps of equal shape (N x H x W or H x W)."""
        if prediction.shape != target.shape:
            raise DataError(
                f"Prediction {tuple(prediction.shape)} and label map {tuple(target.shape)} differ "
                "in size; resize the label map (nearest) to the generated image size."
            )
        n = self.num_classes
        pred = prediction.reshape(-1).long().to(self.counts.device)
        gt = target.reshape(-1).long().to(self.counts.device)
        valid = (gt >= 0) & (gt < n)
        pred, gt = pred[valid], gt[valid]
        if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= n):
            raise ValueError(f"predicted class ids must lie in [0, {n})")
        self.counts += torch.bincount(gt * n + pred, minlength=n * n).reshape(n, n)

    # The scores read the matrix in float64: counts of a 5000-image set exceed float32's
    # exact-integer range.
    def _hist(self) -> np.ndarray:
        return self.counts.cpu().numpy().astype(np.float64)

    def iou(self) -> np.ndarray:
        """Per-class IoU = tp / (gt + pred - tp); NaN where the class is in neither."""
        hist = self._hist()
        tp = np.diag(hist)
        union = hist.sum(axis=1) + hist.sum(axis=0) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return tp / union

    def miou(self, policy: MIoUPolicy = "drn") -> float:
        iou = self.iou()
        if policy in ("drn", "cityscapes"):
            return _nanmean(iou)
        if policy == "ade20k":
            return float(np.nan_to_num(iou, nan=0.0).mean())
        if policy == "deeplab":
            return _nanmean(iou[self._hist().sum(axis=1) > 0])
        raise ValueError(f"mIoU policy must be one of {MIOU_POLICIES}, got {policy!r}")

    def obj_miou(self, object_classes: tuple[int, ...] = CITYSCAPES_OBJECT_TRAIN_IDS) -> float:
        """Mean IoU over a class subset (DP-GAN's obj-mIoU), NaN handling as DRN."""
        return _nanmean(self.iou()[list(object_classes)])

    def pixel_accuracy(self) -> float:
        hist = self._hist()
        total = hist.sum()
        return float(np.trace(hist) / total) if total else float("nan")

    def scores(
        self, policy: MIoUPolicy = "drn", object_classes: tuple[int, ...] | None = None
    ) -> SegmentationScores:
        return SegmentationScores(
            miou=self.miou(policy),
            pixel_accuracy=self.pixel_accuracy(),
            per_class_iou=tuple(float(v) for v in self.iou()),
            obj_miou=None if object_classes is None else self.obj_miou(object_classes),
        )


def _nanmean(values: np.ndarray) -> float:
    """np.nanmean without its warning: NaN when no class qualifies."""
    kept = values[~np.isnan(values)]
    return float(kept.mean()) if kept.size else float("nan")
