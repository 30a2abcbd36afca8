"""The FID Inception-v3: pytorch-fid's port of the TensorFlow graph used by TTUR (docs/evaluation.md 1.2).

Published FIDs (SPADE, OASIS, DP-GAN) were measured with pytorch-fid, whose network is
torchvision's Inception-v3 with 1008 classes and four patched block types. The patches are
what make it the *TensorFlow* network: TF's 3x3 average pool ignores the zero padding, and
the last block of the TF graph max-pools in its pool branch. Using torchvision's network
(count_include_pad=True, average pool everywhere) would give different features and FIDs that
cannot be compared with papers.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.inception import InceptionA, InceptionC, InceptionE

from dpgan.evaluate.weights import load_into, load_state_dict_file
from dpgan.names import FID_BLOCK_INDEX_BY_DIMS, FID_WEIGHTS_NAME

FID_WEIGHTS_SHA256_PREFIX = "6726825d"
FID_INPUT_SIZE = 299
BLOCK_INDEX_BY_DIMS = FID_BLOCK_INDEX_BY_DIMS  # pytorch-fid's `--dims` -> index of the block producing them


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's padded 3x3 average: border windows average only the real pixels."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class TFInceptionA(InceptionA):
    """Mixed_5b/5c/5d with the TF pool branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b5, b3, bp], dim=1)


class TFInceptionC(InceptionC):
    """Mixed_6b..6e with the TF pool branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for conv in (
            self.branch7x7dbl_1,
            self.branch7x7dbl_2,
            self.branch7x7dbl_3,
            self.branch7x7dbl_4,
            self.branch7x7dbl_5,
        ):
            bd = conv(bd)
        bp = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([b1, b7, bd, bp], dim=1)


class TFInceptionE(InceptionE):
    """Mixed_7b (`max_pool=False`) and Mixed_7c (`max_pool=True`, the TF graph's quirk)."""

    def __init__(self, in_channels: int, max_pool: bool) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        s3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s3), self.branch3x3_2b(s3)], dim=1)
        sd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(sd), self.branch3x3dbl_3b(sd)], dim=1)
        if self.max_pool:
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        bp = self.branch_pool(pooled)
        return torch.cat([b1, b3, bd, bp], dim=1)


class FIDInceptionV3(nn.Module):
    """Images in [0, 1] (N x 3 x H x W, any size) -> pool3 features (N x dims).

    Submodules carry torchvision's names, so the state dict has exactly the keys of the
    released `pt_inception-2015-12-05-6726825d.pth` (including the unused 1008-way `fc`,
    kept so that strict loading can recognise the FID variant by its shape).
    Inside, as pytorch-fid does: bilinear resize to 299x299 (align_corners=False, no
    antialias, aspect ratio not kept), then 2x - 1, then the blocks up to the one giving
    `dims` features, then a global average pool.
    """

    def __init__(self, dims: int = 2048, resize_input: bool = True) -> None:
        super().__init__()
        if dims not in BLOCK_INDEX_BY_DIMS:
            raise ValueError(f"dims must be one of {sorted(BLOCK_INDEX_BY_DIMS)}, got {dims}")
        self.dims = dims
        self.resize_input = resize_input
        self.last_block = BLOCK_INDEX_BY_DIMS[dims]
        self.weights_sha256: str | None = None  # set by from_file; recorded with FID stats

        net = torchvision.models.inception_v3(
            weights=None, aux_logits=False, num_classes=1008, init_weights=False
        )
        net.Mixed_5b = TFInceptionA(192, pool_features=32)
        net.Mixed_5c = TFInceptionA(256, pool_features=64)
        net.Mixed_5d = TFInceptionA(288, pool_features=64)
        net.Mixed_6b = TFInceptionC(768, channels_7x7=128)
        net.Mixed_6c = TFInceptionC(768, channels_7x7=160)
        net.Mixed_6d = TFInceptionC(768, channels_7x7=160)
        net.Mixed_6e = TFInceptionC(768, channels_7x7=192)
        net.Mixed_7b = TFInceptionE(1280, max_pool=False)
        net.Mixed_7c = TFInceptionE(2048, max_pool=True)
        for name, child in net.named_children():
            self.add_module(name, child)

        self.blocks: list[list[nn.Module]] = [
            [self.Conv2d_1a_3x3, self.Conv2d_2a_3x3, self.Conv2d_2b_3x3, self.maxpool1],
            [self.Conv2d_3b_1x1, self.Conv2d_4a_3x3, self.maxpool2],
            [
                self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a,
                self.Mixed_6b, self.Mixed_6c, self.Mixed_6d, self.Mixed_6e,
            ],
            [self.Mixed_7a, self.Mixed_7b, self.Mixed_7c, self.avgpool],
        ]  # fmt: skip
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images
        if self.resize_input:
            x = F.interpolate(
                x, size=(FID_INPUT_SIZE, FID_INPUT_SIZE), mode="bilinear", align_corners=False
            )
        x = 2 * x - 1
        for block in self.blocks[: self.last_block + 1]:
            for layer in block:
                x = layer(x)
        if x.shape[2:] != (1, 1):
            x = F.adaptive_avg_pool2d(x, output_size=(1, 1))
        return x.flatten(1)

    @classmethod
    def from_file(cls, path: str | Path | None, dims: int = 2048) -> FIDInceptionV3:
        """Build the network and fill it from `pt_inception-2015-12-05-6726825d.pth`."""
        state_dict, sha256 = load_state_dict_file(
            path,
            network="FID Inception",
            option="--inception-weights",
            expected_name=FID_WEIGHTS_NAME,
            sha256_prefix=FID_WEIGHTS_SHA256_PREFIX,
        )
        model = cls(dims=dims)
        load_into(model, state_dict, source=str(path))
        model.weights_sha256 = sha256
        return model.eval()
