"""The README's quickstart as a newcomer types it: write a folder dataset, check it, train on it without
naming its type, generate from its label maps, and the printed tensorboard command is one that runs."""

import sys
from pathlib import Path

from dpgan.cli import main
from tiny_args import TINY_TRAIN


def test_make_synthetic_check_data_train_synthesize(tmp_path, capsys):
    data = tmp_path / "streets"
    assert main(["make-synthetic", "--out", str(data), "--num-train", "4", "--num-val", "2",
                 "--height", "32", "--width", "64", "--no-progress"]) == 0
    assert (data / "classes.json").is_file()
    # no --dataset folder: the folder's classes.json says what it is
    assert main(["check-data", "--data-root", str(data), "--quick", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "folder" in out and "split val" in out

    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--data-root", str(data), *TINY_TRAIN]) == 0
    out = capsys.readouterr().out
    assert '"dataset": "folder"' in (run / "config.json").read_text()
    tb_line = next(line for line in out.splitlines() if "tensorboard:" in line)
    tool = tb_line.split("tensorboard:", 1)[1].split()[0]
    beside = Path(sys.executable).parent / "tensorboard"
    assert tool == str(beside) if beside.is_file() else tool.endswith("tensorboard")

    gen = tmp_path / "generated"
    assert main(["synthesize", "--checkpoint", str(run), "--labels", str(data / "val" / "labels"),
                 "--out", str(gen), "--num-samples", "2", "--device", "cpu", "--no-progress"]) == 0
    assert len(list(gen.glob("*.png"))) == 2 * 2
