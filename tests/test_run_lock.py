"""One trainer per run folder: a second `dpgan train` on a busy folder is refused and changes nothing."""

import os
import signal
import subprocess
import sys
import textwrap

from dpgan.cli import main
from dpgan.training import runlock
from tiny_args import TINY_TRAIN


def _snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _holder_process(run):
    """A separate process that takes the run folder's lock and waits; returns it once it holds the lock."""
    code = textwrap.dedent(f"""
        import sys, time
        from dpgan.training import runlock
        lock = runlock.acquire({str(run)!r})
        print("locked", flush=True)
        time.sleep(120)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_a_busy_run_folder_refuses_a_second_trainer_and_stays_untouched(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    holder = _holder_process(run)
    try:
        before = _snapshot(run)
        for extra in (["--resume", "--steps", "4"], ["--auto-resume", "--steps", "4"]):
            capsys.readouterr()
            assert main(["train", "--run-dir", str(run), *TINY_TRAIN, *extra]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1, err
            assert f"pid {holder.pid}" in err[0] and "in use" in err[0]
            assert _snapshot(run) == before  # no config.json rewrite, no losses.jsonl line, no checkpoint
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed: its lock file stays behind but no longer blocks
    assert (run / runlock.LOCK_FILE).exists()
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN, "--resume", "--steps", "3"]) == 0
    assert (run / "checkpoints" / "step_00000003.pt").exists()


def test_a_fresh_run_folder_locked_by_this_process_is_refused(tmp_path, capsys):
    run = tmp_path / "fresh"
    lock = runlock.acquire(run)
    try:
        assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}" in err[0]
        assert sorted(p.name for p in run.iterdir()) == [runlock.LOCK_FILE]
    finally:
        lock.release()


def test_the_lock_is_released_when_training_fails(tmp_path, monkeypatch):
    from dpgan.errors import DPGANError
    import dpgan.training.loop as loop

    def broken(cfg):
        raise DPGANError("dataset broken")

    monkeypatch.setattr(loop, "build_data", broken)
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 2
    assert not run.exists()  # refused before it started: no empty folder left behind
    run.mkdir()
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 2
    runlock.acquire(run).release()  # free again
    assert run.is_dir()  # a folder the user made stays


def test_a_killed_holder_never_blocks(tmp_path):
    run = tmp_path / "run"
    holder = _holder_process(run)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    runlock.acquire(run).release()


def test_the_trainer_holds_the_lock_while_it_trains(tmp_path, monkeypatch):
    import pytest

    import dpgan.training.loop as loop

    run = tmp_path / "run"
    real, seen = loop.build_data, []

    def build_and_try_the_lock(cfg):
        with pytest.raises(runlock.RunLocked, match=f"pid {os.getpid()}"):
            runlock.acquire(run)
        seen.append(True)
        return real(cfg)

    monkeypatch.setattr(loop, "build_data", build_and_try_the_lock)
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    assert seen == [True]
    runlock.acquire(run).release()  # released at the end
