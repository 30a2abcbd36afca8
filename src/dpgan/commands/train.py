"""`dpgan train`: the default trains DP-GAN on the embedded synthetic streets on the CPU."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from dpgan.commands import add_device_arg, folder_dataset_if_described
from dpgan.config import Config, parse_set
from dpgan.presets import ABLATIONS, PRESETS, preset
from dpgan.errors import DPGANError

# CLI flag -> (config section, field)
_FLAGS: dict[str, tuple[str, str]] = {
    "steps": ("train", "steps"),
    "batch_size": ("train", "batch_size"),
    "lr_g": ("train", "lr_g"),
    "lr_d": ("train", "lr_d"),
    "seed": ("train", "seed"),
    "checkpoint_every": ("train", "checkpoint_every"),
    "sample_every": ("train", "sample_every"),
    "log_every": ("train", "log_every"),
    "generator": ("model", "generator"),
    "patch_loss": ("model", "patch_loss"),
    "feature_loss": ("model", "feature_loss"),
    "dataset": ("data", "dataset"),
    "data_root": ("data", "root"),
    "num_workers": ("data", "num_workers"),
    "eval_every": ("train", "eval_every"),
    "eval_metric": ("train", "eval_metric"),
    "eval_images": ("train", "eval_images"),
    "segmenter": ("train", "eval_segmenter"),
    "inception_weights": ("train", "eval_inception"),
    "segmenter_weights": ("train", "eval_segmenter_weights"),
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model (default: DP-GAN on the embedded synthetic streets, CPU-sized)",
        description="Train DP-GAN or one of the paper's ablations. With no arguments: the "
        "synthetic-streets preset, written to runs/synthetic-streets.",
    )
    p.add_argument("--preset", default="synthetic-streets", choices=sorted(PRESETS))
    p.add_argument("--ablation", choices=list(ABLATIONS), help="one row of the paper's ablation tables, or the SPADE baseline (spade)")
    p.add_argument("--config", type=Path, help="a config.json to start from instead of a preset")
    p.add_argument("--run-dir", type=Path, help="where to write the run (default: runs/<name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --run-dir from its latest checkpoint")
    p.add_argument(
        "--auto-resume", action="store_true",
        help="continue the run in --run-dir if it has a checkpoint, else start it (one command for the first "
        "launch, torchrun --max-restarts and requeued cluster jobs; docs/distributed.md)",
    )
    p.add_argument("--dataset", help="override the preset's dataset, e.g. 'folder' for your own image/label pairs")
    p.add_argument("--data-root", help="folder of the dataset (real datasets and custom folders)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr-g", type=float)
    p.add_argument("--lr-d", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--generator", choices=["oa", "dp"])
    p.add_argument("--patch-loss", choices=["none", "enc", "dec", "enc+dec"])
    p.add_argument("--feature-loss", choices=["none", "enc", "dec", "enc+dec"])
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--sample-every", type=int)
    p.add_argument("--log-every", type=int)
    p.add_argument("--num-workers", type=int)
    ev = p.add_argument_group("evaluation during training (best checkpoint: RUN/checkpoints/best.pt)")
    ev.add_argument("--eval-every", type=int, metavar="N", help="evaluate the EMA generator every N steps (0: never)")
    ev.add_argument("--eval-metric", choices=["auto", "fid", "kid", "refseg_fd", "miou", "obj_miou"],
                    help="metric that picks the best checkpoint (auto: fid if --inception-weights, else refseg_fd)")
    ev.add_argument("--eval-images", type=int, metavar="N", help="validation label maps per evaluation (64)")
    ev.add_argument("--segmenter", metavar="FILE", help="reference segmenter from `dpgan train-segmenter`")
    ev.add_argument("--inception-weights", metavar="FILE", help="pytorch-fid Inception weights, for FID")
    ev.add_argument("--segmenter-weights", metavar="PATH",
                    help="the dataset's published segmenter (DRN-D-105 file, UperNet folder, DeepLab file)")
    p.add_argument(
        "--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override any config field, e.g. --set model.g_width=32 (VALUE is JSON or a bare string)",
    )
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads of torch (default: OMP_NUM_THREADS if set, else min(physical cores, "
                   "CPUs this process may use)); on a busy shared machine fewer threads are often faster")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    add_device_arg(p)
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    changes: dict[str, dict[str, Any]] = {}
    if folder_dataset_if_described(getattr(args, "data_root", None), getattr(args, "dataset", None)) == "folder":
        changes["data"] = {"dataset": "folder"}  # --dataset folder, or a folder with its own classes.json
    for flag, (section, field) in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            changes.setdefault(section, {})[field] = value
    for section, fields in parse_set(args.set).items():
        changes.setdefault(section, {}).update(fields)
    return changes


def resolve_config(args: argparse.Namespace) -> tuple[Config, Path]:
    """The config of this launch: saved one when resuming, else preset/config file, plus flags."""
    from dpgan.checkpoint import list_checkpoints, load_latest_checkpoint

    if args.config is not None:
        if not args.config.is_file():
            raise DPGANError(f"--config {args.config}: file not found")
        base = Config.from_file(args.config)
    else:
        base = preset(args.preset, args.ablation)
    run_dir = args.run_dir or Path("runs") / base.name
    saved = run_dir / "config.json"
    has_checkpoints = bool(list_checkpoints(run_dir))
    if getattr(args, "auto_resume", False):
        args.resume = has_checkpoints
    if args.resume:
        if not has_checkpoints:
            raise DPGANError(f"--resume: {run_dir} holds no checkpoint to resume from")
        base = Config.from_file(saved) if saved.is_file() else Config.from_json(
            load_latest_checkpoint(run_dir)["config"])  # config.json lost: the checkpoint holds the config too
    elif has_checkpoints:
        raise DPGANError(
            f"{run_dir} already holds a run; pass --resume to continue it or --run-dir to start a new one"
        )
    cfg = base.override(**overrides_from_args(args))
    # said after training, because config.json keeps it: a later plain --resume aims at this step count
    args.steps_changed = (base.train.steps, cfg.train.steps) if args.resume and cfg.train.steps != base.train.steps \
        else None
    return cfg, run_dir


def tensorboard_command() -> str:
    """The tensorboard that works from here: the one beside this Python (a venv's bin/), which a bare
    `tensorboard` reaches only inside an activated venv."""
    beside = Path(sys.executable).parent / "tensorboard"
    if beside.is_file():
        return str(beside)
    return shutil.which("tensorboard") or "tensorboard"


def run(args: argparse.Namespace) -> int:
    from dpgan.devices import choose_cpu_threads
    from dpgan.training import distributed, resilience
    from dpgan.training.loop import train

    world = distributed.init_from_env(args.device)  # torchrun: one process per device; else one process
    try:
        cfg, run_dir = resolve_config(args)
        per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        threads, why = choose_cpu_threads(getattr(args, "threads", None), processes_per_node=per_node)
        if world.is_main:
            print(f"dpgan train: run folder {run_dir}" + (" (resuming)" if args.resume else "")
                  + f"; device {world.device}; {threads} CPU thread(s) per process ({why}; "
                  "--threads N or OMP_NUM_THREADS=N to change)", flush=True)
        with resilience.GracefulStop() as stop:  # SIGTERM/SIGINT: finish the step, checkpoint, exit 0
            result = train(cfg, run_dir, device=str(world.device), resume=args.resume,
                           progress=not args.no_progress, world=world, stop=stop,
                           announce=lambda line: print(line, flush=True))
    except DPGANError:
        if world.is_main:
            raise
        return 2  # every rank meets the same error; rank 0 prints it once
    finally:
        world.close()
    if not world.is_main:
        return 0
    if result.stopped is not None:
        print(f"stopped by {result.stopped} at step {result.step} of {cfg.train.steps}; checkpoint written to "
              f"{result.run_dir / 'checkpoints'}; continue with: dpgan train --run-dir {result.run_dir} --resume")
        return 0
    minutes = result.seconds / 60
    if getattr(args, "steps_changed", None):
        print(f"train.steps: {args.steps_changed[0]} -> {args.steps_changed[1]} for this run from now on "
              f"(kept in {result.run_dir / 'config.json'})")
    if result.step == result.start_step:
        print(f"nothing to train: the run is already at step {result.step} of train.steps={cfg.train.steps}; "
              f"to train further pass --resume --steps N with N > {result.step}")
    elif result.start_step:
        print(f"trained steps {result.start_step + 1}..{result.step} (resumed at step {result.start_step}; "
              f"{minutes:.1f} min in all); run folder: {result.run_dir}")
    else:
        print(f"trained {result.step} steps in {minutes:.1f} min; run folder: {result.run_dir}")
    print(f"  samples:     {result.run_dir / 'samples' / 'latest.png'}")
    print(f"  checkpoints: {result.run_dir / 'checkpoints'}")
    print(f"  tensorboard: {tensorboard_command()} --logdir {result.run_dir / 'tb'}")
    return 0
