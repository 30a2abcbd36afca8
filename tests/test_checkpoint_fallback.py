"""Resume falls back past an empty or truncated latest checkpoint; `dpgan check-run` reports each one."""

import shutil

import pytest

from dpgan.checkpoint import list_checkpoints, load_checkpoint, load_latest_checkpoint
from dpgan.cli import main
from dpgan.errors import CheckpointError
from tiny_args import TINY_TRAIN

TWO_CHECKPOINTS = [*TINY_TRAIN, "--steps", "4", "--checkpoint-every", "2", "--sample-every", "100"]


@pytest.fixture(scope="module")
def run4(tmp_path_factory):
    run = tmp_path_factory.mktemp("fallback") / "run"
    assert main(["train", "--run-dir", str(run), *TWO_CHECKPOINTS]) == 0
    assert [p.name for p in list_checkpoints(run)] == ["step_00000002.pt", "step_00000004.pt"]
    return run


def _damaged(run4, tmp_path, how):
    run = tmp_path / "run"
    shutil.copytree(run4, run)
    latest = list_checkpoints(run)[-1]
    data = latest.read_bytes()
    latest.write_bytes(b"" if how == "empty" else data[: len(data) // 2])
    return run, latest


@pytest.mark.parametrize("how", ["empty", "truncated"])
def test_resume_skips_a_bad_latest_checkpoint_and_says_so(run4, tmp_path, capsys, how):
    run, bad = _damaged(run4, tmp_path, how)
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), *TWO_CHECKPOINTS, "--resume", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if line.startswith("skipped")]
    assert len(skipped) == 1 and bad.name in skipped[0]
    assert load_checkpoint(run / "checkpoints" / "step_00000006.pt")["step"] == 6


def test_auto_resume_falls_back_too(run4, tmp_path, capsys):
    run, bad = _damaged(run4, tmp_path, "empty")
    (run / "config.json").unlink()  # the config then comes from the checkpoint that loads
    assert main(["train", "--run-dir", str(run), *TWO_CHECKPOINTS, "--auto-resume"]) == 0
    assert load_checkpoint(bad)["step"] == 4  # retrained from step 2 and rewritten


def test_no_loadable_checkpoint_is_one_error(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "step_00000002.pt").write_bytes(b"")
    (tmp_path / "checkpoints" / "step_00000004.pt").write_bytes(b"PK\x03\x04junk")
    seen = []
    with pytest.raises(CheckpointError, match="none of its 2 checkpoints loads"):
        load_latest_checkpoint(tmp_path, report=seen.append)
    assert len(seen) == 2 and "step_00000004.pt" in seen[0] and "empty" in seen[1]


def test_check_run_lists_every_checkpoint(run4, tmp_path, capsys):
    capsys.readouterr()
    assert main(["check-run", str(run4)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["OK   step_00000002.pt: step 2", "OK   step_00000004.pt: step 4"]
    run, _ = _damaged(run4, tmp_path, "truncated")
    assert main(["check-run", str(run)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("OK   step_00000002.pt") and lines[1].startswith("BAD  step_00000004.pt: ")
    assert main(["check-run", str(tmp_path / "empty")]) == 2


def test_a_code_running_pickle_gets_our_sentence_not_torchs_advice(tmp_path):
    import os
    import torch

    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    (tmp_path / "checkpoints").mkdir()
    torch.save({"format": "dpgan-checkpoint", "x": Evil()}, tmp_path / "checkpoints" / "step_00000001.pt")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    assert "weights_only=False" not in str(info.value) and "could run code" in str(info.value)
