"""The custom folder layout: classes.json, split and flat layouts, colour labels, item errors."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.config import DataConfig
from dpgan.data.folder import FolderDataset, has_split, read_classes
from dpgan.data.info import DatasetInfo
from dpgan.data.registry import build_dataset, dataset_info, find_pairs
from dpgan.data.registry import has_split as registry_has_split
from dpgan.errors import DataError, DPGANError

INFO = DatasetInfo("streets", ("void", "road", "car", "tree"),
                   ((0, 0, 0), (128, 64, 128), (0, 0, 142), (107, 142, 35)), ignore_index=0,
                   small_object_classes=(2,))


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_folder(root: Path, splits=("train", "val"), n: int = 3, h: int = 16, w: int = 32,
                rgb_labels: bool = False, image_ext: str = ".png") -> Path:
    """The layout `dpgan make-synthetic` writes: classes.json + SPLIT/{images,labels}."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(INFO.to_json())
    rng = np.random.default_rng(0)
    for split in splits:
        base = root / split if split else root
        for k in range(n):
            label = rng.integers(0, INFO.num_classes, (h, w)).astype(np.uint8)
            save(base / "images" / f"scene{k:03d}{image_ext}", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            enc = np.array(INFO.colors, np.uint8)[label] if rgb_labels else label
            save(base / "labels" / f"scene{k:03d}.png", enc)
    return root


def cfg_for(root: Path, **kw) -> DataConfig:
    return DataConfig(dataset="folder", root=str(root), height=8, width=16, **kw)


def test_split_layout_items_follow_the_contract(tmp_path):
    root = make_folder(tmp_path / "ds")
    cfg = cfg_for(root)
    assert dataset_info(cfg) == INFO  # the dataset describes itself from classes.json
    train, val = build_dataset(cfg, "train", train=True), build_dataset(cfg, "val", train=False)
    assert len(train) == len(val) == 3 and train.info == INFO
    assert [p[0].name for p in train.files] == ["scene000.png", "scene001.png", "scene002.png"]
    item = val[1]
    assert set(item) == {"image", "label", "name"} and item["name"] == "scene001"
    assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 8, 16)
    assert item["label"].dtype == torch.int64 and item["label"].shape == (8, 16)
    assert -1 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    # eval: straight nearest resize of the file
    raw = np.asarray(Image.open(val.files[1][1]).resize((16, 8), Image.Resampling.NEAREST))
    assert np.array_equal(item["label"].numpy(), raw)


def test_native_size_without_transform_and_jpg_images(tmp_path):
    root = make_folder(tmp_path / "ds", image_ext=".jpg")
    ds = FolderDataset(root, "train")
    item = ds[0]
    assert item["image"].shape == (3, 16, 32) and item["label"].shape == (16, 32)
    assert np.array_equal(item["label"].numpy(), np.asarray(Image.open(ds.files[0][1])))


def test_rgb_labels_are_read_through_the_colour_table(tmp_path):
    ids_root = make_folder(tmp_path / "ids", splits=("train",))
    rgb_root = make_folder(tmp_path / "rgb", splits=("train",), rgb_labels=True)
    a, b = FolderDataset(ids_root, "train"), FolderDataset(rgb_root, "train")
    for i in range(3):
        assert torch.equal(a[i]["label"], b[i]["label"])
    bad = np.array(INFO.colors, np.uint8)[np.zeros((16, 32), np.uint8)]
    bad[3, 4] = (9, 9, 9)
    save(rgb_root / "train" / "labels" / "scene001.png", bad)
    with pytest.raises(DataError, match=r"scene001\.png: colour \(9, 9, 9\) is not in the colour table"):
        b[1]


def test_flat_layout_is_train_only_and_val_says_so(tmp_path):
    root = make_folder(tmp_path / "flat", splits=("",))
    cfg = cfg_for(root)
    assert len(build_dataset(cfg, "train", train=True)) == 3
    assert has_split(root, "train") and not has_split(root, "val") and not registry_has_split(cfg, "val")
    with pytest.raises(DataError, match="images/ and labels/ directly, which is the train split; it has no val split"):
        build_dataset(cfg, "val", train=False)


