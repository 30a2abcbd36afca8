"""`dpgan check-data`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from dpgan.commands import folder_dataset_if_described
from dpgan.presets import PRESETS, preset
from dpgan.errors import DPGANError
from dpgan.names import DATASETS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check-data",
        help="scan a dataset for missing, broken or inconsistent files before a long run",
        description="Scan every image and label of a dataset and report pairs found, files without "
        "a partner, label ids out of range, size mismatches, unreadable files and the class "
        "frequencies. Exit code 0 when the dataset is usable, 1 when it is not.",
    )
    p.add_argument("--preset", default="synthetic-streets", choices=sorted(PRESETS))
    p.add_argument("--dataset", choices=sorted(DATASETS),
                   help="dataset instead of the preset's (e.g. 'folder' for your own images/ and labels/)")
    p.add_argument("--data-root", help="folder of the dataset")
    p.add_argument("--split", choices=["train", "val", "both"], default="both")
    p.add_argument("--quick", action="store_true", help="pair every file but open only ~32 of them")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.data.check import check_dataset
    from dpgan.data.registry import has_split

    cfg = preset(args.preset).data
    changes: dict[str, Any] = {}
    if args.data_root is not None:
        changes["root"] = str(Path(args.data_root).expanduser())
    dataset = folder_dataset_if_described(args.data_root, args.dataset)
    if dataset is not None:
        changes["dataset"] = dataset
    cfg = replace(cfg, **changes)
    splits = ["train", "val"] if args.split == "both" else [args.split]
    ok = True
    for split in splits:
        if args.split == "both" and split == "val":
            try:
                if not has_split(cfg, "val"):
                    print(f"dataset {cfg.dataset}, split val: none (images/ and labels/ sit directly in "
                          f"{cfg.root}, so every pair belongs to the train split)")
                    continue
            except DPGANError:
                pass  # reported by check_dataset below
        report = check_dataset(cfg, split, full=not args.quick, progress=not args.no_progress)
        print(report.format())
        ok = ok and report.ok
    return 0 if ok else 1
