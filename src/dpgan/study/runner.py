"""`dpgan study`: train and evaluate every row of a grid with several seeds, resumably.

Layout of a study folder OUT:

    OUT/study.json                 the settings (a later call must match them, or it refuses)
    OUT/segmenter/segmenter.pt     the reference segmenter every run is judged by (trained once)
    OUT/runs/<row>-s<seed>/        an ordinary training run (checkpoints, eval_history.jsonl, ...)
    OUT/runs/<row>-s<seed>/study_result.json   written last: its presence means "done"
    OUT/results.md, OUT/plots/     the tables, plots and summary (dpgan.study.report)

A study's numbers rest on its settings, its judge and one small record per finished run; the
checkpoints and logs are hundreds of MB more. `export_study` copies just those (a few MB) to a
folder that can be kept in a repository, and `import_study` starts or continues a study from
such a copy on another machine, so a grid too long for one machine's session is finished over
several. Every record names its judge (`weights_digest` of the segmenter's weights): scores
only compare under one judge, and a segmenter retrained on other hardware is another judge.

A finished run is skipped; an interrupted one resumes from its latest checkpoint (training is
bit-exact across resume on CPU). Several devices: one worker process per device, each taking
the next unfinished run (`dpgan study --out OUT --only NAME --device cuda:K`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from dpgan.config import Config
from dpgan.presets import preset
from dpgan.errors import DPGANError
from dpgan.files import write_text_atomic
from dpgan.study.grid import distinct_models, tables_of

STUDY_FILE = "study.json"
RESULT_FILE = "study_result.json"
SEGMENTER_DIR = "segmenter"


@dataclass(frozen=True)
class StudySettings:
    grid: str = "paper-ablations"
    preset: str = "synthetic-streets"
    seeds: int = 3
    steps: int | None = None  # None: the preset's
    eval_every: int = 250
    eval_images: int = 64
    segmenter_steps: int = 3000
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set SECTION.KEY=VALUE

    def __post_init__(self) -> None:
        tables_of(self.grid)  # a clear error for an unknown grid
        if self.seeds < 1 or self.eval_images < 1 or self.segmenter_steps < 1 or self.eval_every < 0:
            raise DPGANError("--seeds, --eval-images and --segmenter-steps must be at least 1, --eval-every at least 0")
        if self.steps is not None and self.steps < 1:
            raise DPGANError("--steps must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudySettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# --quick: one seed and short runs, so the whole paper grid fits in 20 minutes on 2 CPU cores
QUICK = {"seeds": 1, "steps": 120, "eval_every": 40, "eval_images": 16, "segmenter_steps": 300}


@dataclass(frozen=True)
class RunSpec:
    name: str  # "<ablation>-s<seed>"
    ablation: str
    seed: int
    run_dir: Path

    @property
    def result_path(self) -> Path:
        return self.run_dir / RESULT_FILE


def plan(settings: StudySettings, out: Path) -> list[RunSpec]:
    """One run per distinct model and seed, seeds outermost: with too little time, every row
    has seed 0 before any row has seed 1."""
    models = list(dict.fromkeys(distinct_models(tables_of(settings.grid)).values()))  # first-row order
    return [RunSpec(f"{a}-s{s}", a, s, out / "runs" / f"{a}-s{s}") for s in range(settings.seeds) for a in models]


def base_config(settings: StudySettings, ablation: str | None = None) -> Config:
    cfg = preset(settings.preset, ablation)
    return cfg.override(**settings.overrides) if settings.overrides else cfg


def run_config(settings: StudySettings, spec: RunSpec, segmenter: Path) -> Config:
    cfg = base_config(settings, spec.ablation)
    steps = settings.steps or cfg.train.steps
    every = settings.eval_every or steps
    return cfg.override(train={
        "steps": steps, "seed": spec.seed, "eval_every": every, "eval_images": settings.eval_images,
        "eval_segmenter": str(segmenter), "eval_metric": "refseg_fd",
        "checkpoint_every": min(cfg.train.checkpoint_every, every), "sample_every": min(cfg.train.sample_every, steps),
    })


# ---- the study folder ----------------------------------------------------------------------

def open_study(out: Path, settings: StudySettings | None) -> StudySettings:
    """Create OUT/study.json, or check that the existing one matches; None: read it."""
    path = out / STUDY_FILE
    if path.is_file():
        try:
            saved = StudySettings.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise DPGANError(f"{path}: not a readable study file ({exc})") from None
        if settings is not None and saved != settings:
            diff = [k for k, v in settings.to_dict().items() if saved.to_dict().get(k) != v]
            hint = " (it was started with --quick)" if all(getattr(saved, k) == v for k, v in QUICK.items()) else ""
            raise DPGANError(f"{out} holds a study made with other settings{hint} (differs in: {', '.join(diff)}); "
                             "use the same settings to continue it, or another --out")
        return saved
    if settings is None:
        raise DPGANError(f"{path}: not found; start the study with `dpgan study --out {out}`")
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(settings.to_dict(), indent=2, sort_keys=True) + "\n", fsync=False)
    return settings


def segmenter_path(out: Path) -> Path:
    from dpgan.evaluate.reference_segmenter import SEGMENTER_FILE

    return out / SEGMENTER_DIR / SEGMENTER_FILE


def ensure_segmenter(out: Path, settings: StudySettings, device: str, progress: bool) -> Path:
    """The study's judge: trained on the real training images once, reused by every run."""
    from dpgan.evaluate.reference_segmenter import train_reference_segmenter

    path = segmenter_path(out)
    if not path.is_file():
        data = base_config(settings).data
        trained = train_reference_segmenter(data, path.parent, steps=settings.segmenter_steps, device=device,
                                            progress=progress)
        s = trained.val_scores
        print(f"study: reference segmenter trained ({trained.seconds / 60:.1f} min): real-image mIoU "
              f"{100 * s['miou']:.1f}, obj-mIoU {100 * (s.get('obj_miou') or float('nan')):.1f}")
    return path


