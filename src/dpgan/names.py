"""Names the command line offers before anything heavy is imported.

`dpgan --help` and `dpgan <command> --help` build every parser; their choice lists and help texts
come from here (and from config.py), so that answering them imports neither torch nor numpy.
The modules that use these names import them from here.
"""

from __future__ import annotations

# Datasets dpgan reads (dpgan.data.registry), and those the published DP_GAN/OASIS code trained on
# (dpgan.inference.convert).
DATASETS = frozenset({"synthetic-streets", "cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff", "folder"})
PUBLISHED_DATASETS = ("cityscapes", "ade20k", "ade20k-outdoor", "coco-stuff")

# `dpgan convert --from`: which published code trained a checkpoint; its default --z_dim.
CONVERT_KINDS = ("dpgan", "oasis")
PUBLISHED_Z_DIM = 64

# Released weight files the evaluation reads (nothing is ever downloaded).
FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
DRN_WEIGHTS_NAME = "drn-d-105_ms_cityscapes.pth"
UPERNET_ENCODER_NAME = "encoder_epoch_50.pth"
UPERNET_DECODER_NAME = "decoder_epoch_50.pth"
DEEPLAB_WEIGHTS_NAME = "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
# Feature sizes pytorch-fid offers (its `--dims`) -> index of the Inception block that produces them.
FID_BLOCK_INDEX_BY_DIMS: dict[int, int] = {64: 0, 192: 1, 768: 2, 2048: 3}
