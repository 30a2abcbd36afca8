"""Multimodal control from the command line: class/mask resampling and interpolation."""

import numpy as np
import pytest
from PIL import Image

from dpgan import DPGAN
from dpgan.cli import main


@pytest.fixture(scope="module")
def labels(tmp_path_factory):
    folder = tmp_path_factory.mktemp("labels")
    ids = np.zeros((32, 64), dtype=np.uint8)
    ids[16:] = 1
    ids[8:24, 24:40] = 3
    Image.fromarray(ids, mode="L").save(folder / "street.png")
    return folder


def _read(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_resample_class_writes_named_images_equal_to_the_api(tiny_run, labels, tmp_path):
    model = DPGAN.from_checkpoint(tiny_run, "cpu")
    name = model.info.class_names[3]
    args = ["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--out", str(tmp_path),
            "--seed", "2", "--resample-class", name, "--new-seed", "5", "--num-samples", "2", "--device", "cpu"]
    assert main(args) == 0
    ids = np.asarray(Image.open(labels / "street.png")).astype(np.int64)
    for new in (5, 6):
        got = _read(tmp_path / f"street_seed2_{name}_seed{new}.png")
        np.testing.assert_array_equal(got, model.resample(ids, 2, new, class_id=3))
    assert main(args) == 2  # existing outputs are not replaced without --overwrite


def test_resample_mask_and_interpolation(tiny_run, labels, tmp_path):
    model = DPGAN.from_checkpoint(tiny_run, "cpu")
    ids = np.asarray(Image.open(labels / "street.png")).astype(np.int64)
    mask = np.zeros((32, 64), dtype=np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask, mode="L").save(tmp_path / "mask.png")
    base = ["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--device", "cpu"]
    assert main([*base, "--out", str(tmp_path / "m"), "--resample-mask", str(tmp_path / "mask.png")]) == 0
    np.testing.assert_array_equal(_read(tmp_path / "m" / "street_seed0_mask_seed1.png"),
                                  model.resample(ids, 0, 1, mask=mask > 0))
    assert main([*base, "--out", str(tmp_path / "i"), "--interpolate-to", "4", "--steps", "3"]) == 0
    walk = [_read(tmp_path / "i" / f"street_seed0_to4_{i}of3.png") for i in range(3)]
    np.testing.assert_array_equal(walk[0], model.generate(ids, seed=0)[0])
    np.testing.assert_array_equal(walk[2], model.generate(ids, seed=4)[0])


def test_conflicting_or_unknown_choices_are_one_error_line(tiny_run, labels, tmp_path, capsys):
    base = ["synthesize", "--checkpoint", str(tiny_run), "--labels", str(labels), "--out", str(tmp_path / "o"),
            "--device", "cpu"]
    assert main([*base, "--resample-class", "unicorn"]) == 2
    assert "unknown class 'unicorn'" in capsys.readouterr().err
    assert main([*base, "--resample-class", "1", "--interpolate-to", "3"]) == 2
    assert "choose one of" in capsys.readouterr().err
    Image.fromarray(np.zeros((32, 64), dtype=np.uint8), mode="L").save(tmp_path / "empty.png")
    assert main([*base, "--resample-mask", str(tmp_path / "empty.png")]) == 2
    assert "mask is empty" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
