"""Miniature Cityscapes / ADE20K / ADE20K-outdoor / COCO-Stuff trees with the real encodings."""

import sys
import types
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dpgan.config import DataConfig
from dpgan.presets import preset
from dpgan.data import ade20k, cityscapes, coco_stuff
from dpgan.data.registry import DATASETS, build_dataset, dataset_info, find_pairs
from dpgan.data.transforms import RandomFlip
from dpgan.errors import DataError, DPGANError

H, W = 16, 32


def save(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def rand_image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def make_cityscapes(root: Path) -> Path:
    for split, cities in (("train", ("aachen", "bonn")), ("val", ("lindau",))):
        for city in cities:
            for k in range(2):
                stem = f"{city}_{k:06d}_000019"
                save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rand_image(k))
                gt = root / "gtFine" / split / city
                ids = np.where(np.arange(W) % 2 == 0, 26, 7 + k).astype(np.uint8)  # car stripes on road/sidewalk
                save(gt / f"{stem}_gtFine_labelIds.png", np.broadcast_to(ids, (H, W)).copy())
                save(gt / f"{stem}_gtFine_color.png", rand_image(9))  # other gtFine files are ignored
                save(gt / f"{stem}_gtFine_instanceIds.png", np.full((H, W), 26001, np.uint16))
                (gt / f"{stem}_gtFine_polygons.json").write_text("{}")
    return root


def make_ade(root: Path, labels: dict[str, np.ndarray] | None = None) -> Path:
    labels = labels or {f"ADE_train_{i:08d}": np.full((H, W), i * 50, np.uint8) for i in (1, 2, 3)}
    for stem, lab in labels.items():
        folder = "training" if "train" in stem else "validation"
        save(root / "images" / folder / f"{stem}.jpg", rand_image(len(stem)))
        save(root / "annotations" / folder / f"{stem}.png", lab)
    (root / "images" / "validation").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "validation").mkdir(parents=True, exist_ok=True)
    return root


# --- Cityscapes ----------------------------------------------------------------------------------

def test_cityscapes_label_space_and_train_ids():
    info = cityscapes.CITYSCAPES_INFO
    assert info.num_classes == 35 and info.ignore_index == 0
    assert info.class_names[7] == "road" and info.class_names[26] == "car" and info.class_names[34] == "license plate"
    assert info.colors[7] == (128, 64, 128) and info.colors[23] == (70, 130, 180)
    assert [info.class_names[i] for i in info.small_object_classes] == [
        "pole", "traffic light", "traffic sign", "person", "rider", "car", "truck", "bus", "train",
        "motorcycle", "bicycle"]
    assert cityscapes.TRAIN_ID_NAMES[:3] == ("road", "sidewalk", "building") and len(cityscapes.TRAIN_ID_NAMES) == 19
    assert cityscapes.TRAIN_ID_NAMES[-1] == "bicycle"
    ids = np.array([[0, 7, 8, 11, 33, 34, 9]])
    assert cityscapes.to_train_ids(ids).tolist() == [[255, 0, 1, 2, 18, 255, 255]]
    assert cityscapes.to_train_ids(torch.tensor(ids)).tolist() == [[255, 0, 1, 2, 18, 255, 255]]


def test_cityscapes_pairs_official_layout_and_keeps_label_ids(tmp_path):
    root = make_cityscapes(tmp_path / "cs")
    ds = cityscapes.CityscapesDataset(root, "train")
    assert len(ds) == 4 and [ds.name_of(i) for i in range(4)] == [
        "aachen_000000_000019", "aachen_000001_000019", "bonn_000000_000019", "bonn_000001_000019"]
    assert all(lab.name.endswith("_gtFine_labelIds.png") for _, lab in ds.files)
    item = ds[1]
    assert item["name"] == "aachen_000001_000019"
    assert item["label"].unique().tolist() == [8, 26] and item["label"][:, 0].unique().tolist() == [26]
    assert len(cityscapes.CityscapesDataset(root, "val")) == 2


