"""The embedded dataset: deterministic, street-like, multi-scale, many appearances per layout."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from dpgan.data.folder import FolderDataset
from dpgan.data.info import DatasetInfo
from dpgan.data.synthetic import SYNTHETIC_STREETS, SyntheticStreets, write_synthetic
from dpgan.data.synthetic_render import CAR, PERSON, ROAD, SKY, generate_layout, generate_scene, render_image
from dpgan.errors import DPGANError


def test_deterministic_and_seed_dependent():
    a, b = generate_scene(3, 64, 128), generate_scene(3, 64, 128)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], generate_scene(4, 64, 128)[0])


@pytest.mark.parametrize("size", [(32, 64), (64, 128), (128, 256)])
def test_shapes_dtypes_and_ids(size):
    label, image = generate_scene(1, *size)
    assert label.shape == size and label.dtype == np.uint8
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert label.max() < SYNTHETIC_STREETS.num_classes


def test_at_least_ten_classes_and_street_structure():
    labels = [generate_scene(s, 64, 128)[0] for s in range(20)]
    seen = set(np.unique(np.stack(labels)).tolist())
    assert SYNTHETIC_STREETS.num_classes >= 10 and len(seen) >= 10
    for lab in labels:  # sky above, road below
        assert (lab[0] == SKY).mean() > 0.1 and (lab[-1] == ROAD).mean() > 0.2


def _instance_heights(label, cls):
    comps, n = ndimage.label(label == cls)
    return [s[0].stop - s[0].start for s in ndimage.find_objects(comps)] if n else []


def test_object_sizes_vary_by_more_than_ten_times_and_small_objects_are_common():
    heights, with_small = [], 0
    for s in range(50):
        lab = generate_layout(s, 128, 256).label
        heights += _instance_heights(lab, CAR) + _instance_heights(lab, PERSON)
        comps, n = ndimage.label(np.isin(lab, SYNTHETIC_STREETS.small_object_classes))
        areas = np.bincount(comps.ravel())[1:]
        with_small += bool((areas < 0.01 * lab.size).any())
    assert max(heights) / min(heights) > 10
    assert with_small >= 35  # >= 70% of scenes hold a small object (< 1% of the image)


def test_one_layout_many_appearances():
    scene = generate_layout(5, 64, 128)
    a, b = render_image(scene, 1), render_image(scene, 2)
    assert not np.array_equal(a, b)
    assert np.array_equal(scene.label, generate_layout(5, 64, 128).label)
    sky = a[scene.label == SKY].mean(0)
    road = a[scene.label == ROAD].mean(0)
    assert np.abs(sky - road).sum() > 30  # classes look different


def test_dataset_items_follow_the_contract():
    ds = SyntheticStreets("val", height=32, width=64, num_images=3, seed=1)
    item = ds[2]
    assert len(ds) == 3 and ds.info is SYNTHETIC_STREETS
    assert item["image"].shape == (3, 32, 64) and item["image"].min() >= -1 and item["image"].max() <= 1
    assert item["label"].dtype == torch.long and item["name"] == "val_00002"
    train = SyntheticStreets("train", height=32, width=64, num_images=3, seed=1)
    assert not torch.equal(train[2]["label"], item["label"])  # splits are disjoint
    with pytest.raises(IndexError):
        ds[3]
    # the same label map rendered otherwise: what two images of one map may look like
    other = ds.other_appearance(2)
    assert other.shape == item["image"].shape and other.min() >= -1 and other.max() <= 1
    assert torch.equal(other, ds.other_appearance(2)) and not torch.equal(other, item["image"])


def test_write_synthetic_round_trips_through_the_folder_loader(tmp_path):
    out = write_synthetic(tmp_path / "s", height=32, width=64, num_train=3, num_val=2, progress=False)
    assert DatasetInfo.from_dict(json.loads((out / "classes.json").read_text())) == SYNTHETIC_STREETS
    folder = FolderDataset(out, "val")
    mem = SyntheticStreets("val", height=32, width=64, num_images=2)
    for i in range(2):
        assert torch.equal(folder[i]["label"], mem[i]["label"])
        assert torch.allclose(folder[i]["image"], mem[i]["image"])
    assert len(list((out / "train" / "images").iterdir())) == 3
    # writing again over our own output is fine; over anything else it is refused
    write_synthetic(out, height=32, width=64, num_train=1, num_val=1, progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(DPGANError, match="not an earlier synthetic-streets folder"):
        write_synthetic(foreign, num_train=1, num_val=1, progress=False)
    assert (foreign / "thesis.tex").read_text() == "precious"
    assert np.asarray(Image.open(out / "val" / "labels" / "val_00000.png")).max() < 12
