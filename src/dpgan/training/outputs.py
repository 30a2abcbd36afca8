"""What a training run writes besides its updates: samples, checkpoints, evaluations, logs.

The EMA generator's batch-norm statistics belong to its weights; they are recomputed once per
step that uses them (a sample, a checkpoint and an evaluation at one step share one).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dpgan.checkpoint import rng_state
from dpgan.data.info import DatasetInfo
from dpgan.errors import DPGANError
from dpgan.files import write_text_atomic
from dpgan.tensors import one_hot
from dpgan.training import preflight
from dpgan.training.ema import recalibrate_batchnorm
from dpgan.training.state import TrainingState
from dpgan.visualize import colorize, image_grid, save_png


class EMAStatistics:
    """G_ema's BN statistics, from training batches (no labels leak: G only)."""

    def __init__(self, G_ema: nn.Module, train_set, batch_size: int, num_batches: int, seed: int,
                 device: torch.device) -> None:
        self.G_ema, self.train_set, self.device = G_ema, train_set, device
        self.batch_size, self.num_batches, self.seed = batch_size, num_batches, seed
        self.num_classes = train_set.info.num_classes
        self.fresh = False  # the statistics belong to G_ema's current weights

    def weights_changed(self) -> None:
        self.fresh = False

    def refresh(self) -> None:
        # The noise comes from its own seeded generator: drawn from the global RNG it would depend
        # on whatever ran before (an evaluation's data loader draws a seed), and a resumed run's
        # EMA statistics would differ from those of a run that never stopped.
        if self.fresh:
            return
        noise = torch.Generator().manual_seed(self.seed)

        def forward(g: nn.Module, raw: dict) -> Tensor:
            label = raw["label"].to(self.device)
            z = torch.randn(label.shape[0], g.z_dim, generator=noise).to(self.device) if g.z_dim else None
            return g(one_hot(label, self.num_classes), z)

        batches = cycle_batches(self.train_set, self.batch_size, self.num_batches, self.seed)
        recalibrate_batchnorm(self.G_ema, batches, forward)
        self.fresh = True