def test_classes_file_errors_and_defaults(tmp_path):
    root = make_folder(tmp_path / "ds", splits=("train",))
    (root / "classes.json").unlink()
    with pytest.raises(DataError, match=r"classes\.json: not found; a folder dataset needs a classes file"):
        FolderDataset(root, "train")
    (root / "classes.json").write_text("{not json")
    with pytest.raises(DataError, match=r"classes\.json: not a readable JSON file"):
        read_classes(root)
    (root / "classes.json").write_text(json.dumps({"class_names": ["a", "b"], "colors": [[1, 2, 3]]}))
    with pytest.raises(DataError, match=r"classes\.json: invalid classes file"):
        read_classes(root)
    (root / "classes.json").write_text(json.dumps({"class_names": ["bg", "a", "b", "c"], "ignore_index": 0}))
    info = read_classes(root)  # name from the folder, colours from the default palette
    assert info.name == "ds" and info.num_classes == 4 and len(set(info.colors)) == 4
    assert len(FolderDataset(root, "train")) == 3


def test_missing_root_and_split_folders_are_named(tmp_path):
    with pytest.raises(DPGANError, match="dataset folder needs --data-root PATH"):
        build_dataset(DataConfig(dataset="folder"), "train", train=True)
    with pytest.raises(DataError, match=r"--data-root .*nowhere: folder not found"):
        build_dataset(cfg_for(tmp_path / "nowhere"), "train", train=True)
    root = make_folder(tmp_path / "ds", splits=("train",))
    with pytest.raises(DataError, match=rf"folder {root / 'val' / 'images'} not found"):
        build_dataset(cfg_for(root), "val", train=False)
    with pytest.raises(DPGANError, match="unknown split 'test'"):
        build_dataset(cfg_for(root), "test", train=False)


def test_unmatched_stems_are_counted_with_examples(tmp_path):
    root = make_folder(tmp_path / "ds", splits=("train",))
    (root / "train" / "labels" / "scene002.png").unlink()
    save(root / "train" / "images" / "extra.png", np.zeros((16, 32, 3), np.uint8))
    with pytest.raises(DataError, match=r"2 images have no label .*scene002\.png"):
        FolderDataset(root, "train")
    pairing = find_pairs(cfg_for(root), "train")
    assert len(pairing.pairs) == 2 and len(pairing.images_without_label) == 2


def test_broken_files_fail_when_loaded_with_the_file_named(tmp_path):
    root = make_folder(tmp_path / "ds", splits=("train",))
    ds = FolderDataset(root, "train", transform=None)
    (root / "train" / "images" / "scene000.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"scene000\.png: cannot read this image file"):
        ds[0]
    save(root / "train" / "labels" / "scene001.png", np.full((16, 32), 9, np.uint8))
    with pytest.raises(DataError, match=r"scene001\.png: label ids 9 are out of range for dataset 'streets'"):
        ds[1]
    save(root / "train" / "labels" / "scene002.png", np.zeros((16, 30), np.uint8))
    with pytest.raises(DataError, match=r"scene002\.png: label is 30x16 .* is 32x16"):
        ds[2]


def test_training_items_are_cropped_and_flipped_consistently(tmp_path):
    root = make_folder(tmp_path / "ds", splits=("train",), n=1)
    # image = label colours, so alignment survives the crop and flip exactly
    label = np.asarray(Image.open(root / "train" / "labels" / "scene000.png"))
    save(root / "train" / "images" / "scene000.png", np.array(INFO.colors, np.uint8)[label])
    cfg = replace(cfg_for(root), load_height=16, load_width=32)
    ds = build_dataset(cfg, "train", train=True)
    colours = torch.tensor(INFO.colors, dtype=torch.float32) / 127.5 - 1
    for _ in range(10):
        item = ds[0]
        assert torch.allclose(item["image"].permute(1, 2, 0), colours[item["label"]], atol=1e-5)
