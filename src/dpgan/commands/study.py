"""`dpgan study`: the paper's ablations, several seeds, one resumable command."""

from __future__ import annotations

import argparse
import platform
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="train and evaluate the paper's ablation rows with several seeds; tables, plots, summary",
        description="Trains every row of the grid (rows with the same model share runs) for each seed, "
        "judges each final EMA generator with a reference segmenter trained once on the real images, "
        "and writes OUT/results.md (tables like the paper's, mean ± std over seeds, IoU by object size, "
        "a summary of which differences exceed the seed spread) and OUT/plots/*.svg. Rerunning the same "
        "command skips finished runs and resumes interrupted ones.",
    )
    p.add_argument("--grid", default="paper-ablations",
                   help="paper-ablations (tables a, b, c and the baselines d), generator-discriminator, patch-loss, feature-loss or baselines")
    p.add_argument("--out", type=Path, default=Path("studies/paper-ablations"), help="study folder")
    p.add_argument("--preset", default="synthetic-streets", help="the base configuration of every run")
    p.add_argument("--seeds", type=int, help="seeds per row (default 3; --quick: 1)")
    p.add_argument("--steps", type=int, help="training steps per run (default: the preset's; --quick: 120)")
    p.add_argument("--eval-every", type=int, help="evaluate during training every N steps (default 250)")
    p.add_argument("--eval-images", type=int, help="validation label maps per evaluation (default 64)")
    p.add_argument("--segmenter-steps", type=int, help="training steps of the reference segmenter (default 3000)")
    p.add_argument("--quick", action="store_true",
                   help="1 seed, 120 steps, 16 evaluation images, a 300-step segmenter: the whole grid in "
                   "under 20 minutes on 2 CPU cores (for trying it out; too short to rank the rows)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config field of every run, e.g. --set model.g_width=16")
    p.add_argument("--device", default="auto",
                   help="auto (every visible GPU, else CPU), cpu, cuda (every GPU) or a list: cuda:0,cuda:1")
    p.add_argument("--only", help=argparse.SUPPRESS)  # a worker: one run of an existing study
    p.add_argument("--no-report", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--report-only", action="store_true",
                   help="write OUT/results.md from the runs finished so far and exit, training nothing "
                   "(for a study still running or stopped part-way)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from dpgan import __version__
    from dpgan.commands.train import parse_set
    from dpgan.study.report import write_report
    from dpgan.study.runner import QUICK, StudySettings, collect, open_study, plan, run_study

    if args.report_only or args.only is not None:
        settings = open_study(args.out, None)
    else:
        chosen = dict(QUICK) if args.quick else {}
        for key in ("seeds", "steps", "eval_every", "eval_images", "segmenter_steps"):
            if getattr(args, key) is not None:
                chosen[key] = getattr(args, key)
        settings = StudySettings(grid=args.grid, preset=args.preset, overrides=parse_set(args.set), **chosen)
    if args.report_only:
        results = collect(args.out, settings)
    else:
        results = run_study(args.out, settings, device=args.device, progress=not args.no_progress, only=args.only)
        if args.only is not None or args.no_report:
            return 0
    total = len(plan(settings, args.out))
    devices = sorted({str(r.get("device", "?")) for r in results}) or ["none yet"]
    header = [
        f"Command: `dpgan study --grid {settings.grid} --out {args.out}"
        + (" --quick" if args.quick else "") + f"` (settings: {settings.to_dict()})",
        f"Runs trained on: {', '.join(devices)}; torch {torch.__version__}; dpgan {__version__}; "
        f"Python {platform.python_version()}.",
        f"**{len(results)} of {total} runs finished**; {settings.seeds} seed(s) per row, {settings.steps or 'preset'} "
        f"steps, judged on {settings.eval_images} validation label maps by the study's reference segmenter."
        + ("" if len(results) == total else " The study is incomplete (the same command continues it): the "
           "seeds column says how many runs each row's numbers rest on."),
    ]
    print(f"study report: {write_report(args.out, results, settings.grid, header)} ({len(results)}/{total} runs)")
    return 0
