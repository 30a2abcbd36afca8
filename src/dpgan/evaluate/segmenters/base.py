"""What the three pretrained segmenters share: the `predict` contract and the ResNet bottleneck.

Each segmenter owns its preprocessing (normalisation, channel order, resize policy) so that a
caller only hands over generated images and gets class ids back at the same size; getting a
mean/std or BGR detail wrong silently costs many mIoU points.
"""

from __future__ import annotations

import torch
from torch import nn

from dpgan.errors import DPGANError


def to_unit_range(images: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
    """N x 3 x H x W images -> float32 in [0, 1]. uint8 is divided by 255 (`value_range` is
    then ignored); floats are mapped from `value_range` (generator output: (-1, 1)) and clamped,
    as saving them as 8-bit images would."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise DPGANError(f"Segmenters expect images of shape N x 3 x H x W, got {tuple(images.shape)}.")
    if images.dtype == torch.uint8:
        return images.float() / 255
    low, high = value_range
    return ((images.float() - low) / (high - low)).clamp(0, 1)


class Segmenter(nn.Module):
    """A pretrained segmentation network used as a judge of generated images."""

    num_classes: int
    class_names: tuple[str, ...]

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] (N x 3 x H x W) -> per-class scores N x C x H x W at input size."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)
    ) -> torch.Tensor:
        """Class-id map (N x H x W, int64) of images in `value_range` (or uint8)."""
        device = next(self.parameters()).device
        x = to_unit_range(images, value_range).to(device)
        return self.class_scores(x).argmax(dim=1)


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride and dilation on the 3x3 conv), as in fyu/drn and
    mit_semseg; submodule names match their checkpoints (`conv1`, `bn1`, ..., `downsample`)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1, dilation: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(out + shortcut)


def bottleneck_stage(
    in_channels: int, planes: int, blocks: int, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """`blocks` bottlenecks; the first changes resolution/width (keys `0.downsample.*`)."""
    layers = [Bottleneck(in_channels, planes, stride=stride, dilation=dilation)]
    layers += [Bottleneck(planes * 4, planes, dilation=dilation) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1
) -> nn.Sequential:
    """conv (no bias) + BN + ReLU as a Sequential, so the keys are `0.weight`, `1.running_mean`."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride,
            padding=dilation * (kernel_size // 2), dilation=dilation, bias=False,
        ),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )  # fmt: skip
