"""`dpgan check-run`: load every checkpoint of a run as resume would, one line each."""

from __future__ import annotations

import argparse
from pathlib import Path

from dpgan.errors import DPGANError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-run",
        help="load every checkpoint of a run folder and say which ones a resume could use",
        description="Load every checkpoint in RUN/checkpoints (step_*.pt and best.pt) the way --resume "
        "does (weights only, never executing code) and print one line each: OK with its step, or why it "
        "does not load. Exit code 0 when the latest step_*.pt loads, 1 when it does not or there is none "
        "(a resume would then fall back to an older checkpoint, or start nothing).",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN", help="a run folder written by dpgan train")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.checkpoint import check_checkpoints, checkpoint_dir, list_checkpoints  # torch: not for --help

    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise DPGANError(f"{run_dir}: not a folder")
    results = check_checkpoints(run_dir)
    if not results:
        print(f"{run_dir}: no checkpoints in {checkpoint_dir(run_dir)}")
        return 1
    for path, step, problem in results:
        print(f"OK   {path.name}: step {step}" if problem is None else f"BAD  {path.name}: {problem}")
    latest = list_checkpoints(run_dir)
    latest_ok = bool(latest) and any(p == latest[-1] and problem is None for p, _, problem in results)
    return 0 if latest_ok else 1
