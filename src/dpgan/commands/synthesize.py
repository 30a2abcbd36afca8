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
    p.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, type=Path,
                   help="a run folder (latest checkpoint), a .pt file, a saved-model folder (dpgan export) "
                   "or a built-in model: synthetic-streets")
    p.add_argument("--labels", required=True, type=Path, help="a label PNG or a folder of them")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--num-samples", type=int, default=1, help="images per label map (different noise)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first sample")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--native-size", action="store_true",
                   help="generate at the label map's own size instead of the training resolution")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g = p.add_argument_group(
        "multimodal control",
        "redraw one class or one region with other noise, keeping the rest of the image of --seed "
        "(--num-samples new seeds from --new-seed), or walk from --seed to another seed",
    )
    g.add_argument("--resample-class", metavar="CLASS", help="class name or id whose region gets new noise")
    g.add_argument("--resample-mask", metavar="PNG", type=Path, help="a mask PNG: non-zero pixels get new noise")
    g.add_argument("--new-seed", type=int, help="seed of the new noise (default: --seed + 1)")
    g.add_argument("--interpolate-to", metavar="SEED", type=int, help="write --steps images from --seed to SEED")
    g.add_argument("--steps", type=int, default=5, help="images along an interpolation, ends included (default 5)")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.inference.synthesize import synthesize

    if args.resample_class is not None or args.resample_mask is not None or args.interpolate_to is not None:
        from dpgan.inference.variations import vary

        written = vary(
            args.checkpoint, args.labels, args.out, seed=args.seed, new_seed=args.new_seed,
            num_samples=args.num_samples, resample_class=args.resample_class, resample_mask=args.resample_mask,
            interpolate_to=args.interpolate_to, steps=args.steps, device=args.device,
            overwrite=args.overwrite, native_size=args.native_size,
        )
        print(f"wrote {len(written)} images to {args.out}")
        return 0

    written = synthesize(
        args.checkpoint, args.labels, args.out, num_samples=args.num_samples, seed=args.seed,
        device=args.device, overwrite=args.overwrite, batch_size=args.batch_size,
        native_size=args.native_size, progress=not args.no_progress,
    )
    print(f"wrote {len(written)} images to {args.out}")
    return 0