def test_cityscapes_preset_resizes_to_256x512(tmp_path):
    root = make_cityscapes(tmp_path / "cs")
    cfg = replace(preset("cityscapes").data, root=str(root))
    train, val = build_dataset(cfg, "train", train=True), build_dataset(cfg, "val", train=False)
    assert train[0]["image"].shape == (3, 256, 512) and train[0]["label"].shape == (256, 512)
    want = np.asarray(Image.open(val.files[0][1]).resize((512, 256), Image.Resampling.NEAREST))
    assert np.array_equal(val[0]["label"].numpy(), want)


def test_cityscapes_missing_folders_are_named_exactly(tmp_path):
    root = tmp_path / "cs"
    (root / "leftImg8bit" / "train").mkdir(parents=True)
    cfg = DataConfig(dataset="cityscapes", root=str(root))
    with pytest.raises(DataError, match=rf"folder {root / 'gtFine' / 'train'} not found"):
        build_dataset(cfg, "train", train=True)
    with pytest.raises(DataError, match=rf"folder {root / 'leftImg8bit' / 'val'} not found"):
        build_dataset(cfg, "val", train=False)
    with pytest.raises(DPGANError, match="dataset cityscapes needs --data-root PATH: the folder that holds leftImg8bit"):
        build_dataset(DataConfig(dataset="cityscapes"), "train", train=True)


# --- ADE20K and the outdoor subset ---------------------------------------------------------------

def test_ade20k_label_space():
    info = ade20k.ADE20K_INFO
    assert info.num_classes == 151 and info.ignore_index == 0 and info.class_names[0] == "other"
    assert (info.class_names[1], info.class_names[3], info.class_names[13], info.class_names[150]) == (
        "wall", "sky", "person", "flag")
    assert len(set(info.class_names)) == 151 and info.colors[1] == (120, 120, 120)
    assert ade20k.ADE20K_OUTDOOR_INFO.name == "ade20k-outdoor"
    assert ade20k.ADE20K_OUTDOOR_INFO.class_names == info.class_names


def test_ade20k_pairs_jpg_with_png_and_keeps_ids(tmp_path):
    root = make_ade(tmp_path / "ade")
    ds = ade20k.ADE20KDataset(root, "train")
    assert [ds[i]["name"] for i in range(3)] == ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000003"]
    assert ds[2]["label"].unique().tolist() == [150]
    save(root / "annotations" / "training" / "ADE_train_00000002.png", np.full((H, W), 151, np.uint8))
    with pytest.raises(DataError, match=r"ADE_train_00000002\.png: label ids 151 are out of range"):
        ds[1]
    with pytest.raises(DataError, match=r"no image/label pairs found"):
        ade20k.ADE20KDataset(root, "val")


def test_ade20k_root_may_be_the_folder_holding_the_release(tmp_path):
    make_ade(tmp_path / "unpacked" / "ADEChallengeData2016")
    for root in (tmp_path / "unpacked", tmp_path / "unpacked" / "ADEChallengeData2016"):
        cfg = DataConfig(dataset="ade20k", root=str(root), height=H, width=W)
        assert len(find_pairs(cfg, "train").pairs) == 3
    assert ade20k.outdoor_list_file(tmp_path / "unpacked", "train").parent.name == "ADEChallengeData2016"
    with pytest.raises(DataError, match="ADEChallengeData2016/images"):  # neither level holds it
        ade20k.find_pairs(tmp_path, "train")


def test_ade20k_preset_crops_286_to_256_in_training_only(tmp_path):
    root = make_ade(tmp_path / "ade")
    cfg = replace(preset("ade20k").data, root=str(root))
    train = build_dataset(cfg, "train", train=True)
    val_cfg_ds = build_dataset(cfg, "train", train=False)
    assert train.transform.resize_size() == (286, 286) and val_cfg_ds.transform.resize_size() == (256, 256)
    assert train[0]["image"].shape == (3, 256, 256) and val_cfg_ds[0]["label"].shape == (256, 256)


