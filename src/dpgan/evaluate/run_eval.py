"""`dpgan evaluate`: every metric available for a run's dataset, on generated and real images.

Protocol (docs/evaluation.md, OASIS): one image per validation label map from the EMA generator,
the noise of image i drawn from seed `seed + i` (so a number depends only on the checkpoint,
the seed and the image count); the validation images at the training resolution are the
real set. The real images are scored with the same networks: their mIoU is the ceiling a
generator can reach under that segmenter.

Metrics (each only when its network is available; nothing is downloaded):
- `fid`, `kid`: Inception (pytorch-fid semantics), with --inception-weights.
- `miou`, `pixel_accuracy`, `obj_miou`, per-class IoU, IoU by object size: the dataset's
  published segmenter when its weights are given, else the reference segmenter.
- `refseg_fd`: Frechet distance of the reference segmenter's features (not FID).
- `noise_diversity`: what the noise changes: the mean absolute difference (0-255) between the
  images of seeds `seed + i` and `seed + i + 1` for label map i. For the real images, where the
  dataset can render one label map twice (synthetic-streets), the same between two renderings:
  how much two images of one map may differ.
- `stripe_ratio`: anisotropy of the generated against the real images (dpgan.evaluate.stripes).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from dpgan.data.info import DatasetInfo
from dpgan.errors import DPGANError
from dpgan.evaluate.fid import FIDNumericalError, FIDStats, ImagPolicy, frechet_distance, kernel_inception_distance
from dpgan.evaluate.inception import FIDInceptionV3
from dpgan.evaluate.judges import PAPER_RESOLUTION, Judge, JudgeTally, published_judge, reference_judge
from dpgan.evaluate.reference_segmenter import LoadedReferenceSegmenter, ReferenceSegmenter
from dpgan.evaluate.stripes import NeighbourDifferences, stripe_ratio

SIZE_NOTE = (
    "Instances = 8-connected components of the object classes in the ground truth, binned by "
    "area / image area. Per bin: IoU = sum tp / sum (tp + fn + fp) over its instances; every pixel "
    "wrongly predicted as an object class is a false positive of the nearest ground-truth instance "
    "of that class (full definition: dpgan.evaluate.object_size)."
)


@dataclass
class EvalNetworks:
    """The networks that judge images; any of them may be missing."""

    inception: FIDInceptionV3 | None = None
    judge: Judge | None = None  # mIoU & co: the published segmenter, else the reference one
    reference: LoadedReferenceSegmenter | None = None  # RefSeg-FD

    def any(self) -> bool:
        return any(x is not None for x in (self.inception, self.judge, self.reference))

    def to(self, device: torch.device) -> EvalNetworks:
        for net in (self.inception, self.judge and self.judge.segmenter, self.reference and self.reference.model):
            if net is not None:
                net.to(device).eval()
        return self

    def describe(self) -> dict[str, Any]:
        ref = self.reference
        return {
            "inception": None if self.inception is None else {
                "weights": getattr(self.inception, "weights_path", None),
                "sha256": self.inception.weights_sha256, "dims": self.inception.dims,
            },
            "segmenter": None if self.judge is None else self.judge.describe(),
            "reference_segmenter": None if ref is None else {
                "weights": ref.path, "feature_dims": ref.model.config.feature_dims,
                "trained_at": [ref.model.config.image_height, ref.model.config.image_width],
                "val_miou": ref.val_scores.get("miou"), "digest": ref.digest,
            },
        }  # fmt: skip


def load_eval_networks(
    info: DatasetInfo,
    *,
    segmenter: str | Path | None = None,
    inception_weights: str | Path | None = None,
    drn: str | Path | None = None,
    upernet_encoder: str | Path | None = None,
    upernet_decoder: str | Path | None = None,
    deeplab: str | Path | None = None,
    inception_dims: int = 2048,
) -> EvalNetworks:
    """Build what the given files allow. A named file that is missing is an error (naming the
    file and its option); a network whose option is not given is simply skipped."""
    inception = None
    if inception_weights is not None:
        inception = FIDInceptionV3.from_file(inception_weights, dims=inception_dims)
        inception.weights_path = str(inception_weights)
    judge = published_judge(
        info.name, drn=drn, upernet_encoder=upernet_encoder, upernet_decoder=upernet_decoder, deeplab=deeplab
    )
    reference = None
    if segmenter is not None:
        reference = ReferenceSegmenter.from_file(segmenter)
        if reference.info.class_names != info.class_names:
            raise DPGANError(
                f"--segmenter {segmenter} was trained on dataset {reference.info.name!r} "
                f"({reference.info.num_classes} classes), not on this run's {info.name!r} "
                f"({info.num_classes} classes); train one with `dpgan train-segmenter --run RUN`."
            )
        if judge is None:
            judge = reference_judge(reference.model, info, weights=reference.path)
    return EvalNetworks(inception=inception, judge=judge, reference=reference)


def _collate(items: list[dict]) -> dict[str, torch.Tensor]:
    return {"image": torch.stack([it["image"] for it in items]), "label": torch.stack([it["label"] for it in items])}


def _frechet(
    a: list[np.ndarray], b: list[np.ndarray], imag_policy: ImagPolicy, notes: list[str], what: str, quiet: bool = False
) -> float | None:
    """Frechet distance of two feature sets; None (and a note) when it cannot be trusted.
    `quiet` silences the singular-matrix warnings that fewer images than features always give."""
    fa, fb = np.concatenate(a), np.concatenate(b)
    if len(fa) < 2:
        notes.append(f"{what} needs at least 2 images")
        return None
    sa, sb = FIDStats.from_activations(fa), FIDStats.from_activations(fb)
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore")
        try:
            return frechet_distance(sa.mu, sa.sigma, sb.mu, sb.sigma, imag_policy=imag_policy)
        except FIDNumericalError as exc:
            notes.append(f"{what} not reported: {exc}")
            return None


def _mean_abs_255(a: Tensor, b: Tensor) -> Tensor:
    """Per image: the mean absolute difference of two [-1, 1] images, in 0-255 units."""
    return (a - b).abs().mean(dim=(1, 2, 3)).cpu() * 127.5


@torch.no_grad()
def evaluate_generator(
    G: nn.Module,
    val_set: Dataset,
    info: DatasetInfo,
    networks: EvalNetworks,
    *,
    device: str | torch.device = "cpu",
    num_images: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    imag_policy: ImagPolicy = "raise",
    real_cache: dict[str, Any] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate one image per label map of `val_set[:num_images]` and score it; score the real
    images too. `real_cache` (a dict kept by the caller) skips the real side on later calls
    with the same image count, as during training. Returns a JSON-ready dict (NaN allowed)."""
    from tqdm import tqdm

    from dpgan.inference.synthesize import generate

    if not networks.any():
        raise DPGANError("No evaluation network: give Inception weights, segmenter weights or a reference segmenter.")
    n = len(val_set) if num_images is None else min(int(num_images), len(val_set))
    if n < 1:
        raise DPGANError(f"--num-images must be at least 1 (the validation set has {len(val_set)} images).")
    dev = torch.device(device)
    networks.to(dev)
    cache = real_cache if real_cache is not None and real_cache.get("num_images") == n else None
    need_real = cache is None
    t0 = time.perf_counter()
    was_training = G.training
    G.eval()
    judge, inception, ref = networks.judge, networks.inception, networks.reference
    fake_tally = JudgeTally(judge) if judge else None
    real_tally = JudgeTally(judge) if judge and need_real else None
    acts: dict[str, list[np.ndarray]] = {"fake_inc": [], "real_inc": [], "fake_ref": [], "real_ref": []}
    fake_diffs, real_diffs = NeighbourDifferences(), NeighbourDifferences()
    noise_diffs: list[Tensor] = []
    other_appearance = getattr(val_set, "other_appearance", None) if need_real else None
    appearance_diffs: list[Tensor] = []
    loader = DataLoader(Subset(val_set, range(n)), batch_size=batch_size, shuffle=False, collate_fn=_collate)
    bar = tqdm(total=n, desc="evaluate: generate and judge", unit="img", disable=not progress, dynamic_ncols=True)
    start = 0
    for batch in loader:
        label, real = batch["label"].to(dev), batch["image"].to(dev)
        seeds = list(range(seed + start, seed + start + len(label)))
        fake = generate(G, label, seeds)
        noise_diffs.append(_mean_abs_255(fake, generate(G, label, [s + 1 for s in seeds])))
        if other_appearance is not None:
            alt = torch.stack([other_appearance(i) for i in range(start, start + len(label))]).to(dev)
            appearance_diffs.append(_mean_abs_255(real, alt))
        start += len(label)
        resolution = tuple(label.shape[1:])
        fake_diffs.update(fake)
        if need_real:
            real_diffs.update(real)
        if inception is not None:  # OASIS: (x + 1) / 2 of the tanh output, neither clamped nor quantised
            acts["fake_inc"].append(inception((fake + 1) / 2).double().cpu().numpy())
            if need_real:
                acts["real_inc"].append(inception((real + 1) / 2).double().cpu().numpy())
        if fake_tally is not None:
            fake_tally.update(fake, label)
            if real_tally is not None:
                real_tally.update(real, label)
        if ref is not None:
            acts["fake_ref"].append(ref.model.features(fake).numpy())
            if need_real:
                acts["real_ref"].append(ref.model.features(real).numpy())
        bar.update(len(label))
    bar.close()
    G.train(was_training)

    if need_real:
        cache = {"num_images": n, "real_inc": acts["real_inc"], "real_ref": acts["real_ref"],
                 "real_scores": real_tally.scores() if real_tally else None, "real_diffs": real_diffs,
                 "real_diversity": torch.cat(appearance_diffs).mean().item() if appearance_diffs else None}
        if real_cache is not None:
            real_cache.clear()
            real_cache.update(cache)
    notes: list[str] = []
    metrics: dict[str, float | None] = {"stripe_ratio": stripe_ratio(fake_diffs, cache["real_diffs"]),
                                        "noise_diversity": torch.cat(noise_diffs).mean().item()}
    if inception is not None:
        metrics["fid"] = _frechet(acts["fake_inc"], cache["real_inc"], imag_policy, notes, "FID")
        fa, fr = np.concatenate(acts["fake_inc"]), np.concatenate(cache["real_inc"])
        if n >= 2:
            kid = kernel_inception_distance(fa, fr, subset_size=min(1000, n), num_subsets=100, seed=seed)
            metrics["kid"], metrics["kid_std"] = kid.mean, kid.std
    fake_scores, real_scores = (fake_tally.scores() if fake_tally else None), cache["real_scores"]
    real: dict[str, float | None] = {}
    if cache.get("real_diversity") is not None:
        real["noise_diversity"] = cache["real_diversity"]
    if fake_scores is not None:
        for key in ("miou", "obj_miou", "pixel_accuracy"):
            metrics[key], real[key] = fake_scores[key], real_scores[key]
    if ref is not None:
        metrics["refseg_fd"] = _frechet(acts["fake_ref"], cache["real_ref"], "drop", notes, "RefSeg-FD", quiet=True)
    result: dict[str, Any] = {
        "format": "dpgan-eval",
        "version": 1,
        "dataset": info.name,
        "protocol": {
            "num_images": n, "seed": seed, "split": getattr(val_set, "split", None),
            "resolution": list(resolution), "generator": "EMA",
            "noise": "z of image i drawn from seed + i (dpgan.inference.synthesize.noise_for_seeds)",
            "fid_imag_policy": imag_policy,
        },
        "networks": networks.describe(),
        "metrics": metrics,
        "real": real,
        "notes": notes,
    }  # fmt: skip
    if fake_scores is not None:
        result["per_class_iou"] = {
            "classes": list(judge.class_names),
            "generated": fake_scores["per_class_iou"],
            "real": real_scores["per_class_iou"],
        }
        result["iou_by_size"] = {
            "bins": fake_scores["iou_by_size"]["bins"], "edges": fake_scores["iou_by_size"]["edges"],
            "generated": fake_scores["iou_by_size"], "real": real_scores["iou_by_size"],
            "object_classes": [judge.class_names[c] for c in judge.object_classes], "definition": SIZE_NOTE,
        }  # fmt: skip
    result["seconds"] = time.perf_counter() - t0
    return result


