"""A user's own folder of image/label pairs, and the dataset class every on-disk layout becomes.

Folder layout (what `dpgan make-synthetic` writes):

    ROOT/classes.json              DatasetInfo JSON: name, class_names, colors, ignore_index,
                                   small_object_classes (colours optional: a palette is made)
    ROOT/train/images/NAME.png|jpg ROOT/train/labels/NAME.png
    ROOT/val/images/...            ROOT/val/labels/...

or ROOT/images/ and ROOT/labels/ directly, which is a train split with no val split. Label
PNGs hold class ids ('L'/'P'/16-bit) or colours from the classes file (RGB).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dpgan.data.info import DatasetInfo
from dpgan.data.io import (
    Pair,
    Pairing,
    decode_label,
    default_palette,
    label_encoding_for,
    load_image,
    load_label_file,
    pair_files,
    require_dir,
)
from dpgan.data.transforms import PairedTransform, WorkerRNG, image_to_tensor, unpack_index
from dpgan.errors import DataError

SPLITS = ("train", "val")
CLASSES_FILE = "classes.json"


class PairedDataset(Dataset):
    """Items {"image", "label", "name"} from a list of (image, label) files.

    `transform=None` keeps each pair at its own size, unaugmented (for checks and metrics).
    Every broken file (unreadable, ids out of range, image and label of different sizes)
    raises DataError naming it.
    """

    def __init__(
        self,
        files: list[Pair],
        info: DatasetInfo,
        *,
        transform: PairedTransform | None = None,
        label_encoding: str | None = None,
        seed: int = 0,
    ) -> None:
        self.files = list(files)
        self.info = info
        self.transform = transform
        self.label_encoding = label_encoding or label_encoding_for(info)
        self.rng = WorkerRNG(seed)

    def __len__(self) -> int:
        return len(self.files)

    def name_of(self, index: int) -> str:
        return self.files[index][0].stem

    def load_pair(self, index: int) -> tuple[Image.Image, np.ndarray]:
        """The image and its class ids at file resolution, checked."""
        image_path, label_path = self.files[index]
        image = load_image(image_path)
        label = decode_label(load_label_file(label_path), self.info, label_path, encoding=self.label_encoding)
        if label.shape != (image.height, image.width):
            raise DataError(
                f"{label_path}: label is {label.shape[1]}x{label.shape[0]} (WxH) but its image "
                f"{image_path.name} is {image.width}x{image.height}"
            )
        return image, label

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        index, key = unpack_index(index)
        image, label = self.load_pair(index)
        if self.transform is None:
            image_t = image_to_tensor(np.asarray(image))
            label_t = torch.from_numpy(label.astype(np.int64))
        else:
            rng = self.rng.get(key) if self.transform.train else None
            image_t, label_t = self.transform(image, label, rng)
        return {"image": image_t, "label": label_t, "name": self.name_of(index)}


# --- the custom folder layout ------------------------------------------------------------------

def read_classes(root: str | Path) -> DatasetInfo:
    """ROOT/classes.json as a DatasetInfo; missing colours get the default palette."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise DataError(
            f"{path}: not found; a folder dataset needs a classes file (JSON with class_names, "
            f"and optionally name, colors, ignore_index, small_object_classes)"
        )
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(d, dict) or not isinstance(d.get("class_names"), list) or not d["class_names"]:
        raise DataError(f"{path}: needs a non-empty list 'class_names'")
    d = dict(d)
    d.setdefault("name", Path(root).resolve().name or "folder")
    if d.get("colors") is None:
        d["colors"] = [list(c) for c in default_palette(len(d["class_names"]))]
    try:
        return DatasetInfo.from_dict(d)
    except (KeyError, TypeError, ValueError, DataError) as exc:
        raise DataError(f"{path}: invalid classes file ({str(exc).removeprefix('dataset description: ')})") from None


def split_dirs(root: str | Path, split: str) -> tuple[Path, Path] | None:
    """(images, labels) folders of a split, or None for 'val' in a flat folder (no val split)."""
    root = Path(root)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {SPLITS}")
    nested = root / split
    if nested.is_dir():
        return nested / "images", nested / "labels"
    flat = (root / "images").is_dir() and (root / "labels").is_dir()
    if flat and not any((root / s).is_dir() for s in SPLITS):
        return (root / "images", root / "labels") if split == "train" else None
    return nested / "images", nested / "labels"


def has_split(root: str | Path, split: str) -> bool:
    dirs = split_dirs(root, split)
    return dirs is not None and dirs[0].is_dir()


def find_pairs(root: str | Path, split: str, name: str = "folder") -> Pairing:
    dirs = split_dirs(root, split)
    if dirs is None:
        raise DataError(
            f"dataset {name}: {root} has images/ and labels/ directly, which is the train split; "
            f"it has no val split (make {Path(root) / 'val' / 'images'} and .../labels for one)"
        )
    images, labels = dirs
    layout = "a folder dataset has SPLIT/images and SPLIT/labels, or images/ and labels/ directly"
    require_dir(images, name, layout)
    require_dir(labels, name, layout)
    return pair_files(name, images, labels)


class FolderDataset(PairedDataset):
    """A custom folder (see the module docstring), described by its own classes.json."""

    def __init__(
        self, root: str | Path, split: str, *, transform: PairedTransform | None = None, seed: int = 0
    ) -> None:
        root = require_dir(Path(root), "folder", "the --data-root of a folder dataset")
        info = read_classes(root)
        self.root, self.split = root, split
        super().__init__(find_pairs(root, split, info.name).require_pairs(), info,
                         transform=transform, label_encoding="ids", seed=seed)
