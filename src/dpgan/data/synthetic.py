"""`synthetic-streets`: the embedded dataset, generated in code, so that `dpgan train` works
on a fresh machine with no download. See `synthetic_render` for how scenes are made.

Image i of a split has layout seed and appearance seed derived from (seed, split, i): fixed
image/label pairs, like a real dataset, while the same label map rendered with another
appearance seed gives another plausible image.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from dpgan.data.info import DatasetInfo
from dpgan.data.synthetic_render import CLASSES, OBJECT_CLASSES, generate_layout, render_image
from dpgan.data.transforms import image_to_tensor
from dpgan.errors import DPGANError
from dpgan.files import atomic_path

SYNTHETIC_STREETS = DatasetInfo(
    name="synthetic-streets",
    class_names=tuple(name for name, _ in CLASSES),
    colors=tuple(colour for _, colour in CLASSES),
    ignore_index=None,
    small_object_classes=OBJECT_CLASSES,
)
SPLIT_SIZES = {"train": 2000, "val": 200}
_SPLIT_CODE = {"train": 0, "val": 1}
OTHER_APPEARANCE = 2**40  # added to a scene's seed: an appearance no image of any split has


def scene_seed(seed: int, split: str, index: int) -> int:
    """Disjoint seeds for the two splits of one dataset seed."""
    return (seed * 2 + _SPLIT_CODE[split]) * 10_000_000 + index


def make_pair(seed: int, split: str, index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    s = scene_seed(seed, split, index)
    scene = generate_layout(s, height, width)
    return scene.label, render_image(scene, s)


class SyntheticStreets(Dataset):
    info = SYNTHETIC_STREETS

    def __init__(
        self, split: str = "train", height: int = 64, width: int = 128, num_images: int | None = None, seed: int = 0
    ) -> None:
        if split not in _SPLIT_CODE:
            raise DPGANError(f"synthetic-streets has splits 'train' and 'val', not {split!r}")
        self.split, self.height, self.width, self.seed = split, height, width, seed
        self.num_images = SPLIT_SIZES[split] if num_images is None else num_images
        self._cache: dict[int, dict] = {}  # per process: later epochs are free

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.num_images:
            raise IndexError(index)
        if index not in self._cache:
            label, image = make_pair(self.seed, self.split, index, self.height, self.width)
            self._cache[index] = {
                "image": image_to_tensor(image),
                "label": torch.from_numpy(label.astype(np.int64)),
                "name": f"{self.split}_{index:05d}",
            }
        return self._cache[index]

    def other_appearance(self, index: int) -> torch.Tensor:
        """Image `index`'s label map rendered with another appearance seed, (3, H, W) in [-1, 1]:
        how much two images of one label map may differ, the yardstick of a generator's noise."""
        s = scene_seed(self.seed, self.split, int(index))
        image = render_image(generate_layout(s, self.height, self.width), s + OTHER_APPEARANCE)
        return image_to_tensor(image)


def _is_previous_output(out: Path) -> bool:
    try:
        return json.loads((out / "classes.json").read_text()).get("name") == SYNTHETIC_STREETS.name
    except (OSError, ValueError):
        return False


def _save_atomic(img: Image.Image, path: Path) -> None:
    with atomic_path(path, fsync=False) as tmp:
        img.save(tmp, format="PNG")


def write_synthetic(
    out_dir: str | Path, *, height: int = 64, width: int = 128, num_train: int = 2000, num_val: int = 200,
    seed: int = 0, progress: bool = True,
) -> Path:
    """Write the dataset as a custom folder (classes.json, {train,val}/{images,labels}/*.png)."""
    from tqdm import tqdm

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not _is_previous_output(out))):
        raise DPGANError(f"{out} exists and is not an earlier synthetic-streets folder; choose another --out")
    jobs = [("train", i) for i in range(num_train)] + [("val", i) for i in range(num_val)]
    for split in ("train", "val"):
        (out / split / "images").mkdir(parents=True, exist_ok=True)
        (out / split / "labels").mkdir(parents=True, exist_ok=True)
    for split, i in tqdm(jobs, disable=not progress, desc="make-synthetic", unit="pair"):
        label, image = make_pair(seed, split, i, height, width)
        name = f"{split}_{i:05d}.png"
        _save_atomic(Image.fromarray(image), out / split / "images" / name)
        _save_atomic(Image.fromarray(label, mode="L"), out / split / "labels" / name)
    (out / "classes.json").write_text(SYNTHETIC_STREETS.to_json())
    return out