@torch.no_grad()
def example_grid(G: nn.Module, val_set: Dataset, info: DatasetInfo, *, seed: int = 0, count: int = 8,
                 device: str | torch.device = "cpu") -> np.ndarray:
    """label | generated | real for the first `count` label maps, with the same noise as the
    evaluation (image i from seed + i), enlarged so that small images stay readable."""
    from dpgan.inference.synthesize import generate
    from dpgan.visualize import colorize, image_grid

    items = _collate([val_set[i] for i in range(min(count, len(val_set)))])
    label = items["label"].to(device)
    was_training = G.training
    G.eval()
    fake = generate(G, label, list(range(seed, seed + len(label))))
    G.train(was_training)
    scale = max(1, min(4, 128 // label.shape[1]))
    return image_grid([colorize(label, info.colors), fake, items["image"].to(device)], scale=scale)


def evaluate_run(
    run: str | Path,
    *,
    out_dir: str | Path | None = None,
    device: str = "auto",
    segmenter: str | Path | None = None,
    use_default_segmenter: bool = True,
    inception_weights: str | Path | None = None,
    drn: str | Path | None = None,
    upernet_encoder: str | Path | None = None,
    upernet_decoder: str | Path | None = None,
    deeplab: str | Path | None = None,
    num_images: int | None = None,
    seed: int = 0,
    batch_size: int = 8,
    data_root: str | Path | None = None,
    inception_dims: int = 2048,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run folder (latest checkpoint) or one checkpoint file; with `out_dir`, write
    metrics.json, report.html, report.md and examples.png there. Returns the metrics dict."""
    from dpgan.data.registry import build_dataset, has_split
    from dpgan.evaluate.reference_segmenter import default_segmenter_path
    from dpgan.evaluate.report import json_safe, write_reports
    from dpgan.inference.synthesize import load_generator

    loaded = load_generator(run, device)
    cfg, info, G = loaded.config, loaded.info, loaded.generator
    dev = next(G.parameters()).device
    data_cfg = cfg.data if data_root is None else replace(cfg.data, root=str(data_root))
    split = "val" if has_split(data_cfg, "val") else "train"
    val_set = build_dataset(data_cfg, split, train=False)
    looked_for = None
    if segmenter is None and use_default_segmenter:
        looked_for = default_segmenter_path(data_cfg)
        segmenter = looked_for if looked_for.is_file() else None
    networks = load_eval_networks(
        info, segmenter=segmenter, inception_weights=inception_weights, drn=drn,
        upernet_encoder=upernet_encoder, upernet_decoder=upernet_decoder, deeplab=deeplab,
        inception_dims=inception_dims,
    )  # fmt: skip
    if not networks.any():
        raise DPGANError(
            "Nothing to evaluate with: give --inception-weights, the dataset's segmenter weights "
            f"(--drn / --upernet-encoder / --deeplab), or --segmenter (none found at {looked_for}; "
            f"make one with `dpgan train-segmenter --run {run}`)."
        )
    result = evaluate_generator(
        G, val_set, info, networks, device=dev, num_images=num_images, seed=seed,
        batch_size=batch_size, progress=progress,
    )  # fmt: skip
    result["protocol"]["split"] = split
    if split != "val":
        result["notes"].append("the dataset has no validation split: real and generated images come from train")
    paper_size = PAPER_RESOLUTION.get(info.name)
    if networks.judge is not None and networks.judge.published and paper_size is not None \
            and list(paper_size) != result["protocol"]["resolution"]:
        result["notes"].append(f"published {info.name} scores are measured at {paper_size[0]}x{paper_size[1]}; "
                               f"this run generates {result['protocol']['resolution']}, so they do not compare")
    if networks.reference is not None:
        trained_at = [networks.reference.model.config.image_height, networks.reference.model.config.image_width]
        if trained_at != result["protocol"]["resolution"]:
            result["notes"].append(
                f"the reference segmenter was trained at {trained_at[0]}x{trained_at[1]} and judges "
                f"images of {result['protocol']['resolution']}"
            )
    result["run"] = {
        "name": cfg.name, "checkpoint": loaded.path, "step": loaded.step, "generator": cfg.model.generator,
        "discriminator": cfg.model.discriminator, "dataset": info.name,
    }  # fmt: skip
    result = json_safe(result)
    if out_dir is not None:
        grid = example_grid(G, val_set, info, seed=seed, device=dev)
        write_reports(result, out_dir, grid)
    return result


def default_out_dir(run: str | Path) -> Path:
    """RUN/eval for a run folder; RUN/eval/<checkpoint name> for one checkpoint file."""
    run = Path(run)
    if run.is_dir():
        return run / "eval"
    run_dir = run.parent.parent if run.parent.name == "checkpoints" else run.parent
    return run_dir / "eval" / run.stem
