"""`dpgan export`: the ONNX graph under onnxruntime matches PyTorch; the safetensors folder loads."""

import json

import numpy as np
import onnxruntime as ort  # the test extra installs it
import pytest
import torch

from dpgan import DPGAN
from dpgan.cli import main
from dpgan.tensors import one_hot


@pytest.fixture(scope="module")
def onnx_dir(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "--format", "onnx", str(tiny_run), str(out), "--overwrite"]) == 0
    return out


def _torch_images(model, label, z):
    with torch.no_grad():
        return model.generator(one_hot(torch.from_numpy(label), model.num_classes), torch.from_numpy(z)).numpy()


@pytest.mark.parametrize("size", [(32, 64), (48, 32)], ids=["trained-size", "other-size"])
def test_onnx_matches_pytorch_within_1e_4(tiny_run, onnx_dir, size):
    model = DPGAN.from_checkpoint(tiny_run, device="cpu")
    meta = json.loads((onnx_dir / "config.json").read_text())
    assert meta["format"] == "dpgan-onnx" and meta["dataset_info"]["class_names"] == list(model.info.class_names)
    rng = np.random.default_rng(0)
    label = rng.integers(0, model.num_classes, size=(3, *size)).astype(np.int64)
    z = rng.standard_normal((3, model.generator.z_dim)).astype(np.float32)
    session = ort.InferenceSession(str(onnx_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["label", "z"]
    (got,) = session.run(["image"], {"label": label, "z": z})
    want = _torch_images(model, label, z)
    assert got.shape == want.shape == (3, 3, *size)
    assert np.abs(got - want).max() <= 1e-4


def test_safetensors_export_is_a_saved_model(tiny_run, tmp_path):
    out = tmp_path / "saved"
    assert main(["export", str(tiny_run), str(out)]) == 0
    label = np.zeros((32, 64), dtype=np.int64)
    np.testing.assert_array_equal(DPGAN.from_pretrained(out, "cpu").generate(label, seed=4),
                                  DPGAN.from_checkpoint(tiny_run, "cpu").generate(label, seed=4))
    # a second export into the same folder is refused instead of silently replacing it
    assert main(["export", str(tiny_run), str(out)]) == 2


def test_export_of_a_missing_run_names_it(tmp_path, capsys):
    assert main(["export", str(tmp_path / "no-run"), str(tmp_path / "out")]) == 2
    assert "no-run" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_onnx_export_without_the_onnx_package_says_what_to_install(tiny_run, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["export", "--format", "onnx", str(tiny_run), str(tmp_path / "o")]) == 2
    assert "dpgan[onnx]" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
