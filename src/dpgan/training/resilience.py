"""Surviving long runs: pre-emption, bad data at hour 30, divergence.

* `GracefulStop`: SIGTERM/SIGINT only set a flag; the loop finishes its step, every rank agrees
  to stop at the same step, rank 0 writes a checkpoint and the command exits 0. A second Ctrl-C
  aborts at once. DataLoader workers ignore both signals (`ignore_stop_signals`), so a signal
  sent to the whole process group (Ctrl-C, scancel) does not kill them mid-step.
* `StepLoader`: the batches from a step onwards; can rewind (roll-back) and turns an error
  inside the data path (a corrupt file at hour 30) into a `LoaderFailure`, so the run stops at a
  step boundary, writes a checkpoint, then reports the file in one sentence.
* `DivergenceGuard`: a non-finite loss or gradient skips that update and is logged; after
  `max_nonfinite` skipped steps within `nonfinite_window` steps it rolls back to the latest
  checkpoint with the learning rates times `rollback_lr_factor` (at most `max_rollbacks`
  times), or stops with a clear message (`train.nonfinite_policy`).
(Start-up checks and safe writes of the run folder: `dpgan.training.preflight`.)
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dpgan.checkpoint import checkpoint_dir, list_checkpoints, load_checkpoint
from dpgan.config import NONFINITE_POLICIES
from dpgan.training.distributed import World
from dpgan.errors import DataError, DPGANError



# ---- pre-emption ---------------------------------------------------------------------------------

@dataclass
class LoaderFailure:
    """What a rank's data loader raised instead of a batch."""

    message: str
    error: BaseException


