"""Pretrained segmenters that judge generated images (docs/evaluation.md 2.2, 2.4, 2.5).

Each is built at random init and filled from the released weights with `from_file`; each
`predict(images, value_range)` returns class ids at the input size.
"""

from dpgan.evaluate.segmenters.base import Segmenter, to_unit_range
from dpgan.evaluate.segmenters.deeplab import DEEPLAB_WEIGHTS_NAME, DeepLabV2
from dpgan.evaluate.segmenters.drn import DRN_WEIGHTS_NAME, DRNSeg
from dpgan.evaluate.segmenters.upernet import (
    UPERNET_DECODER_NAME,
    UPERNET_ENCODER_NAME,
    UperNet101,
)

__all__ = [
    "DEEPLAB_WEIGHTS_NAME",
    "DRN_WEIGHTS_NAME",
    "UPERNET_DECODER_NAME",
    "UPERNET_ENCODER_NAME",
    "DRNSeg",
    "DeepLabV2",
    "Segmenter",
    "UperNet101",
    "to_unit_range",
]
