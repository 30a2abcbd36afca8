"""`dpgan convert`: a generator trained with the published DP_GAN or OASIS code as a saved model."""

from __future__ import annotations

import argparse
from pathlib import Path

from dpgan.names import CONVERT_KINDS, PUBLISHED_DATASETS, PUBLISHED_Z_DIM


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 256x512, not {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"height and width must be positive, not {text!r}")
    return h, w


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a generator checkpoint of the published DP_GAN or OASIS code into a saved model",
        description="Reads a generator state dict saved by the published code (use <iter>_EMA.pth, the "
        "generator its test script uses; <iter>_G.pth also converts) without unpickling code, and writes "
        "OUT_DIR/config.json + OUT_DIR/model.safetensors, which DPGAN.from_pretrained, dpgan synthesize and "
        "dpgan demo read. The network's size is read from the tensors; the label space comes from "
        "--dataset (or --num-classes).",
    )
    p.add_argument("out", type=Path, metavar="OUT_DIR", help="output folder")
    p.add_argument("--from", dest="kind", choices=CONVERT_KINDS, required=True,
                   help="which published code trained it: dpgan (sj-li/DP_GAN) or oasis (boschresearch/OASIS)")
    p.add_argument("--checkpoint", type=Path, required=True, metavar="FILE.pth",
                   help="the published generator file, e.g. checkpoints/NAME/models/best_EMA.pth")
    p.add_argument("--dataset", choices=PUBLISHED_DATASETS, default=None,
                   help="the dataset it was trained on: its class names, colours and image size")
    p.add_argument("--num-classes", type=int, default=None,
                   help="number of label channels (semantic_nc) for a dataset not in --dataset")
    p.add_argument("--z-dim", type=int, default=PUBLISHED_Z_DIM,
                   help=f"the published --z_dim it was trained with (default {PUBLISHED_Z_DIM}; 0: --no_3dnoise)")
    p.add_argument("--size", type=_size, default=None, metavar="HxW",
                   help="training resolution (default: the dataset's, 256x256 with --num-classes)")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.inference.convert import convert_checkpoint

    out, report = convert_checkpoint(
        args.checkpoint, args.out, args.kind, dataset=args.dataset, num_classes=args.num_classes,
        z_dim=args.z_dim, image_size=args.size, overwrite=args.overwrite,
    )
    print(report.summary())
    print(f"wrote {out}")
    return 0
