"""The Python API for people who generate rather than train.

    from dpgan import DPGAN
    model = DPGAN.from_checkpoint("runs/synthetic-streets")      # a training run
    model.save_pretrained("streets-model")                       # config.json + model.safetensors
    model = DPGAN.from_pretrained("streets-model")
    images = model.generate("label.png", seed=0, num_samples=4)  # (4, H, W, 3) uint8

A saved model is the EMA generator only (dpgan.inference.pretrained): config.json + model.safetensors.

Image k of a call uses the noise of seed `seed + k`, drawn exactly as `dpgan synthesize` draws
it, so the API, the command line and the demo give the same picture for the same seed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.errors import DataError, DPGANError
from dpgan.inference.model_card import Origin, run_folder_of
from dpgan.inference.pretrained import load_pretrained, save_pretrained
from dpgan.inference.synthesize import generate, load_generator, mixed_noise, noise_for_seeds
from dpgan.devices import resolve_device
from dpgan.tensors import one_hot
from dpgan.visualize import to_uint8


class DPGAN:
    """A trained generator with its configuration and class list."""

    def __init__(self, generator: nn.Module, config: Config, info: DatasetInfo, step: int = 0) -> None:
        self.generator = generator.eval().requires_grad_(False)
        self.config, self.info, self.step = config, info, step
        self.run_dir: Path | None = None  # the run it was loaded from, for the model card's metrics

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def uses_noise(self) -> bool:
        return bool(getattr(self.generator, "use_3d_noise", True))

    # ---- loading and saving ----------------------------------------------------------------

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> DPGAN:
        """The EMA generator of a training run (its latest checkpoint), of one checkpoint
        file, or of a saved-model folder."""
        loaded = load_generator(path, device)
        model = cls(loaded.generator, loaded.config, loaded.info, loaded.step)
        model.run_dir = run_folder_of(loaded.path)
        return model

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "auto") -> DPGAN:
        """A folder written by `save_pretrained` (or `dpgan export --format safetensors`), or a
        built-in model's name: `DPGAN.from_pretrained("synthetic-streets")`."""
        G, config, info, step = load_pretrained(directory)
        return cls(G.to(resolve_device(device)), config, info, step)

    def save_pretrained(self, directory: str | Path, *, overwrite: bool = False) -> Path:
        """Write `config.json`, `model.safetensors` (EMA generator, spectral norm baked) and a
        `README.md` model card, all at once (a failure leaves `directory` as it was); a saved model
        already there is replaced only with overwrite=True (as `dpgan export --overwrite`)."""
        return save_pretrained(self.generator, self.config, self.info, self.step, directory,
                               origin=Origin(run_dir=self.run_dir), overwrite=overwrite)

    # ---- generation --------------------------------------------------------------------------

    def label_map(self, label: Any) -> Tensor:
        """(B, H, W) int64 ids on the model's device from a tensor or array ((H, W) or (B, H, W))
        of class ids, or a label PNG path (read and checked like a dataset label)."""
        if isinstance(label, (str, Path)):
            from dpgan.data.io import read_label

            label = read_label(label, self.info)
        if isinstance(label, np.ndarray):
            if not np.issubdtype(label.dtype, np.integer):
                raise DataError(f"a label map must hold integer class ids, not {label.dtype}")
            label = torch.from_numpy(label.astype(np.int64))
        if not isinstance(label, Tensor):
            raise DataError(f"a label map must be a tensor, a NumPy array or a PNG path, not {type(label).__name__}")
        if label.dtype.is_floating_point or label.dim() not in (2, 3):
            raise DataError(f"a label map must be integer ids of shape (H, W) or (B, H, W), got "
                            f"{label.dtype} {tuple(label.shape)}")
        label = label.long()[None] if label.dim() == 2 else label.long()
        if label.numel() and (int(label.min()) < 0 or int(label.max()) >= self.num_classes):
            raise DataError(f"label map holds id {int(label.max())}; {self.info.name} has ids 0..{self.num_classes - 1}")
        stride = 2 ** (self.generator.num_res_blocks - 1)
        if label.shape[-2] % stride or label.shape[-1] % stride:
            raise DataError(f"label map size {label.shape[-2]}x{label.shape[-1]} is not a multiple of {stride}")
        return label.to(self.device)

    @torch.no_grad()
    def _render(self, label: Tensor, z: Tensor | None) -> np.ndarray:
        return to_uint8(self.generator(one_hot(label, self.num_classes), z))

    def generate(self, label_map: Any, seed: int = 0, num_samples: int = 1) -> np.ndarray:
        """(K, H, W, 3) uint8 for one label map (image k from seed + k), or (B*K, H, W, 3) for a
        batch of B maps, map-major."""
        if num_samples < 1:
            raise DPGANError("num_samples must be at least 1")
        label = self.label_map(label_map)
        seeds = [seed + k for k in range(num_samples)]
        return np.concatenate([to_uint8(generate(self.generator, label[b : b + 1].expand(num_samples, -1, -1), seeds))
                               for b in range(label.shape[0])])

    def class_id(self, name_or_id: int | str) -> int:
        """A class id from its id (int or digit string) or its name."""
        names = list(self.info.class_names)
        if isinstance(name_or_id, str) and name_or_id.isdigit():
            name_or_id = int(name_or_id)
        if isinstance(name_or_id, int) and 0 <= name_or_id < len(names):
            return name_or_id
        if name_or_id in names:
            return names.index(name_or_id)
        raise DPGANError(f"unknown class {name_or_id!r}; {self.info.name} has {', '.join(names)} "
                         f"(or ids 0..{len(names) - 1})")

    def region_mask(self, label_map: Any, mask: Any = None, class_id: int | str | None = None) -> Tensor:
        """(H, W) bool: the given mask, or the pixels of a class (id or name)."""
        label = self.label_map(label_map)[0]
        if (mask is None) == (class_id is None):
            raise DPGANError("give exactly one of mask or class_id")
        if class_id is not None:
            return label == self.class_id(class_id)
        m = torch.as_tensor(np.asarray(mask)).to(self.device).bool()
        if m.shape != label.shape:
            raise DataError(f"mask is {tuple(m.shape)}, the label map {tuple(label.shape)}")
        return m

    def resample(self, label_map: Any, seed: int, new_seed: int, *, mask: Any = None,
                 class_id: int | str | None = None) -> np.ndarray:
        """(H, W, 3): the image of `seed` with the noise of `new_seed` only under the mask (or
        the class), so that region changes appearance while the rest stays as it was."""
        self._needs_noise("resample")
        label = self.label_map(label_map)[:1]
        under = self.region_mask(label, mask, class_id)
        return self._render(label, mixed_noise(seed, new_seed, under, self.generator.z_dim))[0]

    def interpolate(self, label_map: Any, seed_a: int, seed_b: int, steps: int = 5) -> np.ndarray:
        """(steps, H, W, 3) along the great circle between the two seeds' z (spherical: z is
        Gaussian, and a straight line between two draws passes through vectors of atypically
        small norm, which the generator never saw). First and last are the seeds' own images."""
        self._needs_noise("interpolate")
        if steps < 2:
            raise DPGANError("steps must be at least 2")
        label = self.label_map(label_map)[:1]
        z = noise_for_seeds([seed_a, seed_b], self.generator.z_dim, self.device)
        path = torch.stack([slerp(z[0], z[1], t) for t in torch.linspace(0, 1, steps).tolist()])
        return self._render(label.expand(steps, -1, -1), path)

    def _needs_noise(self, what: str) -> None:
        if not self.uses_noise:
            raise DPGANError(f"this generator was trained without 3D noise: there is nothing to {what}")


def slerp(a: Tensor, b: Tensor, t: float) -> Tensor:
    """Spherical interpolation; exact endpoints; linear when a and b are (anti)parallel."""
    if t == 0.0:
        return a.clone()
    if t == 1.0:
        return b.clone()
    cos = torch.dot(a, b) / (a.norm() * b.norm())
    omega = math.acos(float(cos.clamp(-1.0, 1.0)))
    if math.sin(omega) < 1e-6:
        return (1 - t) * a + t * b
    return (math.sin((1 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)
