"""A segmenter that judges generated images, tied to the label space of one dataset.

A run's label maps use the dataset's ids (Cityscapes labelIds 0..34, ADE20K 0..150 with 0 as
don't-care, ...); each published segmenter predicts its own ids (DRN: 19 trainIds, UperNet:
150 classes, DeepLab: 182). A `Judge` holds the network together with the map from the
dataset's ids to the network's, the mIoU policy of the evaluator the paper numbers came from
(docs/evaluation.md 2.1) and the object classes of obj-mIoU, so that the generated and the real
images are scored through exactly the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dpgan.data.info import DatasetInfo
from dpgan.errors import DPGANError
from dpgan.evaluate.object_size import ObjectSizeIoU
from dpgan.evaluate.segmentation import (
    CITYSCAPES_OBJECT_TRAIN_IDS,
    CITYSCAPES_TRAIN_ID_NAMES,
    ConfusionMatrix,
    MIoUPolicy,
    cityscapes_label_to_train_id,
    shift_out_dont_care,
)

# The segmenter each paper table uses (docs/evaluation.md 2.6), by the project's dataset name.
PUBLISHED_SEGMENTER_BY_DATASET: dict[str, str] = {
    "cityscapes": "DRN-D-105",
    "ade20k": "UperNet-101",
    "ade20k-outdoor": "UperNet-101",
    "coco-stuff": "DeepLab-v2",
}
# Resolution at which OASIS / DP-GAN fed generated images to that segmenter (docs/evaluation.md 2.2
# protocol (a), 2.4, 2.5): the generated image as is, the label map nearest-resized to it.
PAPER_RESOLUTION: dict[str, tuple[int, int]] = {
    "cityscapes": (256, 512), "ade20k": (256, 256), "ade20k-outdoor": (256, 256), "coco-stuff": (256, 256),
}  # fmt: skip
_OPTIONS_BY_SEGMENTER = {
    "DRN-D-105": "--drn",
    "UperNet-101": "--upernet-encoder/--upernet-decoder",
    "DeepLab-v2": "--deeplab",
}


@dataclass(frozen=True)
class Judge:
    """`segmenter.predict(images, value_range)` -> ids in [0, num_classes); `to_judge_ids` maps
    the dataset's label map to those ids, with every ignored pixel outside that range."""

    name: str
    segmenter: nn.Module
    class_names: tuple[str, ...]
    policy: MIoUPolicy
    object_classes: tuple[int, ...]
    to_judge_ids: Callable[[Tensor], Tensor]
    published: bool
    weights: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "published": self.published,
            "weights": self.weights,
            "num_classes": self.num_classes,
            "miou_policy": self.policy,
            "object_classes": [self.class_names[c] for c in self.object_classes],
            "input": "generated image at its own size; label map nearest-resized to it (OASIS protocol)",
        }


