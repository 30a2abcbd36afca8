"""FID and KID with pytorch-fid semantics (docs/evaluation.md 1.1, 1.6).

Numbers comparable with SPADE/OASIS/DP-GAN need pytorch-fid's exact recipe: pool3 features of
the FID Inception, mean and unbiased covariance in float64, scipy's `sqrtm` with an eps retry,
and an error (not a silent fix) when the matrix square root has a large imaginary part.
OASIS's in-training variant (float32 stats, imaginary part dropped) is available through
`stats_dtype="float32"` and `imag_policy="drop"`, clearly labelled in the saved settings.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from scipy import linalg
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.functional import to_tensor
from tqdm import tqdm

from dpgan.errors import DataError, DPGANError
from dpgan.evaluate.inception import FID_INPUT_SIZE, FIDInceptionV3

IMAGE_EXTENSIONS = frozenset({"bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp"})
StatsDtype = Literal["float64", "float32"]
ImagPolicy = Literal["raise", "drop"]


class FIDNumericalError(DPGANError, ValueError):
    """sqrtm(S1 S2) has a large imaginary part: usually too few images for the feature size.
    A ValueError as in pytorch-fid, and a DPGANError so the CLI prints it as one line."""


# ----------------------------------------------------------------------------------- features
def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside `folder`, sorted (pytorch-fid reads them in this order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"Image folder {str(folder)!r} does not exist.")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix[1:].lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DataError(f"Image folder {str(folder)!r} holds no {'/'.join(sorted(IMAGE_EXTENSIONS))} files.")
    return files


class ImageFiles(Dataset):
    """PIL -> RGB -> float [0, 1], no resizing (the Inception resizes), as pytorch-fid loads."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> torch.Tensor:
        try:
            with Image.open(self.files[i]) as img:
                return to_tensor(img.convert("RGB"))
        except OSError as exc:
            raise DataError(f"Image {self.files[i]} could not be read ({exc}).") from exc


def _collate_same_size(batch: list[torch.Tensor]) -> torch.Tensor:
    sizes = {tuple(t.shape[1:]) for t in batch}
    if len(sizes) > 1:
        raise DataError(
            f"Images of one FID batch differ in size {sorted(sizes)}; resize the folder to one "
            "size first (pytorch-fid batches images without resizing them)."
        )
    return torch.stack(batch)


@torch.no_grad()
def inception_activations(
    batches: Iterable[torch.Tensor],
    model: FIDInceptionV3,
    *,
    device: str | torch.device = "cpu",
    total: int | None = None,
    progress: bool = True,
    desc: str = "Inception features",
    seen_sizes: set[tuple[int, int]] | None = None,
) -> np.ndarray:
    """Features (N x dims, float64) of image batches: float in [0, 1] or uint8 (divided by 255).

    Fakes straight from the generator (tanh range) must be mapped with `(x + 1) / 2` first;
    they are neither clamped nor quantised here, as in OASIS's on-the-fly FID. The H x W of
    every batch is added to `seen_sizes` when given (recorded with the statistics).
    """
    model = model.to(device).eval()
    chunks: list[np.ndarray] = []
    for batch in tqdm(batches, total=total, desc=desc, unit="batch", disable=not progress):
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise DPGANError(f"FID expects image batches of shape N x 3 x H x W, got {tuple(batch.shape)}.")
        if seen_sizes is not None:
            seen_sizes.add((int(batch.shape[2]), int(batch.shape[3])))
        images = batch.float() / 255 if batch.dtype == torch.uint8 else batch.float()
        chunks.append(model(images.to(device)).cpu().numpy().astype(np.float64))
    if not chunks:
        raise DPGANError("FID got no images.")
    return np.concatenate(chunks, axis=0)


