"""Smaller hostile cases: honest resume messages, a log without replayed steps, folders given as
checkpoints, NaN weights, and label files too large to decode."""

import json
import shutil
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.checkpoint import list_checkpoints, load_checkpoint
from dpgan.cli import main
from dpgan.errors import CheckpointError, DataError
from tiny_args import TINY_TRAIN


def test_a_resume_with_nothing_left_to_train_says_so(tiny_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    capsys.readouterr()
    assert main(["train", "--run-dir", str(run), "--resume", "--steps", "3", *TINY_TRAIN[2:]]) == 0
    out = capsys.readouterr().out
    assert "train.steps: 2 -> 3 for this run from now on" in out and "trained steps 3..3" in out
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "nothing to train: the run is already at step 3" in out and "trained" not in out


def test_resume_drops_log_lines_of_the_steps_it_replays(tmp_path):
    run = tmp_path / "run"
    args = [*TINY_TRAIN, "--steps", "4", "--checkpoint-every", "2", "--sample-every", "100"]
    assert main(["train", "--run-dir", str(run), *args]) == 0
    (run / "checkpoints" / "step_00000004.pt").unlink()  # as if killed after logging step 4, before saving it
    assert main(["train", "--run-dir", str(run), *args, "--resume"]) == 0
    steps = [json.loads(x)["step"] for x in (run / "losses.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_the_checkpoints_folder_itself_is_read_as_the_run(tiny_run):
    assert load_checkpoint(tiny_run / "checkpoints")["step"] == 2


def test_nan_weights_are_refused_on_load(tiny_run, tmp_path):
    from dpgan.inference.api import DPGAN
    from dpgan.inference.pretrained import WEIGHTS_FILE
    from safetensors.torch import load_file, save_file

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    path = list_checkpoints(run)[-1]
    ck = torch.load(path, weights_only=True)
    first = next(k for k, v in ck["generator_ema"].items() if v.is_floating_point())
    ck["generator_ema"][first] = torch.full_like(ck["generator_ema"][first], float("nan"))
    torch.save(ck, path)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        DPGAN.from_checkpoint(run, device="cpu")
    saved = DPGAN.from_checkpoint(tiny_run, device="cpu").save_pretrained(tmp_path / "m")
    state = load_file(str(saved / WEIGHTS_FILE))
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key] = torch.full_like(state[key], float("inf"))
    save_file(state, str(saved / WEIGHTS_FILE), metadata={"format": "dpgan-pretrained"})
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        DPGAN.from_pretrained(saved)


def _png_claiming(path, width, height):
    """A valid little PNG whose header then claims width x height (nothing beyond it is decoded)."""
    Image.fromarray(np.zeros((2, 2), dtype=np.uint8), mode="L").save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    path.write_bytes(bytes(data))


def test_a_huge_label_file_is_refused_by_its_size_before_decoding(tmp_path):
    from dpgan.data.io import read_label
    from dpgan.data.synthetic import SYNTHETIC_STREETS

    bomb = tmp_path / "bomb.png"
    _png_claiming(bomb, 12000, 12000)
    with pytest.raises(DataError, match=r"bomb\.png: label is 12000x12000 pixels; at most 8192x8192"):
        read_label(bomb, SYNTHETIC_STREETS)
    wide = tmp_path / "wide.png"
    _png_claiming(wide, 9000, 4)
    with pytest.raises(DataError, match="at most 8192x8192"):
        read_label(wide, SYNTHETIC_STREETS)


def test_sample_counts_and_seeds_out_of_range_are_one_line(tiny_run, tmp_path, capsys):
    labels = tmp_path / "l"
    labels.mkdir()
    Image.fromarray(np.zeros((32, 64), dtype=np.uint8), mode="L").save(labels / "map0.png")
    base = ["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--out", str(tmp_path / "o"),
            "--device", "cpu", "--no-progress"]
    for extra, match in ((["--num-samples", "100000000"], "more than 1000"), (["--seed", str(2**64)], "out of range"),
                         (["--seed", str(2**64 - 1), "--num-samples", "2"], "out of range"),
                         (["--interpolate-to", "3", "--steps", "5000"], "at most 1000")):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
    assert not (tmp_path / "o").exists()
