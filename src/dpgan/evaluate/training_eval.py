"""Evaluation inside the training loop, and keeping the best checkpoint.

OASIS and DP-GAN compute FID every few thousand steps and keep the checkpoint with the lowest
(selection on the validation set, which is also the reported set: say so when you report).
Here the metric is a choice (`train.eval_metric`): FID needs the Inception weights, the
embedded dataset has only its reference segmenter, so mIoU or RefSeg-FD are offered too.

Meant to be driven by `dpgan.training.loop.train` on the main process:

    evaluator = TrainingEvaluator(cfg, val_set, info, device, run_dir=run_dir)
    ...
    if t.eval_every and step % t.eval_every == 0:
        use_ema()                                   # BN statistics of the EMA generator
        metrics = evaluator(G_ema, step)            # {"fid": ..., "miou": ...}: floats
        for k, v in metrics.items(): writer.add_scalar(f"eval/{k}", v, step)
        if evaluator.update_best(metrics, step):
            save_best_checkpoint(run_dir, step, payload)
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from dpgan.checkpoint import FORMAT, VERSION, checkpoint_dir
from dpgan.files import torch_save_atomic
from dpgan.data.info import DatasetInfo
from dpgan.errors import DPGANError
from dpgan.evaluate.judges import PUBLISHED_SEGMENTER_BY_DATASET
from dpgan.evaluate.run_eval import evaluate_generator, load_eval_networks

METRIC_DIRECTION: dict[str, str] = {
    "fid": "min", "kid": "min", "refseg_fd": "min", "miou": "max", "obj_miou": "max", "pixel_accuracy": "max",
}  # fmt: skip
HISTORY_FILE = "eval_history.jsonl"
BEST_FILE = "best.json"
BEST_CHECKPOINT = "best.pt"


def is_better(metric: str, value: float | None, best: float | None) -> bool:
    """Strictly better in the metric's direction; a missing or NaN value never is, and any
    finite value beats no best yet."""
    if metric not in METRIC_DIRECTION:
        raise DPGANError(f"unknown evaluation metric {metric!r}; choose one of {sorted(METRIC_DIRECTION)}")
    if value is None or not math.isfinite(value):
        return False
    if best is None or not math.isfinite(best):
        return True
    return value < best if METRIC_DIRECTION[metric] == "min" else value > best


def select_best(history: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    """The entry ({"step": s, metric: v, ...}) with the best value; the earliest on ties."""
    best: dict[str, Any] | None = None
    for entry in sorted(history, key=lambda e: e["step"]):
        if is_better(metric, entry.get(metric), None if best is None else best.get(metric)):
            best = entry
    return best


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def best_checkpoint_path(run_dir: str | Path) -> Path:
    """RUN/checkpoints/best.pt: outside the step_XXXXXXXX.pt pattern, so keep_checkpoints never
    deletes it; `dpgan evaluate --run RUN/checkpoints/best.pt` evaluates it."""
    return checkpoint_dir(run_dir) / BEST_CHECKPOINT


def save_best_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any]) -> Path:
    """Write a checkpoint payload (as `train.save` builds it) as the run's best, atomically."""
    path = best_checkpoint_path(run_dir)
    torch_save_atomic({"format": FORMAT, "version": VERSION, "step": step, **payload}, path)
    return path


def published_weights_options(dataset: str, path: str | None) -> dict[str, str]:
    """One path (`train.eval_segmenter_weights`) -> the option of the dataset's segmenter:
    the DRN file, the UperNet model-zoo folder (encoder and decoder inside) or the DeepLab file."""
    if path is None:
        return {}
    option = {"DRN-D-105": "drn", "UperNet-101": "upernet_encoder", "DeepLab-v2": "deeplab"}
    name = PUBLISHED_SEGMENTER_BY_DATASET.get(dataset)
    if name is None:
        raise DPGANError(f"dataset {dataset!r} has no published segmenter; use a reference segmenter instead.")
    return {option[name]: path}


