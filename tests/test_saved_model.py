"""Saved models follow the hub conventions: no local paths in config.json, a README.md model card,
written all at once, with the permissions the umask asks for."""

import json
import os
import shutil
import stat

import numpy as np
import pytest

from dpgan import DPGAN
from dpgan.cli import main
from dpgan.files import torch_save_atomic
from dpgan.inference import model_card as card_module
from dpgan.inference.model_card import Origin, model_card

LOCAL = {"data": {"root": "/home/someone/private-data"},
         "train": {"eval_segmenter": "/home/someone/seg.pt", "eval_inception": "/home/someone/inc.pth",
                   "eval_segmenter_weights": "/home/someone/drn.pth"}}


def _front_matter(text):
    assert text.startswith("---\n")
    head, _, body = text[4:].partition("\n---\n")
    return head.splitlines(), body


def test_saved_config_has_no_local_paths_and_the_card_is_in_hub_format(tiny_run, tmp_path):
    model = DPGAN.from_checkpoint(tiny_run, "cpu")
    model.config = model.config.override(**LOCAL)
    out = model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    saved = (out / "config.json").read_text()
    assert "/home/someone" not in saved
    cfg = json.loads(saved)["config"]
    assert cfg["data"]["root"] is None and cfg["train"]["eval_inception"] is None
    assert cfg["train"]["steps"] == model.config.train.steps  # the rest is kept
    head, body = _front_matter((out / "README.md").read_text())
    assert "library_name: dpgan" in head and "license: mit" in head
    assert head[head.index("tags:") + 1:head.index("tags:") + 5] == [
        "- semantic-image-synthesis", "- gan", "- dp-gan", "- pytorch"]
    assert head[head.index("datasets:") + 1] == "- synthetic-streets"
    assert "Dual Pyramid Generative Adversarial Networks for Semantic Image Synthesis" in body
    assert "DPGAN.from_pretrained" in body and "dpgan synthesize --checkpoint" in body
    assert "2 steps of batch 2" in body and "32x64" in body
    label = np.zeros((32, 64), dtype=np.int64)
    np.testing.assert_array_equal(DPGAN.from_pretrained(out, "cpu").generate(label, seed=1),
                                  model.generate(label, seed=1))


def test_export_puts_the_runs_metrics_in_the_card(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "eval").mkdir(exist_ok=True)
    (run / "eval" / "metrics.json").write_text(json.dumps(
        {"metrics": {"fid": 12.5, "miou": 0.4, "kid": None},
         "protocol": {"num_images": 2, "split": "val", "resolution": [32, 64]}}))
    for fmt in ("safetensors", "onnx"):
        out = tmp_path / fmt
        argv = ["export", str(run), str(out), "--format", fmt]
        if fmt == "onnx" and main(argv) != 0:
            pytest.skip("onnx not installed")
        elif fmt == "safetensors":
            assert main(argv) == 0
        text = (out / "README.md").read_text()
        assert "| fid | 12.5 |" in text and "| miou | 0.4 |" in text and "kid" not in text
        assert "2 val label maps at 32x64" in text


def test_converted_models_name_the_upstream_licence():
    from dpgan.presets import preset

    text = model_card(preset("cityscapes"), "cityscapes", 0, origin=Origin(converted_from="dpgan"))
    head, body = _front_matter(text)
    assert "license: other" in head and "- cityscapes" in head
    assert "see the upstream repository's LICENSE" in body and "sj-li/DP_GAN" in text


def test_a_failed_save_leaves_the_folder_as_it_was(tiny_run, tmp_path, monkeypatch):
    model = DPGAN.from_checkpoint(tiny_run, "cpu")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("dpgan.inference.pretrained.model_card", broken)
    with pytest.raises(RuntimeError):
        model.save_pretrained(tmp_path / "new")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a temporary one
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text("old")
    with pytest.raises(RuntimeError):
        model.save_pretrained(old, overwrite=True)  # asked to replace it, and failing half-way
    assert [p.name for p in old.iterdir()] == ["config.json"] and (old / "config.json").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert card_module.model_card is not broken


def test_saved_files_follow_the_umask(tiny_run, tmp_path):
    before = os.umask(0o027)
    try:
        out = DPGAN.from_checkpoint(tiny_run, "cpu").save_pretrained(tmp_path / "saved")
        torch_save_atomic({"x": 1}, tmp_path / "ck.pt")
    finally:
        os.umask(before)
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    for f in [*out.iterdir(), tmp_path / "ck.pt"]:
        assert stat.S_IMODE(f.stat().st_mode) == 0o640, f
