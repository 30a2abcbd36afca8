"""COCO-Stuff 164k: COCO 2017 images with the stuffthingmaps labels.

Layouts accepted (the first whose folders exist is used):

1. the COCO-Stuff README's: ROOT/images/{train2017,val2017}/*.jpg and
   ROOT/annotations/{train2017,val2017}/*.png (stuffthingmaps_trainval2017.zip unpacked there);
2. the zips unpacked side by side: ROOT/{train2017,val2017}/*.jpg and
   ROOT/stuffthingmaps_trainval2017/{train2017,val2017}/*.png;
3. the SPADE/OASIS one: ROOT/{train,val}_img/*.jpg and ROOT/{train,val}_label/*.png.

Label files hold 0..181 (COCO category id - 1) and 255 for unlabelled. As in OASIS, dpgan stores
class = value + 1 and 255 -> 0, so 0 is the don't-care class and there are 183 channels.
"""

from __future__ import annotations

from pathlib import Path

from dpgan.data.folder import PairedDataset
from dpgan.data.info import DatasetInfo
from dpgan.data.io import Pairing, default_palette, package_list, pair_files, require_dir
from dpgan.data.transforms import PairedTransform
from dpgan.errors import DataError

SPLITS = ("train", "val")

_NAMES = ("unlabeled", *package_list("coco_stuff_labels.txt"))
assert len(_NAMES) == 183, "coco_stuff_labels.txt must list 182 classes"

COCO_STUFF_INFO = DatasetInfo(
    name="coco-stuff",
    class_names=_NAMES,
    colors=default_palette(len(_NAMES)),  # COCO-Stuff has no official palette
    ignore_index=0,
)


def layouts(root: str | Path, split: str) -> list[tuple[Path, Path]]:
    """Candidate (images, labels) folders of a split, in order of preference."""
    if split not in SPLITS:
        raise DataError(f"dataset coco-stuff: unknown split {split!r}; use one of {SPLITS}")
    root, year = Path(root), f"{split}2017"
    return [
        (root / "images" / year, root / "annotations" / year),
        (root / year, root / "stuffthingmaps_trainval2017" / year),
        (root / f"{split}_img", root / f"{split}_label"),
    ]


def split_dirs(root: str | Path, split: str) -> tuple[Path, Path]:
    candidates = layouts(root, split)
    for images, labels in candidates:
        if images.is_dir() and labels.is_dir():
            return images, labels
    for images, labels in candidates:  # half a layout: name the half that is missing
        if images.is_dir() or labels.is_dir():
            return images, labels
    return candidates[0]


def find_pairs(root: str | Path, split: str) -> Pairing:
    images, labels = split_dirs(root, split)
    hint = ("expected images/{train2017,val2017}/ and annotations/{train2017,val2017}/ "
            "(stuffthingmaps) as in the COCO-Stuff README")
    require_dir(images, "coco-stuff", hint)
    require_dir(labels, "coco-stuff", hint)
    return pair_files("coco-stuff", images, labels)


class COCOStuffDataset(PairedDataset):
    """COCO-Stuff pairs; the published preprocessing is that of ADE20K (286 -> crop 256)."""

    def __init__(
        self, root: str | Path, split: str, *, transform: PairedTransform | None = None, seed: int = 0
    ) -> None:
        self.root, self.split = Path(root), split
        super().__init__(find_pairs(root, split).require_pairs(), COCO_STUFF_INFO,
                         transform=transform, label_encoding="coco-stuff", seed=seed)