def run_one(out: Path, settings: StudySettings, spec: RunSpec, device: str, progress: bool) -> dict[str, Any]:
    """Train (or resume) one run, evaluate its final EMA generator, write its result file."""
    from dpgan.training import resilience
    from dpgan.checkpoint import list_checkpoints
    from dpgan.evaluate.run_eval import evaluate_run
    from dpgan.evaluate.training_eval import read_history
    from dpgan.training.loop import train

    if spec.result_path.is_file():
        return json.loads(spec.result_path.read_text())
    segmenter = segmenter_path(out)
    cfg = run_config(settings, spec, segmenter)
    resume = bool(list_checkpoints(spec.run_dir))
    if not resume:  # a run killed before its first checkpoint starts over: drop what it logged
        for name in ("eval_history.jsonl", "best.json", "losses.jsonl"):
            (spec.run_dir / name).unlink(missing_ok=True)
    with resilience.GracefulStop() as stop:
        result = train(cfg, spec.run_dir, device=device, resume=resume, progress=progress, stop=stop)
    if result.stopped is not None:
        raise KeyboardInterrupt(f"{spec.name} stopped by {result.stopped} at step {result.step}")
    final = evaluate_run(spec.run_dir, segmenter=segmenter, use_default_segmenter=False,
                         num_images=settings.eval_images, device=device, progress=progress)
    history: dict[int, dict[str, Any]] = {}
    for entry in read_history(spec.run_dir):  # a resumed run may have evaluated a step twice: keep the last
        history[int(entry["step"])] = entry
    record = {
        "format": "dpgan-study-run", "name": spec.name, "ablation": spec.ablation, "seed": spec.seed,
        "step": result.step, "train_seconds": result.seconds, "metrics": final["metrics"],
        "real": final.get("real"), "iou_by_size": final.get("iou_by_size"), "per_class_iou": final.get("per_class_iou"),
        "history": [history[k] for k in sorted(history)], "device": device,
        "judge": (final["networks"].get("reference_segmenter") or {}).get("digest"),
    }  # fmt: skip
    _write_record(spec.result_path, record)
    return record


