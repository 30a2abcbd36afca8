"""`dpgan export`: a trained generator as a saved model (safetensors) or an ONNX graph."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write the EMA generator as safetensors (for DPGAN.from_pretrained) or ONNX",
        description="safetensors: OUT/config.json + OUT/model.safetensors, read by DPGAN.from_pretrained, "
        "dpgan synthesize and dpgan demo. onnx: OUT/model.onnx (inputs label int64 (B,H,W) and z float32 "
        "(B,z_dim); output image (B,3,H,W) in [-1,1]) + OUT/config.json with the class list.",
    )
    p.add_argument("run", type=Path, help="a run folder (latest checkpoint), a .pt file or a saved-model folder")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace existing files in OUT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.inference.export import export
    from dpgan.inference.synthesize import load_generator

    written = export(load_generator(args.run, "cpu"), args.format, args.out, overwrite=args.overwrite)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
