"""Fault tolerance: signals, divergence, start-up checks, safe loading; unit level first, then
real training runs (in-process with injected NaNs, and `python -m dpgan train` subprocesses
stopped with SIGTERM/SIGINT)."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from dpgan.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from dpgan.config import Config
from dpgan.data.info import DatasetInfo
from dpgan.training.distributed import World
from dpgan.errors import CheckpointError, DataError, DPGANError
from dpgan.files import write_text_atomic
from dpgan.training.preflight import (
    check_resume_classes,
    estimate_checkpoint_bytes,
    preflight,
    save_checkpoint_or_explain,
)
from dpgan.training.resilience import DivergenceGuard, EventLog, GracefulStop, LoaderFailure, StepLoader

CPU = World.single(torch.device("cpu"))



# --- signals and the step loader -------------------------------------------------------------------

def test_sigterm_and_sigint_only_request_a_stop_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with GracefulStop() as stop:
        assert not stop.agreed(CPU, {"batch": 1})
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.reason == "SIGTERM" and stop.agreed(CPU, {"batch": 2})
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C aborts at once
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGTERM) == before


def test_a_loader_failure_stops_all_ranks_then_raises_one_sentence():
    stop = GracefulStop()
    failure = LoaderFailure("/data/x.png: cannot read this image file", DataError("x"))
    assert stop.agreed(CPU, failure) and stop.reason == "data error"
    with pytest.raises(DataError, match=r"^/data/x.png: cannot read this image file \(stopped at step 7"):
        stop.raise_failure(7)
    bug = GracefulStop()
    assert bug.agreed(CPU, LoaderFailure("IndexError: 3", IndexError(3)))
    with pytest.raises(IndexError):  # not a data problem: the original error, traceback and all
        bug.raise_failure(7)
    signalled = GracefulStop()
    signalled.request("SIGTERM")  # a signal wins over a data error: exit 0, resume finds the error again
    assert signalled.agreed(CPU, failure) and signalled.failure is None


def test_step_loader_rewinds_and_reports_failures():
    made = []

    def make(start):
        made.append(start)
        return [{"step": s} for s in range(start, 6)]

    loader = StepLoader(make, 2, 6)
    seen = []
    for raw in loader:
        seen.append(raw["step"])
        if raw["step"] == 4 and len(made) == 1:
            loader.rewind(3)
    assert seen == [2, 3, 4, 3, 4, 5] and made == [2, 3]

    def broken(start):
        def gen():
            yield {"step": start}
            raise DataError("/d/bad.png: label ids 9 are out of range")
        return gen()

    items = list(StepLoader(broken, 0, 5))
    assert items[0] == {"step": 0} and isinstance(items[1], LoaderFailure) and len(items) == 2
    assert items[1].message == "/d/bad.png: label ids 9 are out of range"


# --- divergence ---------------------------------------------------------------------------------------

class _State:
    """The training state's load_state_dict for one model and its optimiser."""

    def __init__(self, model, opt):
        self.model, self.opt = model, opt

    def load_state_dict(self, ck):
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])


def _guard(tmp_path, policy="rollback", max_nonfinite=2, window=10, max_rollbacks=2):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = StepLoader(lambda s: [{}], 0, 100)
    guard = DivergenceGuard(policy=policy, max_nonfinite=max_nonfinite, window=window, lr_factor=0.25,
                            max_rollbacks=max_rollbacks, run_dir=tmp_path, world=CPU,
                            state=_State(model, opt), optimizers=[opt], loader=loader,
                            log=EventLog(tmp_path, CPU))
    return guard, model, opt, loader


