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


def test_train_says_what_it_trains_and_when_the_first_checkpoint_comes(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--threads", "1", *TINY_TRAIN]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"dpgan train: run folder {run}; device cpu; 1 CPU thread(s)")
    assert "--threads" in out[0]
    assert out[1] == ("  data: synthetic-streets, 6 training images at 32x64; 2 steps of batch 2; "
                      "first sample at step 2, first checkpoint at step 2 (then every 2)")


def test_a_run_without_a_checkpoint_says_when_the_first_comes(tmp_path, capsys):
    from dpgan.presets import preset

    run = tmp_path / "young"
    run.mkdir()
    cfg = preset("synthetic-streets").override(train={"steps": 1000, "checkpoint_every": 250})
    (run / "config.json").write_text(cfg.to_json())
    (run / "losses.jsonl").write_text('{"step": 25, "g/total": 1.0}\n')
    for argv in (["export", str(run), str(tmp_path / "out")],
                 ["synthesize", "--checkpoint", str(run), "--labels", str(run), "--out", str(tmp_path / "g")],
                 ["evaluate", "--run", str(run), "--no-progress"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "first at step 250" in err and "step 25 of 1000" in err, (argv, err)


def test_cpu_threads_follow_the_flag_then_the_environment(monkeypatch):
    import torch

    from dpgan.devices import choose_cpu_threads

    before = torch.get_num_threads()
    try:
        assert choose_cpu_threads(1) == (1, "--threads") and torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert choose_cpu_threads(None)[1] == "OMP_NUM_THREADS"
        monkeypatch.delenv("OMP_NUM_THREADS")
        n, why = choose_cpu_threads(None, processes_per_node=64)
        assert n == 1 and "64 processes" in why  # never below one thread
    finally:
        torch.set_num_threads(before)
