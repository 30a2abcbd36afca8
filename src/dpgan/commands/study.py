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
    p.add_argument("--grid", help="paper-ablations (the default: tables a, b, c and the baselines d), "
                   "generator-discriminator, patch-loss, feature-loss or baselines")
    p.add_argument("--out", type=Path, default=Path("studies/paper-ablations"), help="study folder")
    p.add_argument("--preset", help="the base configuration of every run (default: synthetic-streets)")
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
    p.add_argument("--from", dest="from_dir", type=Path, metavar="DIR",
                   help="start or continue OUT from a copy written by --export (on this or another machine): "
                   "its settings, its judge and its finished runs; then train what is missing")
    p.add_argument("--export", type=Path, metavar="DIR",
                   help="also copy the settings, the judge and every finished run's record (a few MB, no "
                   "checkpoints) to DIR, with the report: what --from continues from")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def judge_line(out: Path) -> str:
    from dpgan.study.runner import segmenter_path, study_judge

    judge = study_judge(out)
    if judge is None:
        return f"Judge: none yet ({segmenter_path(out)} is trained before the first run)."
    s = judge.val_scores
    return (f"Judge: the study's reference segmenter, weights digest {judge.digest} (on the {s.get('num_images')} "
            f"real {s.get('split')} images: mIoU {100 * s['miou']:.1f}, obj-mIoU "
            f"{100 * (s.get('obj_miou') or float('nan')):.1f}); runs scored by another judge are left out.")


SETTING_OPTIONS = ("grid", "preset", "seeds", "steps", "eval_every", "eval_images", "segmenter_steps")


def run(args: argparse.Namespace) -> int:
    import torch

    from dpgan import __version__
    from dpgan.commands.train import parse_set
    from dpgan.study.report import write_report
    from dpgan.errors import DPGANError
    from dpgan.study.runner import (
        QUICK,
        StudySettings,
        collect,
        export_study,
        import_study,
        open_study,
        plan,
        run_study,
    )

    if args.from_dir is not None:
        given = [f"--{k.replace('_', '-')}" for k in SETTING_OPTIONS if getattr(args, k) is not None]
        given += ["--quick"] * args.quick + ["--set"] * bool(args.set)
        if given:
            raise DPGANError(f"--from {args.from_dir} takes the settings from its study.json; leave out {', '.join(given)}")
        settings = import_study(args.from_dir, args.out)
    elif args.report_only or args.only is not None:
        settings = open_study(args.out, None)
    else:
        chosen = dict(QUICK) if args.quick else {}
        for key in SETTING_OPTIONS:
            if getattr(args, key) is not None:
                chosen[key] = getattr(args, key)
        settings = StudySettings(overrides=parse_set(args.set), **chosen)
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
        judge_line(args.out),
        f"**{len(results)} of {total} runs finished**; {settings.seeds} seed(s) per row, {settings.steps or 'preset'} "
        f"steps, judged on {settings.eval_images} validation label maps by the study's reference segmenter."
        + ("" if len(results) == total else " The study is incomplete (the same command continues it): the "
           "seeds column says how many runs each row's numbers rest on."),
    ]
    print(f"study report: {write_report(args.out, results, settings.grid, header)} ({len(results)}/{total} runs)")
    if args.export is not None:
        count = export_study(args.out, args.export)
        header[0] = f"Continue it: `dpgan study --out OUT --from {args.export}` (settings: {settings.to_dict()})"
        write_report(args.export, results, settings.grid, header)
        print(f"study exported to {args.export}: settings, judge, {count} run record(s) and the report")
    return 0