def _events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_nonfinite_updates_are_skipped_logged_and_rolled_back_with_a_lower_lr(tmp_path):
    guard, model, opt, loader = _guard(tmp_path)
    good = {k: v.clone() for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path, 4, {"model": good, "opt": opt.state_dict()})
    nan, ok = torch.tensor(False), torch.tensor(True)
    assert guard.update_ok("G", ok, 5) and guard.after_step(5, True) is None
    assert not guard.update_ok("G", nan, 6) and guard.after_step(6, False) is None  # 1 of 2: skip only
    with torch.no_grad():
        model.weight.add_(1.0)  # what the steps since the checkpoint did
    assert not guard.update_ok("D", nan, 9)
    assert guard.after_step(9, False) == 4  # 2 within the window: roll back
    assert torch.equal(model.weight, good["weight"]) and opt.param_groups[0]["lr"] == pytest.approx(2.5e-4)
    assert loader._rewind == 4
    kinds = [(e["event"], e["step"]) for e in _events(tmp_path)]
    assert kinds == [("nonfinite", 6), ("nonfinite", 9), ("rollback", 9)]
    # skips outside the window are forgotten
    assert not guard.update_ok("G", nan, 20) and guard.after_step(20, False) is None
    assert not guard.update_ok("G", nan, 40) and guard.after_step(40, False) is None


def test_divergence_stops_with_a_clear_message_when_asked_or_when_rollbacks_run_out(tmp_path):
    nan = torch.tensor(False)
    stop, *_ = _guard(tmp_path / "a", policy="stop", max_nonfinite=1)
    stop.update_ok("G", nan, 3)
    with pytest.raises(DPGANError, match="training diverged: 1 non-finite updates .*nonfinite_policy is 'stop'"):
        stop.after_step(3, False)
    skip, *_ = _guard(tmp_path / "b", policy="skip", max_nonfinite=1)
    for s in range(1, 5):
        skip.update_ok("G", nan, s)
        assert skip.after_step(s, False) is None
    nothing, *_ = _guard(tmp_path / "c", max_nonfinite=1)
    nothing.update_ok("G", nan, 3)
    with pytest.raises(DPGANError, match="holds no checkpoint to roll back to"):
        nothing.after_step(3, False)
    spent, model, opt, _ = _guard(tmp_path / "d", max_nonfinite=1, max_rollbacks=1)
    save_checkpoint(tmp_path / "d", 2, {"model": model.state_dict(), "opt": opt.state_dict()})
    spent.update_ok("G", nan, 3)
    assert spent.after_step(3, False) == 2
    spent.update_ok("G", nan, 3)
    with pytest.raises(DPGANError, match="diverged again after 1 roll-back"):
        spent.after_step(3, False)


# --- start-up checks ----------------------------------------------------------------------------------

def test_preflight_refuses_an_unwritable_or_full_run_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(DPGANError, match=r"cannot create the run folder .*file/run"):
        preflight(blocker / "run", CPU, checkpoint_bytes=1)
    run = tmp_path / "run"
    assert preflight(run, CPU, checkpoint_bytes=1) == 0
    (run / "checkpoints" / ".step_00000004.pt.abc.tmp").write_bytes(b"half")
    (run / ".config.json.x.tmp").write_text("{")
    assert preflight(run, CPU, checkpoint_bytes=1) == 2
    assert not list(run.rglob("*.tmp"))
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 0, 300 << 20))
    with pytest.raises(DPGANError, match=r"has 300 MiB free, less than room for two checkpoints \(400 MiB\)"):
        preflight(run, CPU, checkpoint_bytes=200 << 20)
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        (ro / "checkpoints").mkdir(parents=True)
        (ro / "checkpoints").chmod(0o500)
        with pytest.raises(DPGANError, match="is not writable"):
            preflight(ro, CPU, checkpoint_bytes=1)


def test_checkpoint_size_estimate_counts_weights_and_adam_moments(tmp_path):
    m = torch.nn.Linear(100, 10)  # 1010 fp32 parameters
    est = estimate_checkpoint_bytes(tmp_path, [m, m], [m])
    assert est == 2 * 4040 + 2 * 4040 + (1 << 20)
    save_checkpoint(tmp_path, 1, {"w": torch.zeros(10)})
    assert estimate_checkpoint_bytes(tmp_path, [m], [m]) == list_checkpoints(tmp_path)[-1].stat().st_size


