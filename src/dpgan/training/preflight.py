"""Start-up checks and safe writes of the run folder.

Before any training, on every rank: the run folder can be created and written, all nodes see
the same folder (rank 0 writes checkpoints, every rank reads them), it has room for two
checkpoints, and half-written temporaries of a killed run are removed. A resumed checkpoint
must have the dataset's classes. A failure on any rank becomes one message on all ranks.
Text files are replaced atomically, and a checkpoint write that fails (a full disk) is one
sentence saying that the earlier checkpoints are intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from dpgan.checkpoint import checkpoint_dir, list_checkpoints, save_checkpoint
from dpgan.data.info import DatasetInfo
from dpgan.training.distributed import World
from dpgan.errors import CheckpointError, DPGANError


def preflight(run_dir: Path, world: World, checkpoint_bytes: int) -> int:
    """Check the run folder on every rank before training; return the number of stale temporary
    files removed. Raises one DPGANError, the same on every rank, if any rank fails."""
    run_dir = Path(run_dir)
    message, removed = None, 0
    try:
        _check_writable(run_dir)
        if world.is_main:
            removed = remove_stale_temporaries(run_dir)
            _check_free_space(run_dir, checkpoint_bytes)
    except DPGANError as exc:
        message = f"rank {world.rank}: {exc}" if world.is_distributed else str(exc)
    message = world.first_message(message)
    if message is None and world.is_distributed:
        message = world.first_message(_check_shared(run_dir, world))
    if message is not None:
        raise DPGANError(message)
    return removed


def _check_writable(run_dir: Path) -> None:
    try:
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DPGANError(f"cannot create the run folder {run_dir} ({exc.strerror or exc})") from None
    try:
        fd, probe = tempfile.mkstemp(prefix=".dpgan-write-test.", dir=run_dir / "checkpoints")
        with os.fdopen(fd, "wb") as f:
            f.write(b"ok")
            f.flush()
            os.fsync(f.fileno())
        os.unlink(probe)
    except OSError as exc:
        raise DPGANError(f"the run folder {run_dir} is not writable ({exc.strerror or exc})") from None


def _check_free_space(run_dir: Path, checkpoint_bytes: int) -> None:
    free = shutil.disk_usage(run_dir).free
    if free < 2 * checkpoint_bytes:
        raise DPGANError(
            f"the run folder {run_dir} has {free / 2**20:.0f} MiB free, less than room for two checkpoints "
            f"({2 * checkpoint_bytes / 2**20:.0f} MiB); free some space or choose another --run-dir"
        )


def _check_shared(run_dir: Path, world: World) -> str | None:
    """All ranks must see rank 0's files: checkpoints are written by rank 0 and read by all."""
    probe = run_dir / ".dpgan-shared-check"
    token = f"{os.getpid()}-{time.time_ns()}" if world.is_main else None
    if token is not None:
        probe.write_text(token)
    token = world.first_message(token)
    problem = None
    if not world.is_main:
        seen = probe.read_text() if probe.is_file() else None
        if seen != token:
            problem = (f"rank {world.rank} does not see the files rank 0 writes in {run_dir}; --run-dir "
                       f"must be on a filesystem shared by all nodes")
    problem = world.first_message(problem)
    if world.is_main:
        probe.unlink(missing_ok=True)
    return problem


def remove_stale_temporaries(run_dir: Path) -> int:
    """Delete half-written checkpoints (and other atomic-write temporaries) left by a killed run."""
    count = 0
    for folder in (Path(run_dir), checkpoint_dir(run_dir)):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                count += 1
    return count


def estimate_checkpoint_bytes(run_dir: Path, modules: Sequence[nn.Module], adam_modules: Sequence[nn.Module]) -> int:
    """Size of the last checkpoint, or an estimate: every tensor of `modules` plus Adam's two
    moments for the trainable parameters of `adam_modules`."""
    found = list_checkpoints(run_dir)
    if found:
        return found[-1].stat().st_size
    total = sum(t.numel() * t.element_size() for m in modules for t in m.state_dict().values())
    total += sum(2 * p.numel() * p.element_size() for m in adam_modules for p in m.parameters() if p.requires_grad)
    return total + (1 << 20)


def check_resume_classes(ck: dict[str, Any], info: DatasetInfo) -> None:
    """A checkpoint's label channels must be the dataset's, or every id would mean another class."""
    saved = DatasetInfo.from_dict(json.loads(ck["dataset_info"]))
    if saved.class_names != info.class_names:
        what = (f"{saved.num_classes} classes" if saved.num_classes != info.num_classes
                else "the same number of classes with different names")
        raise CheckpointError(
            f"{ck['path']}: was trained on dataset {saved.name!r} with {what}, but dataset {info.name!r} has "
            f"{info.num_classes} classes; resume with the same classes or start a new --run-dir"
        )


def save_checkpoint_or_explain(run_dir: Path, step: int, payload: dict[str, Any], keep: int) -> Path:
    """save_checkpoint, with a full disk (or any OS error) as one sentence instead of a traceback."""
    try:
        return save_checkpoint(run_dir, step, payload, keep=keep)
    except OSError as exc:
        raise CheckpointError(
            f"could not write the checkpoint of step {step} to {checkpoint_dir(run_dir)} "
            f"({exc.strerror or exc}); earlier checkpoints are intact: free space and resume with --resume"
        ) from None