def folder_activations(
    folder: str | Path,
    model: FIDInceptionV3,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    progress: bool = True,
    seen_sizes: set[tuple[int, int]] | None = None,
) -> np.ndarray:
    files = list_images(folder)
    loader = DataLoader(
        ImageFiles(files),
        batch_size=min(batch_size, len(files)),
        shuffle=False,
        drop_last=False,
        num_workers=num_workers,
        collate_fn=_collate_same_size,
    )
    return inception_activations(
        loader, model, device=device, total=len(loader), progress=progress,
        desc=f"Inception features of {Path(folder).name}", seen_sizes=seen_sizes,
    )  # fmt: skip


# -------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class FIDStats:
    """Mean and covariance of Inception features plus the settings that produced them.

    `settings` is saved with the arrays so that a cached reference is never silently compared
    with features from other weights, another feature size or another image resolution.
    """

    mu: np.ndarray
    sigma: np.ndarray
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_activations(
        cls,
        activations: np.ndarray,
        stats_dtype: StatsDtype = "float64",
        settings: dict[str, Any] | None = None,
    ) -> FIDStats:
        """`float64`: numpy mean and unbiased covariance exactly as pytorch-fid.
        `float32`: OASIS's training-time variant (torch float32 mean/covariance)."""
        acts = np.asarray(activations)
        if acts.ndim != 2 or acts.shape[0] < 2:
            raise DPGANError(f"FID statistics need at least 2 feature vectors, got shape {acts.shape}.")
        if stats_dtype == "float64":
            acts = acts.astype(np.float64, copy=False)
            mu, sigma = np.mean(acts, axis=0), np.cov(acts, rowvar=False)
        elif stats_dtype == "float32":
            x = torch.from_numpy(acts.astype(np.float32))
            mean = x.mean(dim=0)
            centred = x - mean
            cov = centred.T @ centred / (x.shape[0] - 1)
            mu, sigma = mean.numpy().astype(np.float64), cov.numpy().astype(np.float64)
        else:
            raise ValueError(f"stats_dtype must be 'float64' or 'float32', got {stats_dtype!r}")
        info = {"num_images": int(acts.shape[0]), "dims": int(acts.shape[1]), "stats_dtype": stats_dtype}
        return cls(mu=mu, sigma=sigma, settings={**(settings or {}), **info})

    def save(self, path: str | Path) -> None:
        """npz with `mu`, `sigma` (readable by pytorch-fid) and `settings` (a JSON string)."""
        with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
            np.savez_compressed(
                f, mu=self.mu, sigma=self.sigma, settings=np.array(json.dumps(self.settings, sort_keys=True))
            )

    @classmethod
    def load(cls, path: str | Path) -> FIDStats:
        """Read our npz or pytorch-fid's (which has no settings)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                mu, sigma = f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
                settings = json.loads(str(f["settings"])) if "settings" in f.files else {}
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path} is not an FID statistics file with 'mu' and 'sigma' ({exc}).") from exc
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise DataError(f"{path}: mu {mu.shape} and sigma {sigma.shape} do not fit together.")
        return cls(mu=mu, sigma=sigma, settings=settings)


def extraction_settings(model: FIDInceptionV3, seen_sizes: set[tuple[int, int]]) -> dict[str, Any]:
    """What decides the numbers besides the images: weights, resize, input resolution."""
    return {
        "network": "pytorch-fid InceptionV3 (TF 2015-12-05 graph)",
        "weights_sha256": getattr(model, "weights_sha256", None),
        "resize": (
            f"bilinear {FID_INPUT_SIZE}x{FID_INPUT_SIZE} align_corners=False"
            if getattr(model, "resize_input", True)
            else "none"
        ),
        "image_sizes": sorted([h, w] for h, w in seen_sizes),
    }


def stats_of_images(
    batches: Iterable[torch.Tensor] | Iterator[torch.Tensor],
    model: FIDInceptionV3,
    *,
    device: str | torch.device = "cpu",
    stats_dtype: StatsDtype = "float64",
    total: int | None = None,
    progress: bool = True,
) -> FIDStats:
    """Statistics of an iterator of image batches (float [0, 1] or uint8), e.g. generated fakes."""
    sizes: set[tuple[int, int]] = set()
    acts = inception_activations(
        batches, model, device=device, total=total, progress=progress, seen_sizes=sizes
    )
    settings = {**extraction_settings(model, sizes), "source": "images"}
    return FIDStats.from_activations(acts, stats_dtype, settings)


def stats_of_folder(
    folder: str | Path,
    model: FIDInceptionV3,
    *,
    batch_size: int = 50,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
    stats_dtype: StatsDtype = "float64",
    progress: bool = True,
) -> FIDStats:
    sizes: set[tuple[int, int]] = set()
    acts = folder_activations(
        folder, model, batch_size=batch_size, device=device, num_workers=num_workers,
        progress=progress, seen_sizes=sizes,
    )  # fmt: skip
    settings = {**extraction_settings(model, sizes), "source": str(Path(folder).resolve())}
    return FIDStats.from_activations(acts, stats_dtype, settings)


# -------------------------------------------------------------------------------- distances
def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
    imag_policy: ImagPolicy = "raise",
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 sqrt(S1 S2)), computed as pytorch-fid does.

    A nearly singular product (few images, many features) gives a non-finite square root;
    then `eps * I` is added to both covariances. A complex root whose diagonal has
    |imag| > 1e-3 means the result cannot be trusted: `raise` (pytorch-fid) or `drop` the
    imaginary part (OASIS).
    """
    mu1, mu2 = (np.atleast_1d(np.asarray(m, np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, np.float64)) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise DPGANError(
            f"FID statistics differ in feature size ({mu1.shape[0]} vs {mu2.shape[0]}); "
            "compute both with the same --dims."
        )
    diff = mu1 - mu2
    # scipy >= 1.16 deprecates `disp`; without it every version returns just the root.
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals.", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if imag_policy == "raise" and not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise FIDNumericalError(
                f"FID is unreliable: sqrtm(S1 S2) has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g} (too few images for {mu1.shape[0]} features?)."
            )
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_stats(a: FIDStats, b: FIDStats, imag_policy: ImagPolicy = "raise") -> float:
    """FID of two cached statistics; warns when their recorded settings disagree."""
    for key in ("weights_sha256", "dims", "resize", "stats_dtype", "image_sizes"):
        va, vb = a.settings.get(key), b.settings.get(key)
        if va is not None and vb is not None and va != vb:
            warnings.warn(f"FID statistics were computed with different {key}: {va} vs {vb}.", stacklevel=2)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, imag_policy=imag_policy)