def outdoor_tree(root: Path) -> Path:
    def lab(*ids: int) -> np.ndarray:
        arr = np.full((H, W), 1, np.uint8)  # wall
        for k, i in enumerate(ids):
            arr[k, :] = i
        return arr

    return make_ade(root, {
        "ADE_train_00000001": lab(3),       # sky -> outdoor
        "ADE_train_00000002": lab(3, 6),    # sky + ceiling -> indoor
        "ADE_train_00000003": lab(),        # wall only -> not selected
        "ADE_train_00000004": lab(17, 14),  # mountain + earth -> outdoor
        "ADE_train_00000005": lab(14, 48),  # earth + sink -> indoor
        "ADE_val_00000001": lab(3, 8),      # sky + bed -> indoor
        "ADE_val_00000002": lab(17),        # mountain -> outdoor
    })


def test_outdoor_rule_is_shipped_data_and_selects_by_class_presence(tmp_path, monkeypatch):
    monkeypatch.setenv("DPGAN_CACHE_DIR", str(tmp_path / "cache"))
    rule = ade20k.OUTDOOR_RULE
    assert set(rule["include_any"].values()) == {"sky", "mountain", "earth"}
    assert set(rule["exclude_any"].values()) == {"ceiling", "bed", "sink"}
    assert "OASIS" in rule["source"] and "NOT the canonical list" in rule["name"]
    for i, n in {**rule["include_any"], **rule["exclude_any"]}.items():
        assert ade20k.ADE20K_INFO.class_names[int(i)] == n  # ids and names agree
    root = outdoor_tree(tmp_path / "ade")
    train = ade20k.ADE20KOutdoorDataset(root, "train")
    assert [img.stem for img, _ in train.files] == ["ADE_train_00000001", "ADE_train_00000004"]
    assert train.info.name == "ade20k-outdoor"
    val = build_dataset(DataConfig(dataset="ade20k-outdoor", root=str(root), height=8, width=8), "val", train=False)
    assert [img.stem for img, _ in val.files] == ["ADE_val_00000002"]
    # the selection is cached: a second listing reads no annotation
    assert list((tmp_path / "cache" / "ade20k-outdoor").glob("*.txt"))
    monkeypatch.setattr(ade20k, "load_label_file", lambda p: (_ for _ in ()).throw(AssertionError(p)))
    assert len(ade20k.ADE20KOutdoorDataset(root, "train")) == 2


def test_outdoor_explicit_list_overrides_the_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("DPGAN_CACHE_DIR", str(tmp_path / "cache"))
    root = outdoor_tree(tmp_path / "ade")
    (root / "ade20k_outdoor_train.txt").write_text("# my list\nADE_train_00000003.jpg\nADE_train_00000002\n")
    ds = ade20k.ADE20KOutdoorDataset(root, "train")
    assert [img.stem for img, _ in ds.files] == ["ADE_train_00000002", "ADE_train_00000003"]
    own = tmp_path / "mine.txt"
    own.write_text("images/training/ADE_train_00000005.jpg\n")
    assert [i.stem for i, _ in ade20k.ADE20KOutdoorDataset(root, "train", file_list=own).files] == ["ADE_train_00000005"]
    own.write_text("ADE_train_00000009\n")
    with pytest.raises(DataError, match=r"mine\.txt: 1 listed images are not in the ADE20K split .*00000009"):
        ade20k.ADE20KOutdoorDataset(root, "train", file_list=own)
    with pytest.raises(DataError, match="file list not found"):
        ade20k.ADE20KOutdoorDataset(root, "train", file_list=tmp_path / "absent.txt")


# --- COCO-Stuff ----------------------------------------------------------------------------------

def test_coco_stuff_label_space():
    info = coco_stuff.COCO_STUFF_INFO
    assert info.num_classes == 183 and info.ignore_index == 0 and info.name == "coco-stuff"
    assert (info.class_names[0], info.class_names[1], info.class_names[12], info.class_names[182]) == (
        "unlabeled", "person", "street sign", "wood")
    assert len(set(info.colors)) == 183


