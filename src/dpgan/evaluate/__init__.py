"""Evaluation of generated images as SPADE, OASIS and DP-GAN report it (docs/evaluation.md).

- `fid`: FID (and KID) with pytorch-fid semantics on the TF Inception (`inception`).
- `segmentation`: confusion-matrix mIoU, pixel accuracy and obj-mIoU, Cityscapes id tables.
- `segmenters`: DRN-D-105 (Cityscapes), UperNet-101 (ADE20K), DeepLab-v2 (COCO-Stuff).
- `weights`: strict loading of the released weight files; nothing is ever downloaded.
"""

from dpgan.evaluate.fid import (
    KID,
    FIDStats,
    fid_from_stats,
    frechet_distance,
    inception_activations,
    kernel_inception_distance,
    stats_of_folder,
    stats_of_images,
)
from dpgan.evaluate.inception import FID_WEIGHTS_NAME, FIDInceptionV3
from dpgan.evaluate.segmentation import (
    CITYSCAPES_OBJECT_TRAIN_IDS,
    CITYSCAPES_TRAIN_ID_NAMES,
    MIOU_POLICY_BY_DATASET,
    ConfusionMatrix,
    SegmentationScores,
    cityscapes_label_to_train_id,
    shift_out_dont_care,
)
from dpgan.evaluate.weights import load_into, load_state_dict_file

__all__ = [
    "CITYSCAPES_OBJECT_TRAIN_IDS",
    "CITYSCAPES_TRAIN_ID_NAMES",
    "FID_WEIGHTS_NAME",
    "KID",
    "MIOU_POLICY_BY_DATASET",
    "ConfusionMatrix",
    "FIDInceptionV3",
    "FIDStats",
    "SegmentationScores",
    "cityscapes_label_to_train_id",
    "fid_from_stats",
    "frechet_distance",
    "inception_activations",
    "kernel_inception_distance",
    "load_into",
    "load_state_dict_file",
    "shift_out_dont_care",
    "stats_of_folder",
    "stats_of_images",
]
