"""Dataset name -> loader. The only place that turns data settings into a Dataset.

Every dataset describes itself (`dataset_info`): the model is sized from that, and nothing in
a loader writes back into the config.
"""

from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from dpgan.data.info import DatasetInfo
from dpgan.data.io import Pairing
from dpgan.data.settings import DataSettings
from dpgan.data.transforms import PairedTransform, RandomFlip
from dpgan.errors import DataError, DPGANError
from dpgan.names import DATASETS

SPLITS = ("train", "val")

# What --data-root must point at, per dataset (for the "needs --data-root" error).
_ROOT_HINTS = {
    "cityscapes": "the folder that holds leftImg8bit/ and gtFine/",
    "ade20k": "the ADEChallengeData2016 folder (images/, annotations/) or the folder holding it",
    "ade20k-outdoor": "the ADEChallengeData2016 folder (images/, annotations/) or the folder holding it",
    "coco-stuff": "the folder that holds images/{train2017,val2017} and annotations/{train2017,val2017}",
    "folder": "a folder with classes.json and train/{images,labels} (and val/...)",
}


def _check_name(cfg: DataSettings) -> str:
    if cfg.dataset not in DATASETS:
        raise DPGANError(f"unknown dataset {cfg.dataset!r}; choose one of {sorted(DATASETS)}")
    return cfg.dataset


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DPGANError(f"unknown split {split!r}; use one of {SPLITS}")


def data_root(cfg: DataSettings) -> Path:
    """The dataset folder of a real dataset, checked to exist."""
    name = _check_name(cfg)
    if name == "synthetic-streets":
        raise DPGANError("dataset synthetic-streets is generated in memory and has no folder")
    if cfg.root is None:
        raise DPGANError(f"dataset {name} needs --data-root PATH: {_ROOT_HINTS[name]}")
    root = Path(cfg.root).expanduser()
    if not root.is_dir():
        raise DataError(f"--data-root {root}: folder not found (dataset {name})")
    return root


def _synthetic(cfg: DataSettings, split: str, num_images: int | None = None) -> Dataset:
    if cfg.root is not None:
        raise DPGANError(
            "dataset synthetic-streets is generated in memory and takes no --data-root; for a folder "
            "of pairs (e.g. one written by `dpgan make-synthetic`) use the dataset 'folder'"
        )
    from dpgan.data.synthetic import SyntheticStreets

    return SyntheticStreets(
        split=split, height=cfg.height, width=cfg.width,
        num_images=num_images or (cfg.num_train if split == "train" else cfg.num_val), seed=cfg.synthetic_seed,
    )


def dataset_info(cfg: DataSettings) -> DatasetInfo:
    """The label space of the configured dataset, without scanning its files."""
    name = _check_name(cfg)
    if name == "synthetic-streets":
        return _synthetic(cfg, "val", num_images=1).info
    if name == "cityscapes":
        from dpgan.data.cityscapes import CITYSCAPES_INFO

        return CITYSCAPES_INFO
    if name in ("ade20k", "ade20k-outdoor"):
        from dpgan.data.ade20k import ADE20K_INFO, ADE20K_OUTDOOR_INFO

        return ADE20K_INFO if name == "ade20k" else ADE20K_OUTDOOR_INFO
    if name == "coco-stuff":
        from dpgan.data.coco_stuff import COCO_STUFF_INFO

        return COCO_STUFF_INFO
    from dpgan.data.folder import read_classes

    return read_classes(data_root(cfg))


def has_split(cfg: DataSettings, split: str) -> bool:
    """False only for 'val' of a folder that holds images/ and labels/ directly."""
    _check_split(split)
    if _check_name(cfg) != "folder":
        return True
    from dpgan.data.folder import split_dirs

    return split_dirs(data_root(cfg), split) is not None


def find_pairs(cfg: DataSettings, split: str) -> Pairing | None:
    """The files of a split matched by name, unmatched ones included (None: synthetic)."""
    _check_split(split)
    name = _check_name(cfg)
    if name == "synthetic-streets":
        return None
    root = data_root(cfg)
    if name == "cityscapes":
        from dpgan.data import cityscapes

        return cityscapes.find_pairs(root, split)
    if name == "ade20k":
        from dpgan.data import ade20k

        return ade20k.find_pairs(root, split)
    if name == "ade20k-outdoor":
        from dpgan.data import ade20k

        return ade20k.find_outdoor_pairs(root, split)
    if name == "coco-stuff":
        from dpgan.data import coco_stuff

        return coco_stuff.find_pairs(root, split)
    from dpgan.data import folder

    return folder.find_pairs(root, split, folder.read_classes(root).name)


def build_dataset(data_cfg: DataSettings, split: str, *, train: bool) -> Dataset:
    """The dataset of one split with the published preprocessing for `train` or evaluation."""
    _check_split(split)
    name = _check_name(data_cfg)
    if name == "synthetic-streets":
        base = _synthetic(data_cfg, split)
        # always wrapped in training, so that it takes the sampler's keyed indices
        return RandomFlip(base, probability=0.5 if data_cfg.flip else 0.0) if train else base
    root = data_root(data_cfg)
    transform = PairedTransform(data_cfg.height, data_cfg.width, data_cfg.load_height, data_cfg.load_width,
                                train=train, flip=data_cfg.flip)
    if name == "cityscapes":
        from dpgan.data.cityscapes import CityscapesDataset

        return CityscapesDataset(root, split, transform=transform)
    if name == "ade20k":
        from dpgan.data.ade20k import ADE20KDataset

        return ADE20KDataset(root, split, transform=transform)
    if name == "ade20k-outdoor":
        from dpgan.data.ade20k import ADE20KOutdoorDataset

        return ADE20KOutdoorDataset(root, split, transform=transform)
    if name == "coco-stuff":
        from dpgan.data.coco_stuff import COCOStuffDataset

        return COCOStuffDataset(root, split, transform=transform)
    from dpgan.data.folder import FolderDataset

    return FolderDataset(root, split, transform=transform)
