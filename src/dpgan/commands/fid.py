"""`dpgan fid`: pytorch-fid's command line, with the Inception weights read from a local file."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from dpgan.errors import DataError, DPGANError
from dpgan.names import FID_BLOCK_INDEX_BY_DIMS, FID_WEIGHTS_NAME

if TYPE_CHECKING:
    from dpgan.evaluate.fid import FIDStats
    from dpgan.evaluate.inception import FIDInceptionV3


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fid",
        help="FID between two image folders or .npz statistics (pytorch-fid numbers)",
        description=(
            "Frechet Inception Distance with pytorch-fid 0.3.0 semantics: pool3 features of the "
            "TF Inception (images resized to 299x299 bilinear), float64 statistics, scipy sqrtm. "
            "Each PATH is a folder of images (all of one size) or an .npz file with mu and sigma."
        ),
    )
    p.add_argument("path_a", metavar="PATH_A", help="folder of images or .npz statistics")
    p.add_argument(
        "path_b", metavar="PATH_B", nargs="?", default=None,
        help="folder of images or .npz statistics (may be left out with --save-stats)",
    )  # fmt: skip
    p.add_argument(
        "--inception-weights", metavar="FILE", default=None,
        help=f"local copy of {FID_WEIGHTS_NAME} (needed when a PATH is a folder)",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=50, help="images per Inception batch")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--dims", type=int, default=2048, choices=sorted(FID_BLOCK_INDEX_BY_DIMS),
                   help="feature size (2048 = pool3, the standard FID)")  # fmt: skip
    p.add_argument("--num-workers", type=int, default=0, help="image-loading processes")
    p.add_argument(
        "--save-stats", metavar="OUT.npz", default=None,
        help="write the statistics of PATH_A (mu, sigma and the settings used) to OUT.npz",
    )  # fmt: skip
    p.set_defaults(func=run_fid)


def run_fid(args: argparse.Namespace) -> int:
    from dpgan.devices import resolve_device
    from dpgan.evaluate.fid import FIDStats, fid_from_stats, stats_of_folder
    from dpgan.evaluate.inception import FIDInceptionV3

    if args.path_b is None and args.save_stats is None:
        raise DPGANError("dpgan fid needs PATH_B, unless --save-stats is given.")
    if args.batch_size < 1:
        raise DPGANError(f"--batch-size must be positive, got {args.batch_size}.")
    if args.save_stats is not None and Path(args.save_stats).exists():
        raise DPGANError(f"--save-stats: {args.save_stats} exists already; remove it or pick another name.")
    device = resolve_device(args.device)
    model: FIDInceptionV3 | None = None

    def stats_of(path: str) -> FIDStats:
        nonlocal model
        if path.lower().endswith(".npz"):
            if not Path(path).is_file():
                raise DataError(f"FID statistics file {path!r} does not exist.")
            return FIDStats.load(path)
        if not Path(path).is_dir():
            raise DataError(f"{path!r} is neither an image folder nor an .npz statistics file.")
        if model is None:  # built only when a folder needs it: two .npz files need no weights
            model = FIDInceptionV3.from_file(args.inception_weights, dims=args.dims)
        return stats_of_folder(
            path, model, batch_size=args.batch_size, device=device, num_workers=args.num_workers
        )

    stats_a = stats_of(args.path_a)
    if args.save_stats is not None:
        stats_a.save(args.save_stats)
        print(f"Saved FID statistics of {args.path_a} to {args.save_stats}")
    if args.path_b is not None:
        print(f"FID: {fid_from_stats(stats_a, stats_of(args.path_b))}")
    return 0
