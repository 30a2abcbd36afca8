"""`dpgan synthesize --resample-class/--resample-mask/--interpolate-to`: multimodal control from
the command line, through the Python API (dpgan.inference.api), one label map at a time.

Outputs are named for what made them, so a folder of results explains itself:
  <stem>_seed<S>_<class>_seed<S2>.png      region of <class> redrawn with the noise of S2
  <stem>_seed<S>_mask_seed<S2>.png         region of the mask PNG redrawn with the noise of S2
  <stem>_seed<S>_to<S2>_<i>of<N>.png       step i of N on the great circle from seed S to S2
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dpgan.errors import DataError, DPGANError, refuse_overwrite
from dpgan.inference.synthesize import MAX_SAMPLES, check_seeds, find_label_files, resize_label
from dpgan.visualize import save_png


def _read_mask(path: Path, height: int, width: int) -> np.ndarray:
    from dpgan.data.io import load_label_file

    img = load_label_file(path)
    mask = np.asarray(img.convert("L")) > 0
    if not mask.any():
        raise DataError(f"{path}: the mask is empty (every pixel is 0); paint the region to redraw in non-zero")
    return resize_label(mask.astype(np.int64), height, width).astype(bool)


def vary(
    checkpoint: str | Path,
    labels: str | Path,
    out_dir: str | Path,
    *,
    seed: int = 0,
    new_seed: int | None = None,
    num_samples: int = 1,
    resample_class: str | None = None,
    resample_mask: str | Path | None = None,
    interpolate_to: int | None = None,
    steps: int = 5,
    device: str = "auto",
    overwrite: bool = False,
    native_size: bool = False,
) -> list[Path]:
    from dpgan.inference.api import DPGAN
    from dpgan.data.io import read_label

    chosen = [resample_class is not None, resample_mask is not None, interpolate_to is not None]
    if sum(chosen) != 1:
        raise DPGANError("choose one of --resample-class, --resample-mask or --interpolate-to")
    if num_samples < 1:
        raise DPGANError("--num-samples must be at least 1")
    if num_samples > MAX_SAMPLES or steps > MAX_SAMPLES:
        raise DPGANError(f"--num-samples and --steps are at most {MAX_SAMPLES} images per label map")
    first_new = seed + 1 if new_seed is None else new_seed
    check_seeds([seed, first_new, first_new + num_samples - 1]
                + ([interpolate_to] if interpolate_to is not None else []))  # before anything is written
    model = DPGAN.from_checkpoint(checkpoint, device)
    files = find_label_files(labels)
    out_dir = Path(out_dir)
    h, w = model.config.data.height, model.config.data.width
    jobs: list[tuple[Path, list[Path]]] = []
    if interpolate_to is not None:
        if steps < 2:
            raise DPGANError("--steps must be at least 2")
        for f in files:
            jobs.append((f, [out_dir / f"{f.stem}_seed{seed}_to{interpolate_to}_{i}of{steps}.png" for i in range(steps)]))
    else:
        tag = model.info.class_names[model.class_id(resample_class)] if resample_class is not None else "mask"
        for f in files:
            jobs.append((f, [out_dir / f"{f.stem}_seed{seed}_{tag}_seed{first_new + k}.png" for k in range(num_samples)]))
    refuse_overwrite([p for _, outs in jobs for p in outs], overwrite)
    written: list[Path] = []
    for f, outs in jobs:
        lab = read_label(f, model.info)
        if not native_size:
            lab = resize_label(lab, h, w)
        if interpolate_to is not None:
            images = model.interpolate(lab, seed, interpolate_to, steps=steps)
        else:
            region = (model.region_mask(lab, class_id=resample_class)
                      if resample_class is not None else
                      model.region_mask(lab, mask=_read_mask(Path(resample_mask), *lab.shape)))
            if not bool(region.any()):
                print(f"note: {f.name} has no pixel of {resample_class}; its images equal seed {seed}'s")
            images = [model.resample(lab, seed, first_new + k, mask=region.cpu().numpy()) for k in range(num_samples)]
        for img, path in zip(images, outs):
            save_png(np.asarray(img), path)
            written.append(path)
    return written
