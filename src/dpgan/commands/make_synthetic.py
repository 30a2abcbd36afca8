"""`dpgan make-synthetic`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "make-synthetic",
        help="write the embedded synthetic street scenes to disk as image/label PNG pairs",
        description="Writes OUT/classes.json and OUT/{train,val}/{images,labels}/*.png: a custom "
        "folder dataset (train on it with --dataset folder --data-root OUT).",
    )
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--num-train", type=int, default=2000)
    p.add_argument("--num-val", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dpgan.data.synthetic import write_synthetic

    out = write_synthetic(args.out, height=args.height, width=args.width, num_train=args.num_train,
                          num_val=args.num_val, seed=args.seed, progress=not args.no_progress)
    print(f"wrote {args.num_train} train and {args.num_val} val pairs to {out}")
    return 0