class GracefulStop:
    """Context manager: SIGTERM and SIGINT request a stop at the next step boundary."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.reason: str | None = None  # "SIGTERM", "SIGINT", "data error", ...
        self.failure: str | None = None  # the data error every rank stops for
        self._local_failure: LoaderFailure | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: object) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: the user does not want to wait
        self.reason = signal.Signals(signum).name

    def request(self, reason: str) -> None:
        self.reason = reason

    def agreed(self, world: World, raw: object) -> bool:
        """Called with each batch at the top of a step: True on every rank when any rank got a
        stop signal or could not load its batch. Signals win over data errors."""
        failed = isinstance(raw, LoaderFailure)
        if failed:
            self._local_failure = raw  # type: ignore[assignment]
        signalled, any_failed = world.any_of([self.reason is not None, failed])
        if signalled:
            self.reason = self.reason or "a stop request on another rank"
            return True
        if any_failed:
            self.failure = world.first_message(raw.message if failed else None)  # type: ignore[union-attr]
            self.reason = "data error"
            return True
        return False

    def raise_failure(self, step: int) -> None:
        """After the final checkpoint: re-raise the data error that stopped the run, if any."""
        if self.failure is None:
            return
        note = f" (stopped at step {step} with a checkpoint; fix the data and resume with --resume)"
        local = self._local_failure
        if local is not None and not isinstance(local.error, DPGANError):
            raise local.error  # a bug, not bad data: keep its traceback
        raise DataError(self.failure + note)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: the main process decides when to stop, not the workers."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_message(exc: BaseException) -> str:
    """The original one-line message of an error re-raised from a DataLoader worker."""
    text = str(exc).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        name, sep, rest = last.partition(": ")
        return rest if sep and "Error" in name else last
    return text or type(exc).__name__


class StepLoader:
    """Iterates the batches of steps [start, end); `rewind(step)` restarts at an earlier step
    (the prefetched batches of the old steps are dropped with their loader)."""

    def __init__(self, make_loader: Callable[[int], Iterable[Any]], start_step: int, end_step: int) -> None:
        self._make = make_loader
        self.next_step = start_step
        self.end_step = end_step
        self._ready: Iterable[Any] | None = make_loader(start_step)  # sampler errors surface now
        self._rewind: int | None = None

    def rewind(self, step: int) -> None:
        self._rewind = step

    def __iter__(self) -> Iterator[Any]:
        while self.next_step < self.end_step:
            loader = self._ready if self._ready is not None else self._make(self.next_step)
            self._ready = None
            it = iter(loader)
            try:
                while self.next_step < self.end_step:
                    try:
                        raw = next(it)
                    except StopIteration:
                        return
                    except Exception as exc:  # noqa: BLE001 - reported, then the run stops cleanly
                        yield LoaderFailure(_worker_message(exc), exc)
                        return
                    self.next_step += 1
                    yield raw
                    if self._rewind is not None:
                        self.next_step, self._rewind = self._rewind, None
                        break
            finally:
                del it


# ---- divergence --------------------------------------------------------------------------------------

class EventLog:
    """Events a person should know about: run_dir/events.jsonl and one line on stderr (rank 0)."""

    def __init__(self, run_dir: Path, world: World) -> None:
        self.path = Path(run_dir) / "events.jsonl"
        self.world = world

    def __call__(self, event: str, message: str, **fields: Any) -> None:
        if not self.world.is_main:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as f:
            f.write(json.dumps({"event": event, "time": time.time(), **fields}) + "\n")
        from tqdm import tqdm

        tqdm.write(f"dpgan train: {message}", file=sys.stderr)


class DivergenceGuard:
    def __init__(
        self,
        *,
        policy: str,
        max_nonfinite: int,
        window: int,
        lr_factor: float,
        max_rollbacks: int,
        run_dir: Path,
        world: World,
        state: Any,
        optimizers: Sequence[torch.optim.Optimizer],
        loader: StepLoader,
        log: EventLog,
    ) -> None:
        if policy not in NONFINITE_POLICIES:
            raise DPGANError(f"train.nonfinite_policy must be one of {NONFINITE_POLICIES}, not {policy!r}")
        self.policy, self.max_nonfinite, self.window = policy, max_nonfinite, window
        self.lr_factor, self.max_rollbacks = lr_factor, max_rollbacks
        self.run_dir, self.world, self.state = Path(run_dir), world, state
        self.optimizers, self.loader, self.log = list(optimizers), loader, log
        self.skipped: deque[int] = deque()
        self.rollbacks = 0

    def update_ok(self, which: str, finite: Tensor, step: int) -> bool:
        """Whether to apply this update; the one host synchronisation of an update."""
        if bool(finite.item()):
            return True
        if not self.skipped or self.skipped[-1] != step:
            self.skipped.append(step)
        self.log("nonfinite", f"step {step}: non-finite {which} loss or gradient, update skipped",
                 step=step, update=which)
        return False

    def after_step(self, step: int, ok: bool) -> int | None:
        """None to go on, or the step the run was rolled back to. Raises for policy 'stop'."""
        while self.skipped and self.skipped[0] <= step - self.window:
            self.skipped.popleft()
        if ok or self.policy == "skip" or len(self.skipped) < self.max_nonfinite:
            return None
        why = f"{len(self.skipped)} non-finite updates within {self.window} steps (at step {step})"
        if self.policy == "stop":
            raise DPGANError(f"training diverged: {why}; train.nonfinite_policy is 'stop'; lower "
                             f"train.lr_g / train.lr_d or resume with --resume from the last checkpoint")
        if self.rollbacks >= self.max_rollbacks:
            raise DPGANError(f"training diverged again after {self.rollbacks} roll-back(s): {why}; "
                             f"lower train.lr_g / train.lr_d and resume")
        if not list_checkpoints(self.run_dir):
            raise DPGANError(f"training diverged: {why}, and {checkpoint_dir(self.run_dir)} holds no checkpoint "
                             f"to roll back to; lower train.lr_g / train.lr_d or checkpoint more often")
        self.world.barrier()
        ck = load_checkpoint(self.run_dir, map_location=self.world.device)
        old = [[g["lr"] for g in opt.param_groups] for opt in self.optimizers]
        self.state.load_state_dict(ck)  # models, optimisers and step, as the checkpoint has them
        for opt, lrs in zip(self.optimizers, old):
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr * self.lr_factor
        back = int(ck["step"])
        self.rollbacks += 1
        self.skipped.clear()
        self.loader.rewind(back)
        new_lrs = [g["lr"] for opt in self.optimizers for g in opt.param_groups]
        self.log("rollback", f"{why}: rolled back to the checkpoint of step {back} with learning "
                 f"rate(s) x{self.lr_factor} -> {new_lrs}", step=step, to_step=back, lr=new_lrs)
        return back
