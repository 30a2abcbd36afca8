"""`dpgan demo`: paint a label map in the browser and generate images with a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from dpgan.commands import add_device_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="serve a local web page to paint label maps and generate images",
        description="Serves a page where you paint a label map with the dataset's class brushes (or upload "
        "a label PNG), pick a seed, generate, resample a painted region with new noise and download "
        "the image. Listens on 127.0.0.1 only unless --host says otherwise.",
    )
    p.add_argument("--checkpoint", "--model", dest="checkpoint", type=Path, default=Path("synthetic-streets"),
                   help="a run folder (latest checkpoint), a .pt file, a saved-model folder (dpgan export) "
                   "or a built-in model (default: synthetic-streets, which ships with dpgan)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on; 0 picks a free one (default 8000)")
    add_device_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dpgan.inference.demo.server import serve
    from dpgan.errors import DPGANError

    if not 0 <= args.port <= 65535:
        raise DPGANError(f"--port {args.port} is not a port number (0..65535)")
    return serve(args.checkpoint, host=args.host, port=args.port, device=args.device)
