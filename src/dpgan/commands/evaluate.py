"""`dpgan train-segmenter`, `dpgan evaluate` and `dpgan compare`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from dpgan.commands import add_device_arg
from dpgan.config import DataConfig
from dpgan.errors import DPGANError
from dpgan.names import (
    DEEPLAB_WEIGHTS_NAME,
    DRN_WEIGHTS_NAME,
    FID_WEIGHTS_NAME,
    UPERNET_DECODER_NAME,
    UPERNET_ENCODER_NAME,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train_segmenter(subparsers)
    _register_evaluate(subparsers)
    _register_compare(subparsers)


# ---- train-segmenter --------------------------------------------------------------------------
def _register_train_segmenter(subparsers: argparse._SubParsersAction) -> None:
    from dpgan.presets import PRESETS

    p = subparsers.add_parser(
        "train-segmenter",
        help="train the reference segmenter of a dataset without a published one (synthetic, own folders)",
        description=(
            "Trains a compact U-Net on the real training images and scores it on the real validation "
            "images: that mIoU is the ceiling any generator can reach under this judge. `dpgan evaluate` "
            "uses it for mIoU and for RefSeg-FD (a Frechet distance of its features; not FID). Written to "
            "segmenters/<dataset>-<H>x<W>/segmenter.pt (under $DPGAN_SEGMENTERS if set) unless --out is given."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", type=Path, help="take dataset, root and resolution from this run's config.json")
    src.add_argument("--preset", choices=sorted(PRESETS), default=None,
                     help="take them from a preset (default: synthetic-streets)")
    p.add_argument("--dataset", help="override the dataset (e.g. 'folder')")
    p.add_argument("--data-root", help="folder of the dataset")
    p.add_argument("--height", type=int, help="image height (default: the run's or preset's)")
    p.add_argument("--width", type=int, help="image width")
    p.add_argument("--out", type=Path, help="output folder (default: the place `dpgan evaluate` looks)")
    p.add_argument("--steps", type=int, default=3000,
                   help="the default reaches mIoU 0.90 on synthetic-streets 64x128 (about 10 min on one CPU core)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--base-channels", type=int, default=12, help="U-Net width at full resolution")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-workers", type=int, help="data-loading processes (default: the config's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing segmenter.pt")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    p.set_defaults(func=run_train_segmenter)


def _data_config(args: argparse.Namespace) -> DataConfig:
    from dpgan.config import Config
    from dpgan.presets import preset

    if args.run is not None:
        path = args.run / "config.json"
        if not path.is_file():
            raise DPGANError(f"--run {args.run}: no config.json there (is it a dpgan run folder?).")
        data = Config.from_file(path).data
    else:
        data = preset(args.preset or "synthetic-streets").data
    changes = {k: v for k, v in (("dataset", args.dataset), ("root", args.data_root),
                                 ("height", args.height), ("width", args.width)) if v is not None}
    return replace(data, **changes)


def run_train_segmenter(args: argparse.Namespace) -> int:
    from dpgan.evaluate.reference_segmenter import SEGMENTER_FILE, default_segmenter_path, train_reference_segmenter

    data = _data_config(args)
    target = args.out / SEGMENTER_FILE if args.out is not None else default_segmenter_path(data)
    if target.exists() and not args.overwrite:
        raise DPGANError(f"{target} exists already (runs evaluated with it would change meaning); "
                         "pass --overwrite or --out elsewhere.")
    trained = train_reference_segmenter(
        data, target.parent, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
        base_channels=args.base_channels, seed=args.seed, device=args.device,
        num_workers=args.num_workers, progress=not args.no_progress,
    )  # fmt: skip
    s = trained.val_scores
    obj = "" if s.get("obj_miou") is None else f", obj-mIoU {100 * s['obj_miou']:.1f}"
    print(f"reference segmenter: mIoU {100 * s['miou']:.1f}{obj}, pixel accuracy {100 * s['pixel_accuracy']:.1f} "
          f"on {s['num_images']} real {s['split']} images ({trained.seconds / 60:.1f} min)")
    print(f"  written to {trained.path}" + ("" if args.out else " (where `dpgan evaluate` looks for it)"))
    return 0


# ---- evaluate ---------------------------------------------------------------------------------
def _register_evaluate(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="FID/KID, mIoU, obj-mIoU, IoU by object size of a trained run, with an HTML report",
        description=(
            "Generates one image per validation label map with the run's EMA generator (noise of image i "
            "from seed + i) and computes every metric whose network is available: FID/KID with "
            "--inception-weights, mIoU with the dataset's published segmenter (--drn, --upernet-*, "
            "--deeplab) or else the reference segmenter of `dpgan train-segmenter`, and the same "
            "scores for the real images (the ceiling). Writes metrics.json, report.html and report.md."
        ),
    )
    p.add_argument("--run", required=True, type=Path,
                   help="a run folder (latest checkpoint), a checkpoint .pt, a saved-model folder (`dpgan export`) "
                   "or a built-in model's name (synthetic-streets)")
    p.add_argument("--segmenter", type=Path,
                   help="reference segmenter file (default: the one `dpgan train-segmenter` wrote for this dataset)")
    p.add_argument("--no-default-segmenter", action="store_true", help="do not look for a reference segmenter")
    p.add_argument("--inception-weights", type=Path, help=f"local copy of {FID_WEIGHTS_NAME} (enables FID and KID)")
    p.add_argument("--fid-dims", type=int, default=2048, choices=(64, 192, 768, 2048),
                   help="Inception feature size (2048 = pool3, the standard FID)")
    p.add_argument("--drn", type=Path, help=f"Cityscapes: {DRN_WEIGHTS_NAME}")
    p.add_argument("--upernet-encoder", type=Path,
                   help=f"ADE20K: {UPERNET_ENCODER_NAME}, or the model-zoo folder holding both files")
    p.add_argument("--upernet-decoder", type=Path, help=f"ADE20K: {UPERNET_DECODER_NAME}")
    p.add_argument("--deeplab", type=Path, help=f"COCO-Stuff: {DEEPLAB_WEIGHTS_NAME}")
    p.add_argument("--num-images", type=int, help="evaluate only the first N validation label maps (default: all)")
    p.add_argument("--seed", type=int, default=0, help="noise of image i is drawn from seed + i")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--data-root", type=Path, help="the dataset folder, if it moved since training")
    p.add_argument("--out", type=Path, help="report folder (default: RUN/eval, or RUN/eval/<name> for a .pt)")
    p.add_argument("--no-progress", action="store_true")
    add_device_arg(p)
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from dpgan.evaluate.report import md_table, metric_headers, summary_rows
    from dpgan.evaluate.run_eval import default_out_dir, evaluate_run

    if args.num_images is not None and args.num_images < 1:
        raise DPGANError(f"--num-images must be at least 1, got {args.num_images}.")
    out = args.out or default_out_dir(args.run)
    result = evaluate_run(
        args.run, out_dir=out, device=args.device, segmenter=args.segmenter,
        use_default_segmenter=not args.no_default_segmenter, inception_weights=args.inception_weights,
        drn=args.drn, upernet_encoder=args.upernet_encoder, upernet_decoder=args.upernet_decoder,
        deeplab=args.deeplab, num_images=args.num_images, seed=args.seed, batch_size=args.batch_size,
        data_root=args.data_root, inception_dims=args.fid_dims, progress=not args.no_progress,
    )  # fmt: skip
    print(md_table(["", *metric_headers()], summary_rows(result)))
    for note in result.get("notes", []):
        print(f"note: {note}")
    print(f"report: {out / 'report.html'} (also report.md, metrics.json)")
    return 0


# ---- compare ----------------------------------------------------------------------------------
def _register_compare(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "compare",
        help="put the metrics of several evaluated runs (e.g. ablation rows) in one table",
        description="Reads RUN/eval/metrics.json of each run (or a metrics.json given directly) and prints "
        "a Markdown table with one row per run, the best value of each column marked.",
    )
    p.add_argument("runs", nargs="+", type=Path, metavar="RUN", help="run folders or metrics.json files")
    p.add_argument("--out", type=Path, help="also write the table to FILE.md or FILE.html")
    p.add_argument("--json", action="store_true", help="print the collected metrics as JSON instead")
    p.set_defaults(func=run_compare)


def run_compare(args: argparse.Namespace) -> int:
    from dpgan.evaluate.compare import compare_runs, load_metrics

    if args.json:
        print(json.dumps([load_metrics(p) for p in args.runs], indent=2))
        return 0
    print(compare_runs(args.runs, args.out), end="")
    if args.out is not None:
        print(f"written to {args.out}")
    return 0