# ---- scheduling --------------------------------------------------------------------------------

def resolve_devices(device: str) -> list[str]:
    """'auto': every visible GPU, else the CPU; or a comma-separated list (cuda:0,cuda:1)."""
    if device == "auto":
        n = torch.cuda.device_count()
        return [f"cuda:{i}" for i in range(n)] if n else ["cpu"]
    if device == "cuda":
        n = torch.cuda.device_count()
        if not n:
            raise DPGANError("--device cuda: no CUDA device is visible")
        return [f"cuda:{i}" for i in range(n)]
    return [d.strip() for d in device.split(",") if d.strip()]


def run_study(out: Path, settings: StudySettings, *, device: str = "auto", progress: bool = True,
              only: str | None = None) -> list[dict[str, Any]]:
    """Run what is missing (or just `only`) and return the results of every finished run."""
    devices = resolve_devices(device)  # before the study folder is made: a bad --device leaves nothing
    settings = open_study(out, settings)
    specs = plan(settings, out)
    if only is not None:
        chosen = [s for s in specs if s.name == only]
        if not chosen:
            raise DPGANError(f"--only {only!r} is not a run of this study; its runs: {', '.join(s.name for s in specs)}")
        if not segmenter_path(out).is_file():  # the coordinator trains it before it starts workers
            raise DPGANError(f"{segmenter_path(out)}: not found; `dpgan study --out {out}` trains it before any run, "
                             "or put the segmenter.pt and segmenter.json written by `dpgan train-segmenter` there")
        return [run_one(out, settings, chosen[0], devices[0], progress)]
    ensure_segmenter(out, settings, devices[0], progress)
    todo = [s for s in specs if not s.result_path.is_file()]
    done = len(specs) - len(todo)
    print(f"study {out}: {len(specs)} runs ({done} done, {len(todo)} to go) on {', '.join(devices)}")
    if len(devices) == 1:
        for i, spec in enumerate(todo):
            print(f"study: run {done + i + 1}/{len(specs)}: {spec.name}")
            run_one(out, settings, spec, devices[0], progress)
    else:
        _run_parallel(out, todo, devices)
    return collect(out, settings)


