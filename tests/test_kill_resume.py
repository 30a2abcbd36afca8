"""Exact resume after SIGKILL: a real `python -m dpgan train` is killed at random moments, some
of them in the middle of writing a checkpoint; after every kill the latest checkpoint must load,
and the run, resumed as often as it takes, must end with bitwise the weights of a run that was
never interrupted (CPU, fp32, one thread).

The kills inside a checkpoint write are made certain by a slow disk: a `sitecustomize` in the
child's PYTHONPATH makes fsync of a checkpoint's temporary file take 0.4 s, and the test kills
the process as soon as that file appears.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from dpgan.checkpoint import list_checkpoints, load_checkpoint

STEPS = 8
ARGS = [
    "--steps", str(STEPS), "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "1",
    "--sample-every", "1000", "--log-every", "1", "--no-progress", "--device", "cpu",
    "--set", "data.height=32", "--set", "data.width=64", "--set", "data.num_train=8", "--set", "data.num_val=2",
    "--set", "model.num_res_blocks=4", "--set", "model.g_width=4", "--set", "model.d_width=4",
    "--set", "model.z_dim=8", "--set", "model.pyramid_width=8", "--set", "model.spade_hidden=8",
    "--set", "train.ema_bn_batches=1", "--set", "train.keep_checkpoints=2",
]

SLOW_DISK = '''
import os, time
_fsync = os.fsync
def _slow_fsync(fd):
    try:
        name = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        name = ""
    if "/.step_" in name:
        time.sleep(0.4)
    return _fsync(fd)
os.fsync = _slow_fsync
'''


def _launch(run_dir: Path, slow_disk: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if slow_disk is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(slow_disk), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, "-m", "dpgan", "train", "--run-dir", str(run_dir), "--auto-resume", *ARGS]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> bool:
    """SIGKILL the process once `ready()` holds; False if it finished first."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.002)
    assert proc.poll() is not None, "training hung"
    return False


def _latest_step(run: Path) -> int:
    done = list_checkpoints(run)
    return int(done[-1].stem.split("_")[1]) if done else 0


def test_sigkill_at_random_points_then_resume_is_bitwise_exact(tmp_path):
    slow = tmp_path / "slow_disk"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(SLOW_DISK)
    reference = tmp_path / "reference"
    ref = _launch(reference)
    assert ref.wait(timeout=120) == 0, ref.stderr.read()[-2000:]

    run = tmp_path / "killed"
    ckdir = run / "checkpoints"
    rng = random.Random(6)
    plan = ["mid-write", "start-up", "training", "mid-write", "training", "mid-write"]
    kills: list[str] = []
    for mode in [*plan, "finish"]:
        if mode == "mid-write":
            proc = _launch(run, slow_disk=slow)
            first = _latest_step(run) + rng.randint(0, 1)  # interrupt the write after this step

            def writing() -> bool:
                if not ckdir.is_dir() or _latest_step(run) < min(first, STEPS - 1):
                    return False
                return any(p.name.startswith(".step_") for p in ckdir.iterdir())

            killed = _kill_when(proc, writing)
        elif mode == "start-up":  # building data and models, resuming, start-up checks
            proc = _launch(run)
            start, delay = time.time(), rng.uniform(0.5, 3.0)
            killed = _kill_when(proc, lambda: time.time() - start > delay)
        elif mode == "training":  # a random moment after this launch's first training step
            proc = _launch(run)
            log = run / "losses.jsonl"
            lines = len(log.read_text().splitlines()) if log.exists() else 0
            delay, started = rng.uniform(0.0, 0.3), []

            def trained_a_bit() -> bool:
                if not started and log.exists() and len(log.read_text().splitlines()) > lines:
                    started.append(time.time())
                return bool(started) and time.time() - started[0] > delay

            killed = _kill_when(proc, trained_a_bit)
        else:
            proc = _launch(run)
            assert proc.wait(timeout=120) == 0, proc.stderr.read()[-2000:]
            break
        if killed:
            done = list_checkpoints(run)
            kills.append(f"{mode} (latest checkpoint: {done[-1].stem if done else None})")
        # whatever the moment of the kill, every completed checkpoint loads
        for path in list_checkpoints(run):
            assert load_checkpoint(path)["step"] == int(path.stem.split("_")[1])

    print("kills:", kills)
    assert sum(k.startswith("mid-write") for k in kills) == 3, kills
    a, b = load_checkpoint(reference), load_checkpoint(run)
    assert a["step"] == b["step"] == STEPS
    for key in ("generator", "discriminator", "generator_ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after {kills}"
    for key in ("opt_g", "opt_d"):
        for idx, state in a[key]["state"].items():
            for name, tensor in state.items():
                assert torch.equal(tensor, b[key]["state"][idx][name]), f"{key}[{idx}].{name} differs"
    assert not [p for p in ckdir.iterdir() if p.name.endswith(".tmp")], "stale temporary files left behind"
