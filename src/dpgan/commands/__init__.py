"""Command-line front ends; each module exposes `register(subparsers)`."""

from __future__ import annotations

import argparse
from pathlib import Path

DEVICE_HELP = "where to run: auto (CUDA if available, else CPU), cpu, or cuda[:N]"


def folder_dataset_if_described(root: str | Path | None, dataset: str | None) -> str | None:
    """'folder' when no --dataset was given and ROOT/classes.json describes a custom folder dataset
    (what `dpgan make-synthetic` writes), else `dataset` unchanged."""
    if dataset is None and root is not None and (Path(root).expanduser() / "classes.json").is_file():
        return "folder"
    return dataset


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