class JudgeTally:
    """Confusion matrix and object-size counts of one image set (generated or real)."""

    def __init__(self, judge: Judge) -> None:
        self.judge = judge
        self.confusion = ConfusionMatrix(judge.num_classes)
        self.sizes = ObjectSizeIoU(judge.object_classes, judge.num_classes)

    @torch.no_grad()
    def update(self, images: Tensor, label_map: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        prediction = self.judge.segmenter.predict(images, value_range).cpu()
        target = self.judge.to_judge_ids(label_map.cpu())
        self.confusion.update(prediction, target)
        self.sizes.update(prediction, target)

    def scores(self) -> dict[str, Any]:
        """mIoU (the judge's policy), pixel accuracy, obj-mIoU (None without object classes),
        per-class IoU (NaN where a class is in neither ground truth nor prediction)."""
        cm, objects = self.confusion, self.judge.object_classes
        return {
            "miou": cm.miou(self.judge.policy),
            "pixel_accuracy": cm.pixel_accuracy(),
            "obj_miou": cm.obj_miou(objects) if objects else None,
            "per_class_iou": [float(v) for v in cm.iou()],
            "iou_by_size": self.sizes.result(),
        }


def ignore_to_minus_one(ignore_index: int | None) -> Callable[[Tensor], Tensor]:
    """Dataset ids are the judge's ids; the don't-care id (if any) is dropped from scoring."""

    def mapping(label_map: Tensor) -> Tensor:
        ids = label_map.long()
        return ids if ignore_index is None else torch.where(ids == ignore_index, -1, ids)

    return mapping


def reference_judge(segmenter: nn.Module, info: DatasetInfo, weights: str | None = None) -> Judge:
    """Judge with a segmenter trained on this dataset's own label space (`dpgan train-segmenter`).

    DRN's NaN policy: classes absent from ground truth and prediction (the don't-care class
    always) are left out of the mean; obj-mIoU averages the dataset's small-object classes."""
    if getattr(segmenter, "num_classes", None) != info.num_classes:
        raise DPGANError(
            f"The reference segmenter {weights or ''} predicts {getattr(segmenter, 'num_classes', '?')} "
            f"classes, but dataset {info.name!r} has {info.num_classes}."
        )
    objects = tuple(c for c in info.small_object_classes if c != info.ignore_index)
    return Judge(
        name="reference U-Net (dpgan train-segmenter)",
        segmenter=segmenter,
        class_names=info.class_names,
        policy="drn",
        object_classes=objects,
        to_judge_ids=ignore_to_minus_one(info.ignore_index),
        published=False,
        weights=weights,
    )


def published_judge(
    dataset: str,
    *,
    drn: str | Path | None = None,
    upernet_encoder: str | Path | None = None,
    upernet_decoder: str | Path | None = None,
    deeplab: str | Path | None = None,
) -> Judge | None:
    """The paper's segmenter for `dataset` when its weights are given; None when they are not.

    A weights option meant for another dataset is an error: scoring ADE20K images with the
    Cityscapes DRN would produce a number that looks valid and means nothing."""
    given = {
        "DRN-D-105": drn is not None,
        "UperNet-101": upernet_encoder is not None or upernet_decoder is not None,
        "DeepLab-v2": deeplab is not None,
    }
    wanted = PUBLISHED_SEGMENTER_BY_DATASET.get(dataset)
    for name, present in given.items():
        if present and name != wanted:
            use = f"it needs {_OPTIONS_BY_SEGMENTER[wanted]}" if wanted else "it has no published segmenter"
            raise DPGANError(
                f"{_OPTIONS_BY_SEGMENTER[name]} gives {name} weights, which judge "
                f"{', '.join(d for d, s in PUBLISHED_SEGMENTER_BY_DATASET.items() if s == name)} "
                f"images; this run's dataset is {dataset!r} ({use})."
            )
    if wanted is None or not given[wanted]:
        return None
    from dpgan.evaluate import segmenters

    if wanted == "DRN-D-105":
        return Judge(
            name="DRN-D-105", segmenter=segmenters.DRNSeg.from_file(drn),
            class_names=CITYSCAPES_TRAIN_ID_NAMES, policy="drn",
            object_classes=CITYSCAPES_OBJECT_TRAIN_IDS, to_judge_ids=cityscapes_label_to_train_id,
            published=True, weights=str(drn),
        )  # fmt: skip
    if wanted == "UperNet-101":
        model = segmenters.UperNet101.from_file(upernet_encoder, upernet_decoder)
        return Judge(
            name="UperNet-101", segmenter=model, class_names=model.class_names, policy="ade20k",
            object_classes=(), to_judge_ids=shift_out_dont_care, published=True,
            weights=", ".join(str(p) for p in (upernet_encoder, upernet_decoder) if p is not None),
        )  # fmt: skip
    model = segmenters.DeepLabV2.from_file(deeplab)
    return Judge(
        name="DeepLab-v2", segmenter=model, class_names=model.class_names, policy="deeplab",
        object_classes=(), to_judge_ids=shift_out_dont_care, published=True, weights=str(deeplab),
    )  # fmt: skip
