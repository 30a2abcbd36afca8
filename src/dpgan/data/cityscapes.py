"""Cityscapes, read from the official release layout, in the label space DP-GAN uses.

    ROOT/leftImg8bit/{train,val}/CITY/CITY_SEQ_FRAME_leftImg8bit.png
    ROOT/gtFine/{train,val}/CITY/CITY_SEQ_FRAME_gtFine_labelIds.png   (other gtFine files ignored)

The generator sees 35 channels: labelIds 0..33 plus channel 34 (cityscapesScripts' license
plate, id -1, never drawn into labelIds PNGs), as in OASIS/DP-GAN; 0 'unlabeled' is the
don't-care class, the other void ids (1..6) stay ordinary classes. No instance maps are used
(OASIS and DP-GAN take none). Evaluation with DRN-D-105 works in the 19 trainIds:
`LABEL_ID_TO_TRAIN_ID` and `to_train_ids` map labelIds to them (255 = ignored), and
`SMALL_OBJECT_CLASSES` are the 11 object classes of obj-mIoU, in labelId space.
The table is data (lists/cityscapes_labels.tsv), written out from cityscapesScripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from dpgan.data.folder import PairedDataset
from dpgan.data.info import DatasetInfo
from dpgan.data.io import Pairing, package_list, pair_files, require_dir
from dpgan.data.transforms import PairedTransform
from dpgan.errors import DataError

SPLITS = ("train", "val")
IGNORE_TRAIN_ID = 255


def _table() -> list[tuple[int, int, tuple[int, int, int], str]]:
    rows = []
    for line in package_list("cityscapes_labels.tsv"):
        label_id, train_id, r, g, b, name = line.split("\t")
        rows.append((int(label_id), int(train_id), (int(r), int(g), int(b)), name))
    assert [r[0] for r in rows] == list(range(35)), "cityscapes_labels.tsv must list ids 0..34"
    return rows


_ROWS = _table()
LABEL_ID_TO_TRAIN_ID: tuple[int, ...] = tuple(r[1] for r in _ROWS)
TRAIN_ID_NAMES: tuple[str, ...] = tuple(
    r[3] for r in sorted((r for r in _ROWS if r[1] != IGNORE_TRAIN_ID), key=lambda r: r[1])
)
# pole, traffic light, traffic sign, person, rider, car, truck, bus, train, motorcycle, bicycle
SMALL_OBJECT_CLASSES: tuple[int, ...] = (17, 19, 20, 24, 25, 26, 27, 28, 31, 32, 33)

CITYSCAPES_INFO = DatasetInfo(
    name="cityscapes",
    class_names=tuple(r[3] for r in _ROWS),
    colors=tuple(r[2] for r in _ROWS),
    ignore_index=0,
    small_object_classes=SMALL_OBJECT_CLASSES,
)

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)


def to_train_ids(label: ArrayOrTensor) -> ArrayOrTensor:
    """labelIds (any shape, numpy or torch) -> the 19 trainIds, 255 where ignored."""
    lut = np.asarray(LABEL_ID_TO_TRAIN_ID, dtype=np.int64)
    if isinstance(label, torch.Tensor):
        return torch.as_tensor(lut, device=label.device)[label.long()]
    return lut[np.asarray(label, dtype=np.int64)]


def split_dirs(root: str | Path, split: str) -> tuple[Path, Path]:
    if split not in SPLITS:
        raise DataError(f"dataset cityscapes: unknown split {split!r}; use one of {SPLITS}")
    root = Path(root)
    return root / "leftImg8bit" / split, root / "gtFine" / split


def find_pairs(root: str | Path, split: str) -> Pairing:
    images, labels = split_dirs(root, split)
    layout = "expected leftImg8bit/SPLIT/CITY/*_leftImg8bit.png and gtFine/SPLIT/CITY/*_gtFine_labelIds.png"
    require_dir(images, "cityscapes", layout)
    require_dir(labels, "cityscapes", layout)
    return pair_files(
        "cityscapes", images, labels,
        image_suffixes=(".png",), image_tag="_leftImg8bit", label_tag="_gtFine_labelIds", recursive=True,
    )


class CityscapesDataset(PairedDataset):
    """Cityscapes pairs; the published preprocessing is PairedTransform(256, 512) (+ flips
    in training)."""

    def __init__(
        self, root: str | Path, split: str, *, transform: PairedTransform | None = None, seed: int = 0
    ) -> None:
        self.root, self.split = Path(root), split
        super().__init__(find_pairs(root, split).require_pairs(), CITYSCAPES_INFO,
                         transform=transform, label_encoding="ids", seed=seed)

    def name_of(self, index: int) -> str:
        return self.files[index][0].stem.removesuffix("_leftImg8bit")
