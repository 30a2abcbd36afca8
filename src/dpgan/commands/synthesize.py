"""`dpgan synthesize`: turn label maps into images with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from dpgan.commands import add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synthesize",
        help="generate images from label maps with a trained run",
        description="Writes OUT/<label stem>_seed<S>.png for S = seed .. seed + num_samples - 1. "
        "Label PNGs hold class ids (greyscale or palette) or the dataset's colours (RGB).",
    )
    p.add_argument("--checkpoint", required=True, type=Path, help="a run folder (latest checkpoint) or a .pt file")
    p.add_argument("--labels", required=True, type=Path, help="a label PNG or a folder of them")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--num-samples", type=int, default=1, help="images per label map (different noise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--native-size", action="store_true",
                   help="generate at the label map's own size instead of the training resolution")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.synthesize import synthesize

    written = synthesize(
        args.checkpoint, args.labels, args.out, num_samples=args.num_samples, seed=args.seed,
        device=args.device, overwrite=args.overwrite, batch_size=args.batch_size,
        native_size=args.native_size, progress=not args.no_progress,
    )
    print(f"wrote {len(written)} images to {args.out}")
    return 0