@pytest.mark.parametrize("layout", [0, 1, 2])
def test_coco_stuff_layouts_and_value_shift(tmp_path, layout):
    root = tmp_path / "coco"
    images, labels = coco_stuff.layouts(root, "val")[layout]
    save(images / "000000000139.jpg", rand_image(0))
    raw = np.zeros((H, W), np.uint8)
    raw[0], raw[1], raw[2] = 255, 181, 90
    save(labels / "000000000139.png", raw)
    ds = build_dataset(DataConfig(dataset="coco-stuff", root=str(root), height=H, width=W), "val", train=False)
    assert ds.files == [(images / "000000000139.jpg", labels / "000000000139.png")]
    label = ds[0]["label"]
    assert label[0].unique().tolist() == [0] and label[1].unique().tolist() == [182]
    assert label[2].unique().tolist() == [91] and label[3].unique().tolist() == [1]


def test_coco_stuff_missing_layout_names_the_readme_folders(tmp_path):
    (tmp_path / "coco").mkdir()
    with pytest.raises(DataError, match=rf"folder {tmp_path / 'coco' / 'images' / 'train2017'} not found"):
        coco_stuff.COCOStuffDataset(tmp_path / "coco", "train")
    (tmp_path / "coco" / "train2017").mkdir()  # half of layout 2: name its missing half
    with pytest.raises(DataError, match="stuffthingmaps_trainval2017/train2017 not found"):
        coco_stuff.COCOStuffDataset(tmp_path / "coco", "train")


# --- registry --------------------------------------------------------------------------------------

def test_registry_describes_datasets_without_files():
    assert DATASETS == {"synthetic-streets", "cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff", "folder"}
    sizes = {name: dataset_info(DataConfig(dataset=name)).num_classes
             for name in ("cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff")}
    assert sizes == {"cityscapes": 35, "ade20k": 151, "ade20k-outdoor": 151, "coco-stuff": 183}
    with pytest.raises(DPGANError, match="unknown dataset 'mnist'"):
        dataset_info(DataConfig(dataset="mnist"))


def test_registry_builds_synthetic_streets_lazily_with_flips_for_training(monkeypatch):
    calls = []

    class FakeStreets(torch.utils.data.Dataset):
        info = cityscapes.CITYSCAPES_INFO

        def __init__(self, *, split, height, width, num_images, seed):
            calls.append((split, height, width, num_images, seed))
            self.n = num_images

        def __len__(self):
            return self.n

        def __getitem__(self, i):
            return {"image": torch.zeros(3, 4, 8), "label": torch.zeros(4, 8, dtype=torch.long), "name": str(i)}

    monkeypatch.setitem(sys.modules, "dpgan.data.synthetic", types.SimpleNamespace(SyntheticStreets=FakeStreets))
    cfg = DataConfig(num_train=7, num_val=3, synthetic_seed=5, height=4, width=8)
    train, val = build_dataset(cfg, "train", train=True), build_dataset(cfg, "val", train=False)
    assert isinstance(train, RandomFlip) and isinstance(val, FakeStreets)
    assert calls == [("train", 4, 8, 7, 5), ("val", 4, 8, 3, 5)]
    assert len(train) == 7 and train.info is FakeStreets.info and find_pairs(cfg, "train") is None
    no_flip = build_dataset(replace(cfg, flip=False), "train", train=True)
    assert no_flip.probability == 0.0  # still wrapped: it takes the sampler's keyed indices
    assert torch.equal(no_flip[(0, 123)]["image"], torch.zeros(3, 4, 8))
    assert dataset_info(cfg) is FakeStreets.info
    with pytest.raises(DPGANError, match="takes no --data-root.*use the dataset 'folder'"):
        build_dataset(replace(cfg, root="/some/folder"), "train", train=True)