def _run_parallel(out: Path, todo: list[RunSpec], devices: list[str]) -> None:
    """One worker thread per device, each running `dpgan study --only NAME` as a subprocess."""
    queue = list(todo)
    lock = threading.Lock()
    failures: list[str] = []

    def worker(dev: str) -> None:
        while True:
            with lock:
                if not queue:
                    return
                spec = queue.pop(0)
            print(f"study: {spec.name} on {dev}")
            cmd = [sys.executable, "-m", "dpgan", "study", "--out", str(out), "--only", spec.name,
                   "--device", dev, "--no-progress", "--no-report"]
            log = spec.run_dir.parent / f"{spec.name}.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a") as f:
                code = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT)
            if code != 0:
                with lock:
                    failures.append(f"{spec.name} (exit {code}, log {log})")

    threads = [threading.Thread(target=worker, args=(d,), daemon=True) for d in devices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise DPGANError(f"{len(failures)} run(s) failed: {'; '.join(failures)}; rerun the same command to retry them")


def study_judge(out: Path) -> Any:
    """OUT's reference segmenter (a LoadedReferenceSegmenter), None before it is trained."""
    from dpgan.evaluate.reference_segmenter import ReferenceSegmenter

    path = segmenter_path(out)
    return ReferenceSegmenter.from_file(path) if path.is_file() else None


def _write_record(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(record, indent=2) + "\n", fsync=False)


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DPGANError(f"{path}: not a readable study run record ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != "dpgan-study-run":
        raise DPGANError(f"{path}: not a study run record (written by `dpgan study`)")
    return record


def collect(out: Path, settings: StudySettings) -> list[dict[str, Any]]:
    """The records of OUT's finished runs. One scored by another judge than OUT's (its record
    names another segmenter digest) is left out, with a line that says so: it does not compare."""
    judge = study_judge(out)
    results = []
    for spec in plan(settings, out):
        if not spec.result_path.is_file():
            continue
        record = _read_record(spec.result_path)
        if judge is not None and record.get("judge") not in (None, judge.digest):
            print(f"study: {spec.name} left out of the report: scored by segmenter {record['judge']}, "
                  f"this study's judge is {judge.digest}", file=sys.stderr)
            continue
        results.append(record)
    return results


# ---- moving a study between machines: its settings, judge and records -----------------------

SEGMENTER_FILES = ("segmenter.pt", "segmenter.json")


def _copy_judge(src: Path, dest: Path) -> None:
    (dest / SEGMENTER_DIR).mkdir(parents=True, exist_ok=True)
    for name in SEGMENTER_FILES:
        if (src / SEGMENTER_DIR / name).is_file():
            shutil.copyfile(src / SEGMENTER_DIR / name, dest / SEGMENTER_DIR / name)


def export_study(out: Path, dest: Path) -> int:
    """Copy OUT's settings, its judge and the records of its finished runs to DEST (checkpoints
    and logs stay behind). DEST may hold an earlier export of the same study: it must have the
    same settings and judge, and its records are replaced. Returns the number of records."""
    settings = open_study(out, None)
    judge = study_judge(out)
    if judge is None:
        raise DPGANError(f"{segmenter_path(out)}: not found; a study without its judge has nothing to export")
    if dest.resolve() == out.resolve():
        raise DPGANError(f"--export {dest}: that is the study folder itself; give another folder")
    if dest.exists() and not dest.is_dir():
        raise DPGANError(f"--export {dest}: a file is in the way; give a folder")
    open_study(dest, settings)  # refuses a folder of another study
    theirs = study_judge(dest)
    if theirs is not None and theirs.digest != judge.digest:
        raise DPGANError(f"{dest} holds a study judged by segmenter {theirs.digest}, not {out}'s {judge.digest}; "
                         "export to another folder")
    _copy_judge(out, dest)
    records = collect(out, settings)
    for record in records:
        _write_record(dest / "runs" / record["name"] / RESULT_FILE, record)
    return len(records)


def import_study(src: Path, out: Path) -> StudySettings:
    """Start or continue OUT from a copy made by `export_study`: OUT takes SRC's settings (an
    existing OUT must have the same), SRC's judge (an existing OUT must have the same weights),
    and the records of SRC's finished runs that OUT does not have, each checked to name that judge."""
    if not (src / STUDY_FILE).is_file():
        raise DPGANError(f"--from {src}: no {STUDY_FILE} there (a folder written by `dpgan study --export`)")
    settings = open_study(src, None)
    judge = study_judge(src)
    if judge is None:
        raise DPGANError(f"--from {src}: {segmenter_path(src)} not found; the runs' scores need the judge that made them")
    settings = open_study(out, settings)
    ours = study_judge(out)
    if ours is None:
        _copy_judge(src, out)
    elif ours.digest != judge.digest:
        raise DPGANError(f"{out} is judged by segmenter {ours.digest}, {src} by {judge.digest}: their scores do not "
                         "compare; continue in a new --out")
    copied = skipped = 0
    for spec in plan(settings, out):
        record_path = src / "runs" / spec.name / RESULT_FILE
        if spec.result_path.is_file() or not record_path.is_file():
            continue
        record = _read_record(record_path)
        if record.get("judge") != judge.digest:
            print(f"study: {spec.name} not taken from {src}: its record names judge {record.get('judge')}, "
                  f"not {judge.digest}", file=sys.stderr)
            skipped += 1
            continue
        _write_record(spec.result_path, record)
        copied += 1
    print(f"study {out}: {copied} finished run(s) taken from {src}" + (f", {skipped} left out" if skipped else "")
          + f"; judge {judge.digest}")
    return settings