class RunOutputs:
    """Samples, checkpoints (and best.pt), evaluations and loss logs of one run (written by
    rank 0 only: the loop calls them there; `is_main` opens the tensorboard writer)."""

    def __init__(self, cfg, info: DatasetInfo, run_dir: Path, val_set, ema: EMAStatistics, *,
                 is_main: bool, evaluator=None, seconds_before: float = 0.0) -> None:
        self.cfg, self.info, self.run_dir, self.ema, self.evaluator = cfg, info, run_dir, ema, evaluator
        self.val_fixed = fixed_examples(val_set, 8)
        self.writer = summary_writer(run_dir / "tb") if is_main else None
        self.seconds_before, self.t0 = seconds_before, time.perf_counter()

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.t0

    def checkpoint_payload(self, state: TrainingState) -> dict[str, Any]:
        return {"config": self.cfg.to_json(), "dataset_info": self.info.to_json(), **state.state_dict(),
                "rng": rng_state(), "seconds": self.seconds()}

    def save(self, state: TrainingState) -> None:
        self.ema.refresh()
        preflight.save_checkpoint_or_explain(self.run_dir, state.step, self.checkpoint_payload(state),
                                             keep=self.cfg.train.keep_checkpoints)

    def sample(self, state: TrainingState) -> None:
        self.ema.refresh()
        grid = sample_grid(state.G_ema, self.val_fixed, self.info, self.ema.device, seed=self.cfg.train.seed)
        save_png(grid, self.run_dir / "samples" / f"step_{state.step:08d}.png")
        save_png(grid, self.run_dir / "samples" / "latest.png")
        if self.writer is not None:
            self.writer.add_image("samples/label|generated|generated|real", grid, state.step, dataformats="HWC")

    def evaluate(self, state: TrainingState, bar) -> None:
        from dpgan.evaluate.training_eval import save_best_checkpoint

        self.ema.refresh()
        dev = self.ema.device
        # the evaluation's data loader draws from the global RNG: keep training's stream as it
        # would be without evaluations (and as a resumed run, restored before them, has it)
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            metrics = self.evaluator(state.G_ema, state.step)
        if self.writer is not None:
            for k, v in metrics.items():
                self.writer.add_scalar(f"eval/{k}", v, state.step)
        bar.write(f"step {state.step}: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items())))
        if self.evaluator.update_best(metrics, state.step):
            save_best_checkpoint(self.run_dir, state.step, self.checkpoint_payload(state))

    def log(self, step: int, values: dict[str, float]) -> None:
        """TensorBoard scalars and one losses.jsonl line. A write that fails (a full disk) is one
        sentence; a partly appended line is cut off again, so the log holds whole lines only."""
        path = self.run_dir / "losses.jsonl"
        try:
            if self.writer is not None:
                for k, v in values.items():  # losses under loss/, diagnostics (train/d_real_ce, ...) as named
                    self.writer.add_scalar(k if k.startswith("train/") else f"loss/{k}", v, step)
            line = (json.dumps({"step": step, **values}) + "\n").encode()
            with open(path, "ab", buffering=0) as f:
                size = os.fstat(f.fileno()).st_size
                try:
                    done = 0
                    while done < len(line):
                        done += f.write(line[done:])
                except OSError:
                    os.ftruncate(f.fileno(), size)
                    raise
        except OSError as exc:
            self.close(quiet=True)
            raise DPGANError(
                f"could not write the training log of step {step} in {self.run_dir} ({exc.strerror or exc}); "
                f"the checkpoints already written are intact: free space and continue with --resume"
            ) from None

    def close(self, quiet: bool = False) -> None:
        """Close the TensorBoard writer; `quiet`: after a failed write, when it may fail again."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except OSError:
                if not quiet:
                    raise


def drop_log_lines_after(path: Path, step: int) -> int:
    """Remove the lines of losses.jsonl logged after `step` (the checkpoint a resume starts from):
    those steps are trained again and logged again, and each step should appear once. Lines that
    are not JSON objects with a step are kept as they are. Returns the number removed."""
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True):
        try:
            logged = json.loads(line).get("step")
        except (ValueError, AttributeError):
            logged = None
        if isinstance(logged, int) and logged > step:
            dropped += 1
        elif line.endswith("\n"):  # a last line cut short by a kill is dropped too
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        write_text_atomic(path, "".join(kept))
    return dropped


class LossAverage:
    """Sums of the loss parts between two log lines (skipped updates left out)."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, parts: dict[str, Tensor]) -> None:
        for k, v in parts.items():
            self.sums[k] = self.sums.get(k, 0.0) + v.detach()
        self.count += 1

    def mean_over(self, world) -> dict[str, float]:
        """The averages over steps and ranks; starts a new average."""
        keys = sorted(self.sums)
        values = world.mean(torch.stack([self.sums[k] for k in keys]) / self.count).tolist()
        self.clear()
        return dict(zip(keys, values))


def fixed_examples(dataset, n: int) -> dict:
    items = [dataset[i] for i in range(min(n, len(dataset)))]
    return {
        "image": torch.stack([it["image"] for it in items]),
        "label": torch.stack([it["label"] for it in items]),
    }


def cycle_batches(dataset, batch_size: int, num_batches: int, seed: int):
    """Deterministic batches for BN recalibration, drawn without touching the global RNG."""
    g = torch.Generator().manual_seed(seed + 7919)
    for b in range(num_batches):
        idx = torch.randint(0, len(dataset), (batch_size,), generator=g).tolist()
        # keyed indices: the augmentations of these items are fixed too (keys far from the stream's)
        keys = [(1 << 40) + b * batch_size + j for j in range(batch_size)]
        yield {"label": torch.stack([dataset[(i, k)]["label"] for i, k in zip(idx, keys)])}


@torch.no_grad()
def sample_grid(G: nn.Module, examples: dict, info: DatasetInfo, dev: torch.device, seed: int, scale: int = 2):
    """label | generated (z1) | generated (z2) | real: one row per example."""
    label_map = examples["label"].to(dev)
    onehot = one_hot(label_map, info.num_classes)
    g = torch.Generator(device=dev).manual_seed(seed)
    columns = [colorize(label_map, info.colors)]
    if getattr(G, "use_3d_noise", True):
        for _ in range(2):
            z = torch.randn(label_map.shape[0], G.z_dim, device=dev, generator=g)
            columns.append(G(onehot, z))
    else:
        columns.append(G(onehot))
    columns.append(examples["image"].to(dev))
    return image_grid(columns, scale=scale)


def summary_writer(path: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is a declared dependency; stay usable without it
        return None
    return SummaryWriter(str(path))
