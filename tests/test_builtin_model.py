"""The built-in model ships in the package: it loads by name with no training and no download."""

import json

import numpy as np
import pytest

from dpgan import DPGAN
from dpgan.cli import main
from dpgan.data.synthetic import SyntheticStreets
from dpgan.inference.pretrained import BUILTIN_DIR, BUILTIN_MODELS, resolve_model


def test_every_builtin_model_is_in_the_package_with_a_model_card():
    for name in BUILTIN_MODELS:
        folder = BUILTIN_DIR / name
        assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in folder.iterdir()}
        assert (folder / "model.safetensors").stat().st_size < 8_000_000
        card = (folder / "README.md").read_text()
        assert card.startswith("---\n") and "library_name: dpgan" in card and "mIoU" in card


def test_builtin_model_by_name_generates_street_scenes():
    model = DPGAN.from_pretrained("synthetic-streets", device="cpu")
    assert model.info.name == "synthetic-streets" and model.config.data.root is None
    label = SyntheticStreets("val", num_images=1)[0]["label"].numpy()
    a, b = model.generate(label, seed=0), model.generate(label, seed=1)
    assert a.shape == (1, 64, 128, 3) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 1.0  # the noise changes the image


def test_a_local_folder_of_the_same_name_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_model("synthetic-streets") == BUILTIN_DIR / "synthetic-streets"
    (tmp_path / "synthetic-streets").mkdir()
    assert resolve_model("synthetic-streets").resolve() == (tmp_path / "synthetic-streets").resolve()


def test_synthesize_with_the_builtin_model(tmp_path, capsys):
    assert main(["make-synthetic", "--out", str(tmp_path / "s"), "--num-train", "1", "--num-val", "1",
                 "--no-progress"]) == 0
    labels = tmp_path / "s" / "val" / "labels"
    out = tmp_path / "out"
    assert main(["synthesize", "--model", "synthetic-streets", "--labels", str(labels), "--out", str(out),
                 "--num-samples", "2", "--device", "cpu"]) == 0
    assert len(list(out.glob("*.png"))) == 2


def test_demo_serves_the_builtin_model_when_no_checkpoint_is_given():
    from pathlib import Path

    from dpgan.cli import build_parser
    from dpgan.inference.demo.backend import DemoBackend

    args = build_parser().parse_args(["demo"])
    assert args.checkpoint == Path("synthetic-streets")
    backend = DemoBackend.from_checkpoint(args.checkpoint, "cpu")
    assert backend.info.name == "synthetic-streets" and (backend.height, backend.width) == (64, 128)
