"""Paired resize / crop / flip: one geometry for the image and its label map.

The published preprocessing (OASIS, DP-GAN) warps each pair to a fixed size (the image with
bicubic, the label with nearest so no new ids appear), and in training takes a random crop and
a random horizontal flip. Image and label must get the *same* crop and flip, or the generator
learns misaligned objects; here both are cut with one set of indices.

Randomness comes from a numpy Generator re-seeded inside every DataLoader worker from the
worker's torch seed (which torch derives from the main process's RNG), so augmentation is
reproducible for a fixed training seed and differs between workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from dpgan.data.io import label_to_pil
from dpgan.errors import DPGANError


def unpack_index(index: int | tuple[int, int]) -> tuple[int, int | None]:
    """Training samplers pass `(index, augmentation_key)`; plain ints come from everyone else."""
    if isinstance(index, tuple):
        return int(index[0]), int(index[1])
    return int(index), None


class WorkerRNG:
    """Randomness of the augmentations.

    With an augmentation key (given by the training sampler for each (step, slot)), the draw
    depends only on (seed, key): a resumed run replays exactly the crops and flips of an
    uninterrupted one, whatever the number of workers. Without a key: a numpy Generator per
    process, seeded from (seed, DataLoader worker seed) or (seed, torch.initial_seed())."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self._key: int | None = None
        self._gen: np.random.Generator | None = None

    def get(self, key: int | None = None) -> np.random.Generator:
        if key is not None:
            return np.random.default_rng([self.seed, key])
        worker = torch.utils.data.get_worker_info()
        key = int(worker.seed) if worker is not None else int(torch.initial_seed())
        if self._gen is None or key != self._key:
            self._gen = np.random.default_rng([self.seed, key % (1 << 63)])
            self._key = key
        return self._gen


@dataclass(frozen=True)
class PairedTransform:
    """Training: resize to (load_height, load_width) if set, else to (height, width); random
    crop to (height, width); random h-flip. Evaluation: resize to (height, width) only."""

    height: int
    width: int
    load_height: int | None = None
    load_width: int | None = None
    train: bool = False
    flip: bool = True

    def __post_init__(self) -> None:
        if self.height < 1 or self.width < 1:
            raise DPGANError(f"data size {self.height}x{self.width} must be positive")
        if (self.load_height is None) != (self.load_width is None):
            raise DPGANError("data.load_height and data.load_width must be given together")
        if self.load_height is not None and self.load_width is not None:
            if self.load_height < self.height or self.load_width < self.width:
                raise DPGANError(
                    f"data load size {self.load_height}x{self.load_width} is smaller than the crop "
                    f"{self.height}x{self.width}"
                )

    def resize_size(self) -> tuple[int, int]:
        """(height, width) every pair is warped to before any crop."""
        if self.train and self.load_height is not None and self.load_width is not None:
            return self.load_height, self.load_width
        return self.height, self.width

    def geometry(self, rng: np.random.Generator | None) -> tuple[int, int, bool]:
        """(top, left, flip) of one draw; (0, 0, False) in evaluation."""
        h, w = self.resize_size()
        if not self.train:
            return 0, 0, False
        if rng is None:
            raise ValueError("a training transform needs a random generator")
        top = int(rng.integers(0, h - self.height + 1))
        left = int(rng.integers(0, w - self.width + 1))
        flip = bool(self.flip and rng.random() < 0.5)
        return top, left, flip

    def __call__(
        self, image: Image.Image, label: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """PIL RGB image + (H, W) ids -> FloatTensor (3, h, w) in [-1, 1], LongTensor (h, w)."""
        h, w = self.resize_size()
        img = np.asarray(resize_image(image, h, w))
        lab = resize_label(label, h, w)
        top, left, flip = self.geometry(rng)
        img = img[top:top + self.height, left:left + self.width]
        lab = lab[top:top + self.height, left:left + self.width]
        if flip:
            img, lab = img[:, ::-1], lab[:, ::-1]
        return image_to_tensor(img), torch.from_numpy(np.ascontiguousarray(lab).astype(np.int64))


def resize_image(image: Image.Image, height: int, width: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    if label.shape == (height, width):
        return label
    out = np.asarray(label_to_pil(label).resize((width, height), Image.Resampling.NEAREST))
    return out.astype(label.dtype, copy=False)


def image_to_tensor(image: np.ndarray) -> Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float in [-1, 1] (ToTensor then Normalize(0.5, 0.5))."""
    arr = np.ascontiguousarray(image)
    if not arr.flags.writeable:  # PIL-backed arrays are read-only; torch wants to own a copy
        arr = arr.copy()
    t = torch.from_numpy(arr).permute(2, 0, 1).float()
    return t / 127.5 - 1.0


class RandomFlip(Dataset):
    """Random horizontal flips for a dataset whose items are already sized (the synthetic
    streets): the same flip for image and label."""

    def __init__(self, base: Dataset, *, seed: int = 0, probability: float = 0.5) -> None:
        self.base = base
        self.rng = WorkerRNG(seed)
        self.probability = probability

    @property
    def info(self):  # noqa: ANN201 - DatasetInfo of the wrapped dataset
        return self.base.info

    @property
    def files(self) -> list:
        return list(getattr(self.base, "files", []))

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        index, key = unpack_index(index)
        item = dict(self.base[index])
        if self.rng.get(key).random() < self.probability:
            item["image"] = torch.flip(item["image"], dims=[-1])
            item["label"] = torch.flip(item["label"], dims=[-1])
        return item