@dataclass(frozen=True)
class KID:
    mean: float
    std: float


def kernel_inception_distance(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef0: float = 1.0,
    seed: int = 0,
) -> KID:
    """Unbiased squared MMD with the polynomial kernel (x.y / d + 1)^3, averaged over random
    subsets drawn without replacement (Binkowski et al. 2018; torch-fidelity's defaults).

    Unlike FID it is unbiased in the number of images, so small test sets can be compared.
    """
    fa, fb = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1]:
        raise DPGANError(f"KID needs two N x d feature arrays of equal d, got {fa.shape} and {fb.shape}.")
    m = subset_size
    if m < 2 or m > min(len(fa), len(fb)):
        raise DPGANError(
            f"KID subset size {m} must be between 2 and the smaller set size ({min(len(fa), len(fb))})."
        )
    g = 1.0 / fa.shape[1] if gamma is None else gamma
    rng = np.random.default_rng(seed)
    mmds = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = fa[rng.choice(len(fa), m, replace=False)]
        y = fb[rng.choice(len(fb), m, replace=False)]
        k_xx = (g * x @ x.T + coef0) ** degree
        k_yy = (g * y @ y.T + coef0) ** degree
        k_xy = (g * x @ y.T + coef0) ** degree
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        mmds[i] = within - 2 * k_xy.sum() / (m * m)
    return KID(mean=float(mmds.mean()), std=float(mmds.std()))
