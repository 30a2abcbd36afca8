"""One resumable checkpoint format, written atomically and read with `weights_only=True`.

A checkpoint is a dict of tensors and plain Python values: the three networks, both
optimisers, the step, the RNG states and the run's config as a JSON string. Nothing is
pickled as an object, so loading cannot run code.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dpgan.errors import CheckpointError
from dpgan.files import torch_save_atomic

FORMAT = "dpgan-checkpoint"
VERSION = 1
_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step_{step:08d}.pt"


def next_save_step(every: int, after: int, steps: int) -> int:
    """The first step after `after` at which a run saving every `every` steps writes (the loop also
    writes at its last step, `steps`)."""
    if every < 1:
        return steps
    return min((after // every + 1) * every, steps)


def _no_checkpoint_yet(run_dir: Path) -> str:
    """Why a run folder holds no checkpoint, and when it will: read from its config.json and losses.jsonl."""
    import json

    expected = f"expected {checkpoint_dir(run_dir)}/step_*.pt"
    try:
        train = json.loads((run_dir / "config.json").read_text())["train"]
        every, steps = int(train["checkpoint_every"]), int(train["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"{run_dir}: no checkpoint found ({expected}; is it a dpgan run folder?)"
    reached = 0
    try:
        last = (run_dir / "losses.jsonl").read_text().strip().splitlines()[-1]
        reached = int(json.loads(last)["step"])
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        pass
    first = next_save_step(every, reached, steps)
    where = f"step {reached} of {steps} logged so far" if reached else f"no step of {steps} logged yet"
    return (f"{run_dir}: no checkpoint yet; this run writes its first at step {first} (train.checkpoint_every "
            f"{every}; {where}). Try again once {checkpoint_path(run_dir, first).name} exists")


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Completed checkpoints of a run, oldest first (temporary files are ignored)."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [p for p in d.iterdir() if _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))  # type: ignore[union-attr]


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]),
        "python_pos": random.getstate()[2],
        "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)),
        "numpy_pos": int(np_state[2]),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        # only this process's device: asking for all would open a context on every GPU
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    keys = state["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if isinstance(cuda, (list, tuple)):  # older checkpoints held every device's state
            cuda = cuda[torch.cuda.current_device()]
        torch.cuda.set_rng_state(cuda)


def save_checkpoint(run_dir: str | Path, step: int, payload: dict[str, Any], keep: int = 2) -> Path:
    path = checkpoint_path(run_dir, step)
    torch_save_atomic({"format": FORMAT, "version": VERSION, "step": step, **payload}, path)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a dpgan checkpoint file, or the latest checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir() and not checkpoint_dir(path).is_dir() and any(_NAME.match(p.name) for p in path.iterdir()):
        path = path.parent  # RUN/checkpoints itself: the run's latest
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(_no_checkpoint_yet(path))
        path = found[-1]
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: not a loadable dpgan checkpoint (the file is empty)")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that wants to run code
        raise CheckpointError(f"{path}: not a loadable dpgan checkpoint ({_load_failure(exc)})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a dpgan checkpoint (no '{FORMAT}' marker)")
    if obj.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {obj.get('version')} is not supported (expected {VERSION})")
    obj["path"] = str(path)
    return obj


def _load_failure(exc: Exception) -> str:
    """Why torch.load refused a file, in our words: torch's weights-only refusal advises
    retrying with weights_only=False, which would run whatever code the file holds."""
    text = str(exc).strip()
    if "weights only load failed" in text.lower() or "weights_only" in text:
        return ("it holds Python objects other than tensors and plain values, which dpgan never unpickles "
                "because unpickling them could run code")
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]


def load_latest_checkpoint(run_dir: str | Path, map_location: str | torch.device = "cpu",
                           report=None) -> dict[str, Any]:
    """The newest checkpoint of a run that loads. A newer one that does not (empty, truncated,
    corrupt) is skipped, and `report` (e.g. print) is told which file and why, one line each."""
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir}: no checkpoint found (expected {checkpoint_dir(run_dir)}/step_*.pt)")
    reasons = []
    for path in reversed(found):
        try:
            return load_checkpoint(path, map_location=map_location)
        except CheckpointError as exc:
            reasons.append(str(exc))
            if report is not None:
                report(f"skipped {exc}; trying an older checkpoint")
    raise CheckpointError(f"{run_dir}: none of its {len(found)} checkpoints loads (latest: {reasons[0]})")


def check_checkpoints(run_dir: str | Path) -> list[tuple[Path, int | None, str | None]]:
    """Every checkpoint of a run (step_*.pt oldest first, then best.pt if present), loaded as
    resume loads them: (path, its step, None) or (path, None, why it does not load)."""
    paths = list_checkpoints(run_dir)
    best = checkpoint_dir(run_dir) / "best.pt"
    if best.is_file():
        paths.append(best)
    results = []
    for path in paths:
        try:
            ck = load_checkpoint(path)
            results.append((path, int(ck["step"]), None))
        except CheckpointError as exc:
            results.append((path, None, str(exc).removeprefix(f"{path}: ")))
        except (KeyError, TypeError, ValueError):
            results.append((path, None, "the checkpoint has no valid step"))
    return results


def nonfinite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict holding NaN or infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def refuse_nonfinite(state: dict[str, Any], where: str) -> None:
    """Weights with NaN or infinity generate black or blank images: refuse them with a sentence."""
    bad = nonfinite_tensors(state)
    if bad:
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise CheckpointError(f"{where}: the generator's weights hold NaN or infinite values ({bad[0]}{more}); "
                              f"the run diverged before this was saved: use an earlier checkpoint")
