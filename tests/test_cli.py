"""The command line as a user meets it: exit codes, files written, one-line errors."""

import numpy as np
import pytest
from PIL import Image

from dpgan.cli import main
from dpgan.data.synthetic import SYNTHETIC_STREETS
from tiny_args import TINY_TRAIN

TINY = TINY_TRAIN  # as conftest.py's tiny run, but this module trains (and resumes) its own


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--run-dir", str(run), *TINY]) == 0
    return run


def test_presets_lists_presets_and_ablations(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("synthetic-streets", "cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff", "oa-dp", "fm-enc"):
        assert name in out


def test_train_refuses_to_overwrite_an_existing_run(run_dir, capsys):
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert main(["train", "--run-dir", str(run_dir), *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--resume" in err[0]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before


def test_train_resume_continues(run_dir):
    assert main(["train", "--run-dir", str(run_dir), "--resume", "--steps", "3", "--no-progress",
                 "--device", "cpu"]) == 0
    assert (run_dir / "checkpoints" / "step_00000003.pt").exists()


def _labels(folder, n=2, height=32, width=64):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        lab = rng.integers(0, SYNTHETIC_STREETS.num_classes, (height, width)).astype(np.uint8)
        Image.fromarray(lab, mode="L").save(folder / f"map{i}.png")
    return folder


def test_synthesize_writes_k_different_images_per_label_map(run_dir, tmp_path, capsys):
    labels = _labels(tmp_path / "labels")
    out = tmp_path / "out"
    assert main(["synthesize", "--checkpoint", str(run_dir), "--labels", str(labels), "--out", str(out),
                 "--num-samples", "3", "--seed", "5", "--device", "cpu", "--no-progress"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"map{i}_seed{s}.png" for i in range(2) for s in (5, 6, 7)]
    a, b = (np.asarray(Image.open(out / f"map0_seed{s}.png")) for s in (5, 6))
    assert a.shape == (32, 64, 3) and not np.array_equal(a, b)
    # the same seed alone reproduces the same image
    again = tmp_path / "again"
    assert main(["synthesize", "--checkpoint", str(run_dir), "--labels", str(labels / "map0.png"),
                 "--out", str(again), "--seed", "6", "--device", "cpu", "--no-progress"]) == 0
    assert np.array_equal(np.asarray(Image.open(again / "map0_seed6.png")), b)
    # existing outputs are not overwritten without --overwrite
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["synthesize", "--checkpoint", str(run_dir), "--labels", str(labels), "--out", str(out),
                 "--num-samples", "3", "--seed", "5", "--device", "cpu", "--no-progress"]) == 2
    assert "map0_seed5.png already exists (6 files would be replaced); pass --overwrite" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_bad_inputs_end_in_one_line_naming_the_file(run_dir, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    lab = np.full((32, 64), 200, dtype=np.uint8)  # id 200 >= number of classes
    Image.fromarray(lab, mode="L").save(bad / "oops.png")
    cases = [
        (["--checkpoint", str(run_dir), "--labels", str(bad)], "oops.png"),
        (["--checkpoint", str(tmp_path / "missing"), "--labels", str(bad)], "missing"),
        (["--checkpoint", str(run_dir), "--labels", str(tmp_path / "nolabels")], "nolabels"),
    ]
    for args, name in cases:
        code = main(["synthesize", *args, "--out", str(tmp_path / "o"), "--device", "cpu", "--no-progress"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and name in err[0], err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
