"""Label maps in, images out, with the EMA generator of a trained run.

Sample k of a label map uses the noise of seed `seed + k`, drawn on its own, so an image
depends only on (checkpoint, label map, seed): not on batch size, order or device count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan.checkpoint import load_checkpoint, refuse_nonfinite
from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.errors import DataError, DPGANError, refuse_overwrite
from dpgan.models import build_generator_from_config
from dpgan.devices import resolve_device
from dpgan.tensors import one_hot
from dpgan.visualize import save_png, to_uint8

LABEL_SUFFIXES = (".png",)


@dataclass
class LoadedGenerator:
    generator: nn.Module
    config: Config
    info: DatasetInfo
    step: int
    path: str


MAX_SAMPLES = 1000  # images per label map in one call (the list of outputs is made up front)


def load_generator(checkpoint: str | Path, device: str = "auto") -> LoadedGenerator:
    """The EMA generator of a run folder (its latest checkpoint), of one checkpoint file, of a
    saved-model folder (config.json + model.safetensors, see dpgan.inference.pretrained) or of
    a built-in model by name ("synthetic-streets")."""
    from dpgan.inference.pretrained import bake_spectral_norm, is_pretrained_dir, load_pretrained, resolve_model

    dev = resolve_device(device)
    checkpoint = resolve_model(checkpoint)
    if is_pretrained_dir(checkpoint):
        G, cfg, info, step = load_pretrained(checkpoint)
        return LoadedGenerator(G.to(dev), cfg, info, step, str(checkpoint))
    ck = load_checkpoint(checkpoint, map_location="cpu")
    cfg = Config.from_json(ck["config"])
    info = DatasetInfo.from_dict(json.loads(ck["dataset_info"]))
    G = build_generator_from_config(cfg.model, info.num_classes)
    refuse_nonfinite(ck["generator_ema"], ck["path"])
    G.load_state_dict(ck["generator_ema"])
    # spectral norm baked into plain weights: the same images (eval mode divides by a fixed
    # sigma), without recomputing sigma at every call (benchmarks/infer_speed.py)
    G = bake_spectral_norm(G)
    return LoadedGenerator(G.to(dev), cfg, info, int(ck["step"]), ck["path"])


def check_seeds(seeds: list[int]) -> None:
    bad = [s for s in seeds if not -(2**63) <= s < 2**64]
    if bad:
        raise DPGANError(f"seed {bad[0]} is out of range: seeds are integers from -2^63 to 2^64 - 1")


def noise_for_seeds(seeds: list[int], z_dim: int, device: torch.device) -> Tensor:
    """One z per seed, each from its own generator (CPU, so results match across devices)."""
    check_seeds(seeds)
    zs = [torch.randn(1, z_dim, generator=torch.Generator().manual_seed(s)) for s in seeds]
    return torch.cat(zs).to(device)


def mixed_noise(seed: int, new_seed: int, mask: Tensor, z_dim: int) -> Tensor:
    """(1, z_dim, H, W) noise map: z of `seed` everywhere except where the (H, W) `mask` is
    set, which gets z of `new_seed`. The generator takes such a map in place of a vector, so
    only the masked region changes appearance; an empty mask gives exactly the image of `seed`."""
    z = noise_for_seeds([seed, new_seed], z_dim, mask.device)
    return torch.where(mask.bool()[None, None], z[1, :, None, None], z[0, :, None, None])


@torch.no_grad()
def generate(G: nn.Module, label_map: Tensor, seeds: list[int]) -> Tensor:
    """(B, H, W) ids and B seeds -> (B, 3, H, W) images in [-1, 1]."""
    onehot = one_hot(label_map, G.num_classes)
    if not getattr(G, "use_3d_noise", True):
        return G(onehot)
    return G(onehot, noise_for_seeds(seeds, G.z_dim, label_map.device))


def find_label_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in LABEL_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no label PNGs found in this folder")
        return files
    raise DataError(f"{path}: no such label file or folder")


def resize_label(label: np.ndarray, height: int, width: int) -> np.ndarray:
    if label.shape == (height, width):
        return label
    t = torch.from_numpy(label.astype(np.int64))[None, None].float()
    return F.interpolate(t, size=(height, width), mode="nearest")[0, 0].long().numpy()


def synthesize(
    checkpoint: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    num_samples: int = 1,
    seed: int = 0,
    device: str = "auto",
    overwrite: bool = False,
    batch_size: int = 8,
    native_size: bool = False,
    progress: bool = True,
) -> list[Path]:
    from tqdm import tqdm

    from dpgan.data.io import read_label

    if num_samples < 1:
        raise DPGANError("--num-samples must be at least 1")
    if num_samples > MAX_SAMPLES:
        raise DPGANError(f"--num-samples {num_samples} is more than {MAX_SAMPLES} images per label map")
    check_seeds([seed, seed + num_samples - 1])  # before anything is written
    if not 1 <= batch_size <= 1024:
        raise DPGANError(f"--batch-size must be from 1 to 1024, not {batch_size}")
    loaded = load_generator(checkpoint, device)
    G, info, cfg = loaded.generator, loaded.info, loaded.config
    dev = next(G.parameters()).device
    files = find_label_files(labels)
    out_dir = Path(out_dir)
    jobs = [(f, seed + k, out_dir / f"{f.stem}_seed{seed + k}.png") for f in files for k in range(num_samples)]
    refuse_overwrite([p for _, _, p in jobs], overwrite)
    stride = 2 ** (cfg.model.num_res_blocks - 1)
    last: dict[Path, np.ndarray] = {}  # one label map at a time: they can be large

    def label_of(f: Path) -> np.ndarray:
        if f not in last:
            lab = read_label(f, info)
            if native_size:
                if lab.shape[0] % stride or lab.shape[1] % stride:
                    raise DataError(f"{f}: size {lab.shape[0]}x{lab.shape[1]} is not a multiple of {stride}")
            else:
                lab = resize_label(lab, cfg.data.height, cfg.data.width)
            last.clear()
            last[f] = lab
        return last[f]

    written: list[Path] = []
    bar = tqdm(total=len(jobs), disable=not progress, desc="synthesize", unit="img")
    i = 0
    while i < len(jobs):
        # batch consecutive jobs whose label maps share a size
        first = label_of(jobs[i][0])
        group = [(jobs[i], first)]
        i += 1
        while i < len(jobs) and len(group) < batch_size:
            lab = label_of(jobs[i][0])
            if lab.shape != first.shape:
                break
            group.append((jobs[i], lab))
            i += 1
        label_map = torch.from_numpy(np.stack([g[1] for g in group]).astype(np.int64)).to(dev)
        images = to_uint8(generate(G, label_map, [g[0][1] for g in group]))
        for ((_, _, path), _), img in zip(group, images):
            save_png(img, path)
            written.append(path)
        bar.update(len(group))
    bar.close()
    return written