def test_resuming_with_other_classes_is_refused():
    a = DatasetInfo("streets", ("void", "road"), ((0, 0, 0), (1, 1, 1)))
    b = DatasetInfo("mine", ("void", "road", "car"), ((0, 0, 0), (1, 1, 1), (2, 2, 2)))
    c = DatasetInfo("streets", ("void", "grass"), ((0, 0, 0), (1, 1, 1)))
    ck = {"dataset_info": a.to_json(), "path": "run/checkpoints/step_00000010.pt"}
    check_resume_classes(ck, a)
    with pytest.raises(CheckpointError, match=r"step_00000010.pt: was trained on dataset 'streets' with 2 classes, "
                                              r"but dataset 'mine' has 3 classes"):
        check_resume_classes(ck, b)
    with pytest.raises(CheckpointError, match="same number of classes with different names"):
        check_resume_classes(ck, c)


def test_a_full_disk_while_saving_is_one_sentence_and_leaves_old_checkpoints(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, 1, {"w": torch.zeros(2)})

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(CheckpointError, match=r"step 2 .*\(No space left on device\); earlier checkpoints are intact"):
        save_checkpoint_or_explain(tmp_path, 2, {"w": torch.ones(2)}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000001.pt"]
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


def test_text_files_are_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    write_text_atomic(path, "old")

    def boom(*a, **k):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        write_text_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["config.json"]


# --- safe loading -----------------------------------------------------------------------------------------

class _Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_zip_checkpoint_that_runs_code_on_unpickling_is_refused(tmp_path):
    """torch.save's own (zip) format with a code-running object inside the dpgan envelope."""
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    evil = {"format": "dpgan-checkpoint", "version": 1, "step": 1, "generator": _Evil(marker)}
    (run / "checkpoints").mkdir(parents=True)
    torch.save(evil, run / "checkpoints" / "step_00000001.pt")
    with pytest.raises(CheckpointError, match="not a loadable dpgan checkpoint"):
        load_checkpoint(run)
    with open(run / "checkpoints" / "step_00000001.pt", "wb") as f:  # and the legacy pickle format
        pickle.dump(evil, f, protocol=2)
    with pytest.raises(CheckpointError):
        load_checkpoint(run)
    assert not marker.exists()


def test_config_files_are_data_never_code(tmp_path):
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    cfg = Config.from_json(json.dumps({"name": payload, "train": {"steps": 3}}))
    assert cfg.name == payload and cfg.train.steps == 3 and not marker.exists()
    with pytest.raises(DPGANError, match="unknown option"):
        Config.from_json(json.dumps({"train": {"__class__": "os.system"}}))
    with pytest.raises((DPGANError, TypeError, ValueError)):
        Config.from_json("!!python/object/apply:os.system ['touch x']")


# --- real training runs ---------------------------------------------------------------------------------

def tiny(steps: int = 6, **train) -> Config:
    from dpgan.config import DataConfig, ModelConfig, TrainConfig

    return Config(
        name="tiny",
        data=DataConfig(height=32, width=64, num_train=8, num_val=2, num_workers=0),
        model=ModelConfig(g_width=4, d_width=4, z_dim=8, pyramid_width=8, spade_hidden=8, num_res_blocks=4),
        train=TrainConfig(**{"steps": steps, "batch_size": 2, "log_every": 1, "sample_every": 100,
                             "checkpoint_every": 2, "ema_bn_batches": 1, "keep_checkpoints": 10, **train}),
    )


def _poison_generator_loss(monkeypatch, calls_to_poison: set[int]) -> None:
    """Make the G loss NaN on the given calls of generator_step (one call per step)."""
    import dpgan.training.steps as train_module

    real = train_module.generator_step
    count = {"n": 0}

    def poisoned(*args, **kwargs):
        parts = real(*args, **kwargs)
        count["n"] += 1
        if count["n"] in calls_to_poison:
            parts["g/total"] = parts["g/total"] * float("nan")
        return parts

    monkeypatch.setattr(train_module, "generator_step", poisoned)


def test_a_nan_loss_skips_exactly_that_update(tmp_path, monkeypatch):
    from dpgan.training.loop import train

    _poison_generator_loss(monkeypatch, {3})
    result = train(tiny(4, checkpoint_every=1, nonfinite_policy="skip"), tmp_path, device="cpu", progress=False)
    assert result.step == 4 and result.stopped is None
    ck = {s: load_checkpoint(tmp_path / "checkpoints" / f"step_{s:08d}.pt") for s in (2, 3)}
    for name, before in ck[2]["generator"].items():
        if "running" not in name and "num_batches" not in name and not name.endswith(("_u", "_v")):
            assert torch.equal(before, ck[3]["generator"][name]), f"G changed on a skipped update: {name}"
    assert ck[2]["opt_g"]["state"][0]["step"] == ck[3]["opt_g"]["state"][0]["step"]
    assert any(not torch.equal(v, ck[3]["discriminator"][k]) for k, v in ck[2]["discriminator"].items())
    events = _events(tmp_path)
    assert [(e["event"], e["step"], e["update"]) for e in events] == [("nonfinite", 3, "G")]
    logged = [json.loads(line)["step"] for line in (tmp_path / "losses.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 4]  # the skipped step's NaN losses are not logged


def test_repeated_nans_roll_back_with_a_lower_learning_rate_and_finish(tmp_path, monkeypatch):
    from dpgan.training.loop import train

    _poison_generator_loss(monkeypatch, {3, 4})  # steps 3 and 4 diverge; the replay after roll-back does not
    result = train(tiny(6, max_nonfinite=2), tmp_path, device="cpu", progress=False)
    assert result.step == 6
    final = load_checkpoint(tmp_path)
    assert final["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4)  # 2e-4 x 0.5
    assert final["opt_d"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert [(e["event"], e["step"]) for e in _events(tmp_path)] == [("nonfinite", 3), ("nonfinite", 4), ("rollback", 4)]
    assert _events(tmp_path)[-1]["to_step"] == 2


def test_stop_policy_ends_with_one_line(tmp_path, monkeypatch, capsys):
    from dpgan.cli import main

    _poison_generator_loss(monkeypatch, {2})
    code = main(["train", "--run-dir", str(tmp_path / "run"), *TINY_CLI, "--set", "train.nonfinite_policy=stop",
                 "--set", "train.max_nonfinite=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "training diverged: 1 non-finite updates" in err[-1]
    assert sum("error" in line for line in err) == 1


TINY_CLI = [
    "--steps", "4", "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "2", "--sample-every", "100",
    "--log-every", "1", "--no-progress", "--device", "cpu", "--set", "data.height=32", "--set", "data.width=64",
    "--set", "data.num_train=8", "--set", "data.num_val=2", "--set", "model.num_res_blocks=4",
    "--set", "model.g_width=4", "--set", "model.d_width=4", "--set", "model.z_dim=8",
    "--set", "model.pyramid_width=8", "--set", "model.spade_hidden=8", "--set", "train.ema_bn_batches=1",
]


def _one_error_line(capsys, argv) -> str:
    from dpgan.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


def test_start_up_checks_fail_before_training_with_one_line(tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = _one_error_line(capsys, ["train", "--run-dir", str(blocker / "r"), *TINY_CLI])
    assert "cannot create the run folder" in unwritable
    dev = _one_error_line(capsys, ["train", "--run-dir", str(tmp_path / "d"), *TINY_CLI, "--device", "cuda:3"])
    assert "cuda:3" in dev and not (tmp_path / "d").exists()
    import shutil
    from collections import namedtuple

    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(1 << 30, 0, 1 << 10))
    full = _one_error_line(capsys, ["train", "--run-dir", str(tmp_path / "full"), *TINY_CLI])
    assert "less than room for two checkpoints" in full
    assert not list((tmp_path / "full").rglob("*.pt")) and not (tmp_path / "full" / "losses.jsonl").exists()


def _folder_dataset(root: Path, n: int = 8, classes: tuple[str, ...] = ("void", "road", "car", "tree")) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    (root / "classes.json").write_text(json.dumps({"name": "toy", "class_names": list(classes)}))
    for split, count in (("train", n), ("val", 2)):
        for k in range(count):
            for sub in ("images", "labels"):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
            image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
            Image.fromarray(image).save(root / split / "images" / f"s{k}.png")
            Image.fromarray(rng.integers(0, 4, (32, 64)).astype(np.uint8)).save(root / split / "labels" / f"s{k}.png")
    return root


def test_resuming_on_a_dataset_with_other_classes_is_refused(tmp_path, capsys):
    root = _folder_dataset(tmp_path / "ds")
    args = ["train", "--run-dir", str(tmp_path / "run"), *TINY_CLI, "--dataset", "folder", "--data-root", str(root)]
    from dpgan.cli import main

    assert main(args) == 0
    capsys.readouterr()
    (root / "classes.json").write_text(json.dumps({"name": "toy", "class_names": ["void", "road", "car", "tree", "x"]}))
    line = _one_error_line(capsys, [*args, "--resume", "--steps", "6"])
    assert "with 4 classes, but dataset 'toy' has 5 classes" in line


def test_a_file_that_breaks_mid_run_stops_with_a_checkpoint_and_names_it(tmp_path, capsys, monkeypatch):
    """The start-up check samples files; one that is (or becomes) unreadable later must not cost
    the run: stop at the step boundary, checkpoint, one sentence naming the file, then resume."""
    import dpgan.data.check
    from dpgan.cli import main

    monkeypatch.setattr(dpgan.data.check, "check_before_training", lambda cfg: None)
    root = _folder_dataset(tmp_path / "ds")
    bad = root / "train" / "labels" / "s5.png"
    good = bad.read_bytes()
    bad.write_bytes(good[: len(good) // 2])
    args = ["train", "--run-dir", str(tmp_path / "run"), *TINY_CLI, "--steps", "8", "--checkpoint-every", "100",
            "--dataset", "folder", "--data-root", str(root)]
    line = _one_error_line(capsys, args)
    assert line.startswith(f"dpgan train: error: {bad}: cannot read this label file") and "stopped at step" in line
    stopped = int(line.split("stopped at step ")[1].split()[0])
    assert 0 <= stopped < 8 and load_checkpoint(tmp_path / "run")["step"] == stopped
    bad.write_bytes(good)
    assert main([*args, "--resume"]) == 0 and load_checkpoint(tmp_path / "run")["step"] == 8


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "dpgan", "train", "--run-dir", str(run_dir), *TINY_CLI, "--steps", "500",
           "--checkpoint-every", "1000", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_steps(run_dir: Path, proc: subprocess.Popen, n: int, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    log = run_dir / "losses.jsonl"
    while time.time() < deadline:
        if log.exists() and len(log.read_text().splitlines()) >= n:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError("training did not start")


@pytest.mark.parametrize("sig,group,workers", [(signal.SIGTERM, True, "1"), (signal.SIGINT, False, "0")])
def test_sigterm_and_ctrl_c_finish_the_step_checkpoint_and_exit_0(tmp_path, sig, group, workers):
    """SIGTERM goes to the whole process group, as a cluster scheduler sends it: the DataLoader
    worker must survive it until the main process has finished its step."""
    run = tmp_path / "run"
    proc = _start(run, "--num-workers", workers)
    _wait_for_steps(run, proc, 3)
    (os.killpg if group else os.kill)(proc.pid, sig)
    out, err = proc.communicate(timeout=60)
    name = signal.Signals(sig).name
    assert proc.returncode == 0, err[-2000:]
    assert f"stopped by {name} at step" in out, out
    step = int(out.split(f"stopped by {name} at step ")[1].split()[0])
    assert 3 <= step < 500
    assert load_checkpoint(run)["step"] == step
    assert json.loads((run / "losses.jsonl").read_text().splitlines()[-1])["step"] == step
    if sig == signal.SIGTERM:  # and it continues from there
        from dpgan.cli import main

        assert main(["train", "--run-dir", str(run), "--resume", "--steps", str(step + 1), "--no-progress",
                     "--device", "cpu"]) == 0
        assert load_checkpoint(run)["step"] == step + 1
