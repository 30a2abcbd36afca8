"""The Python API: save/load round trips, seeds, region resampling, interpolation, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan import DPGAN
from dpgan.inference.api import slerp
from dpgan.cli import main
from dpgan.errors import CheckpointError, DataError, DPGANError
from dpgan.inference.pretrained import CONFIG_FILE, WEIGHTS_FILE


@pytest.fixture(scope="module")
def model(tiny_run):
    return DPGAN.from_checkpoint(tiny_run, device="cpu")


@pytest.fixture(scope="module")
def label(model):
    """A (32, 64) map with sky on top, road below and a class-3 block in the middle."""
    ids = np.zeros((32, 64), dtype=np.int64)
    ids[16:] = 1
    ids[10:22, 20:36] = 3
    return ids


def test_saved_model_gives_the_same_images_as_the_checkpoint(model, label, tmp_path):
    out = model.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, "README.md"])  # + model card
    from safetensors.torch import load_file

    keys = load_file(str(out / WEIGHTS_FILE)).keys()
    assert not [k for k in keys if "parametrizations" in k], "spectral norm must be baked into plain weights"
    loaded = DPGAN.from_pretrained(out, device="cpu")
    assert loaded.step == model.step and loaded.info.class_names == model.info.class_names
    np.testing.assert_array_equal(loaded.generate(label, seed=3, num_samples=2),
                                  model.generate(label, seed=3, num_samples=2))
    # and the raw outputs agree to float precision, not just after rounding to uint8
    onehot = torch.nn.functional.one_hot(torch.from_numpy(label)[None], model.num_classes).permute(0, 3, 1, 2).float()
    z = torch.randn(1, model.generator.z_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(onehot, z), model.generator(onehot, z), rtol=0, atol=1e-6)


def test_from_checkpoint_reads_a_saved_model_folder_too(model, label, tmp_path):
    model.save_pretrained(tmp_path / "m")
    again = DPGAN.from_checkpoint(tmp_path / "m", device="cpu")
    np.testing.assert_array_equal(again.generate(label, seed=1), model.generate(label, seed=1))


def test_tensor_array_and_png_give_the_same_image(model, label, tmp_path):
    png = tmp_path / "label.png"
    Image.fromarray(label.astype(np.uint8), mode="L").save(png)
    from_array = model.generate(label, seed=5)
    np.testing.assert_array_equal(model.generate(torch.from_numpy(label), seed=5), from_array)
    np.testing.assert_array_equal(model.generate(str(png), seed=5), from_array)
    assert from_array.shape == (1, 32, 64, 3) and from_array.dtype == np.uint8


def test_each_seed_gives_another_image_and_sample_k_is_seed_plus_k(model, label):
    four = model.generate(label, seed=10, num_samples=4)
    assert four.shape == (4, 32, 64, 3)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.array_equal(four[i], four[j]), f"samples {i} and {j} are identical"
    np.testing.assert_array_equal(four[2], model.generate(label, seed=12)[0])


def test_api_and_synthesize_agree_on_a_seed(model, label, tiny_run, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(label.astype(np.uint8), mode="L").save(labels / "a.png")
    assert main(["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--out",
                 str(tmp_path / "out"), "--seed", "7", "--no-progress", "--device", "cpu"]) == 0
    written = np.asarray(Image.open(tmp_path / "out" / "a_seed7.png").convert("RGB"))
    np.testing.assert_array_equal(written, model.generate(label, seed=7)[0])


def test_resample_changes_only_what_the_mask_asks_for(model, label):
    base = model.generate(label, seed=0)[0]
    other = model.generate(label, seed=1)[0]
    empty = np.zeros(label.shape, dtype=bool)
    np.testing.assert_array_equal(model.resample(label, 0, 1, mask=empty), base)
    np.testing.assert_array_equal(model.resample(label, 0, 1, mask=~empty), other)
    by_class = model.resample(label, 0, 1, class_id=3)
    assert not np.array_equal(by_class, base)
    named = model.resample(label, 0, 1, class_id=model.info.class_names[3])
    np.testing.assert_array_equal(named, by_class)
    # the change is concentrated under the class: pixels far from it move much less
    diff = np.abs(by_class.astype(int) - base.astype(int)).sum(-1)
    inside = diff[label == 3].mean()
    far = diff[:4, :].mean()  # the top rows, 6+ pixels above the block
    assert inside > far


def test_interpolation_starts_and_ends_at_the_seeds(model, label):
    path = model.interpolate(label, 2, 9, steps=5)
    assert path.shape == (5, 32, 64, 3)
    np.testing.assert_array_equal(path[0], model.generate(label, seed=2)[0])
    np.testing.assert_array_equal(path[-1], model.generate(label, seed=9)[0])
    assert not np.array_equal(path[2], path[0]) and not np.array_equal(path[2], path[-1])


def test_slerp_keeps_the_norm_of_gaussian_draws():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g), torch.randn(64, generator=g)
    mid = slerp(a, b, 0.5)
    lerp_mid = (a + b) / 2
    # the straight-line midpoint of two independent draws has ~1/sqrt(2) of their norm
    assert abs(mid.norm() - (a.norm() + b.norm()) / 2) < 0.05 * a.norm()
    assert lerp_mid.norm() < 0.85 * mid.norm()
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    torch.testing.assert_close(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel: falls back to a line


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.full((32, 64), 99), "id 99"),
        (np.zeros((32, 64), dtype=np.float32), "integer"),
        (np.zeros((30, 64), dtype=np.int64), "multiple of"),
        (np.zeros((2, 2, 32, 64), dtype=np.int64), "shape"),
        ([[0, 1]], "not list"),
    ],
)
def test_bad_label_maps_get_one_clear_error(model, bad, message):
    with pytest.raises(DataError, match=message):
        model.generate(bad)


def test_a_missing_label_png_is_named(model, tmp_path):
    with pytest.raises(DPGANError, match="nope.png"):
        model.generate(tmp_path / "nope.png")


def test_bad_masks_and_classes_are_refused(model, label):
    with pytest.raises(DataError, match="mask is"):
        model.resample(label, 0, 1, mask=np.ones((4, 4), dtype=bool))
    with pytest.raises(DPGANError, match="unknown class 'unicorn'"):
        model.resample(label, 0, 1, class_id="unicorn")
    with pytest.raises(DPGANError, match="exactly one"):
        model.resample(label, 0, 1)
    with pytest.raises(DPGANError, match="num_samples"):
        model.generate(label, num_samples=0)


def test_missing_foreign_and_corrupt_saved_models(model, tmp_path):
    with pytest.raises(CheckpointError, match=CONFIG_FILE):
        DPGAN.from_pretrained(tmp_path / "nothing-here")
    saved = model.save_pretrained(tmp_path / "m")
    meta = json.loads((saved / CONFIG_FILE).read_text())

    (saved / CONFIG_FILE).write_text(json.dumps({"model_type": "something-else"}))
    with pytest.raises(CheckpointError, match="not a dpgan saved model"):
        DPGAN.from_pretrained(saved)

    (saved / CONFIG_FILE).write_text(json.dumps(meta))
    (saved / WEIGHTS_FILE).write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        DPGAN.from_pretrained(saved)

    other = model.save_pretrained(tmp_path / "m2")
    meta["config"]["model"]["g_width"] = 8  # the weights no longer fit the described network
    (other / CONFIG_FILE).write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit"):
        DPGAN.from_pretrained(other)


def test_baked_generator_equals_the_spectral_normalised_one(tiny_run, model, label):
    """Loading bakes spectral norm into plain weights; the trained (parametrised) EMA generator
    must give the very same output."""
    from dpgan.checkpoint import load_checkpoint
    from dpgan.models import build_models_from_config

    ck = load_checkpoint(tiny_run, map_location="cpu")
    G, _ = build_models_from_config(model.config.model, model.num_classes)
    G.load_state_dict(ck["generator_ema"])
    G.eval()
    assert any("parametrizations" in k for k in G.state_dict())
    assert not any("parametrizations" in k for k in model.generator.state_dict())
    onehot = torch.nn.functional.one_hot(torch.from_numpy(label)[None], model.num_classes).permute(0, 3, 1, 2).float()
    z = torch.randn(1, model.generator.z_dim)
    with torch.no_grad():
        assert torch.equal(model.generator(onehot, z), G(onehot, z))