class TrainingEvaluator:
    """`evaluator(G_ema, step) -> {metric: float}` on the first `num_images` validation label maps
    with fixed noise (image i from seed + i), so that successive evaluations differ only by the
    generator. Real-image statistics are computed once."""

    def __init__(
        self,
        cfg: Any,
        val_set: Dataset,
        info: DatasetInfo,
        device: str | torch.device,
        *,
        run_dir: str | Path | None = None,
        segmenter: str | Path | None = None,
        inception_weights: str | Path | None = None,
        published_weights: str | None = None,
        num_images: int | None = None,
        metric: str | None = None,
        seed: int = 0,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> None:
        from dpgan.evaluate.reference_segmenter import default_segmenter_path

        t = cfg.train
        self.val_set, self.info, self.device, self.seed, self.progress = val_set, info, torch.device(device), seed, progress
        self.num_images = int(num_images or getattr(t, "eval_images", 64))
        self.batch_size = int(batch_size or t.batch_size)
        self.run_dir = None if run_dir is None else Path(run_dir)
        segmenter = segmenter or getattr(t, "eval_segmenter", None)
        if segmenter is None and default_segmenter_path(cfg.data).is_file():
            segmenter = default_segmenter_path(cfg.data)
        self.networks = load_eval_networks(
            info, segmenter=segmenter, inception_weights=inception_weights or getattr(t, "eval_inception", None),
            **published_weights_options(info.name, published_weights or getattr(t, "eval_segmenter_weights", None)),
        )  # fmt: skip
        if not self.networks.any():
            raise DPGANError(
                "train.eval_every is set but there is nothing to evaluate with: train a reference segmenter "
                f"(`dpgan train-segmenter`, expected at {default_segmenter_path(cfg.data)}) or give "
                "train.eval_segmenter / train.eval_inception / train.eval_segmenter_weights."
            )
        self.metric = self._resolve_metric(metric or getattr(t, "eval_metric", "auto"))
        self._real: dict[str, Any] = {}
        history = read_history(self.run_dir) if self.run_dir is not None else []
        self.best: dict[str, Any] | None = select_best(history, self.metric)

    def _resolve_metric(self, metric: str) -> str:
        n = self.networks
        available = ({"fid", "kid"} if n.inception else set()) | (
            {"miou", "obj_miou", "pixel_accuracy"} if n.judge else set()) | ({"refseg_fd"} if n.reference else set())
        if metric == "auto":
            return "fid" if n.inception else "refseg_fd" if n.reference else "miou"
        if metric not in METRIC_DIRECTION:
            raise DPGANError(f"train.eval_metric {metric!r} is unknown; choose auto or one of {sorted(METRIC_DIRECTION)}")
        if metric not in available:
            raise DPGANError(f"train.eval_metric {metric!r} needs a network that was not given "
                             f"(available now: {sorted(available)}).")
        return metric

    @torch.no_grad()
    def __call__(self, G: nn.Module, step: int) -> dict[str, float]:
        result = evaluate_generator(
            G, self.val_set, self.info, self.networks, device=self.device, num_images=self.num_images,
            seed=self.seed, batch_size=self.batch_size, imag_policy="drop", real_cache=self._real,
            progress=self.progress,
        )  # fmt: skip
        metrics = {k: float(v) for k, v in result["metrics"].items() if v is not None}
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / HISTORY_FILE, "a") as f:
                f.write(json.dumps({"step": step, **{k: _finite_or_none(v) for k, v in metrics.items()}}) + "\n")
        return metrics

    def is_better(self, metrics: dict[str, float], best: dict[str, Any] | None = None) -> bool:
        """Whether `metrics` beat `best` (default: the best so far) on the chosen metric."""
        best = self.best if best is None else best
        return is_better(self.metric, metrics.get(self.metric), None if best is None else best.get(self.metric))

    def update_best(self, metrics: dict[str, float], step: int) -> bool:
        """Remember `metrics` as the best if they are (writing RUN/best.json); True if so."""
        if not self.is_better(metrics):
            return False
        self.best = {"step": step, **metrics}
        if self.run_dir is not None:
            entry = {"metric": self.metric, **{k: _finite_or_none(v) for k, v in self.best.items()}}
            (self.run_dir / BEST_FILE).write_text(json.dumps(entry, indent=2) + "\n")
        return True


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
