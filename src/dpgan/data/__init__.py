"""Datasets. Every dataset item is a dict:

    {"image": FloatTensor (3, H, W) in [-1, 1], "label": LongTensor (H, W), "name": str}

and every dataset object has an `info` attribute (`DatasetInfo`) describing its label space.
"""

from dpgan.data.info import DatasetInfo

__all__ = ["DatasetInfo"]
