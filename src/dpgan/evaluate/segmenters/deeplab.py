"""DeepLab-v2 (ResNet-101, ASPP, multi-scale max) for COCO-Stuff (kazuto1011/deeplab-pytorch).

docs/evaluation.md 2.5: a Caffe-style ResNet-101 (stride on the 1x1 reduce conv, ceil-mode stem
pool) dilated to output stride 8, four parallel dilated 3x3 classifiers summed (ASPP), run on
the image and on 0.5x and 0.75x copies with an element-wise max of the logits. Inputs are BGR
in 0..255 minus the Caffe mean, with no std scaling. Submodule names match the released
`deeplabv2_resnet101_msc-cocostuff164k-100000.pth` (`base.layer2.block1.reduce.conv.weight`).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dpgan.evaluate.segmenters.base import Segmenter
from dpgan.evaluate.weights import load_into, load_state_dict_file
from dpgan.names import DEEPLAB_WEIGHTS_NAME

CAFFE_MEAN_BGR = (104.008, 116.669, 122.675)
COCO_STUFF_CLASS_NAMES: tuple[str, ...] = tuple(
    "person|bicycle|car|motorcycle|airplane|bus|train|truck|boat|traffic light|fire hydrant|"
    "street sign|stop sign|parking meter|bench|bird|cat|dog|horse|sheep|cow|elephant|bear|"
    "zebra|giraffe|hat|backpack|umbrella|shoe|eye glasses|handbag|tie|suitcase|frisbee|skis|"
    "snowboard|sports ball|kite|baseball bat|baseball glove|skateboard|surfboard|tennis racket|"
    "bottle|plate|wine glass|cup|fork|knife|spoon|bowl|banana|apple|sandwich|orange|broccoli|"
    "carrot|hot dog|pizza|donut|cake|chair|couch|potted plant|bed|mirror|dining table|window|"
    "desk|toilet|door|tv|laptop|mouse|remote|keyboard|cell phone|microwave|oven|toaster|sink|"
    "refrigerator|blender|book|clock|vase|scissors|teddy bear|hair drier|toothbrush|hair brush|"
    "banner|blanket|branch|bridge|building-other|bush|cabinet|cage|cardboard|carpet|"
    "ceiling-other|ceiling-tile|cloth|clothes|clouds|counter|cupboard|curtain|desk-stuff|dirt|"
    "door-stuff|fence|floor-marble|floor-other|floor-stone|floor-tile|floor-wood|flower|fog|"
    "food-other|fruit|furniture-other|grass|gravel|ground-other|hill|house|leaves|light|mat|"
    "metal|mirror-stuff|moss|mountain|mud|napkin|net|paper|pavement|pillow|plant-other|plastic|"
    "platform|playingfield|railing|railroad|river|road|rock|roof|rug|salad|sand|sea|shelf|"
    "sky-other|skyscraper|snow|solid-other|stairs|stone|straw|structural-other|table|tent|"
    "textile-other|towel|tree|vegetable|wall-brick|wall-concrete|wall-other|wall-panel|"
    "wall-stone|wall-tile|wall-wood|water-other|waterdrops|window-blind|window-other|wood".split("|")
)


class ConvBN(nn.Sequential):
    """conv (no bias) + BN (eps 1e-5) [+ ReLU], keys `conv.*`, `bn.*`."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, dilation: int = 1, relu: bool = True
    ) -> None:
        super().__init__()
        padding = dilation * (kernel // 2)
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-5)
        if relu:
            self.relu = nn.ReLU()


class CaffeBottleneck(nn.Module):
    """MSRA ResNet bottleneck: the stride sits on the 1x1 `reduce` conv."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, dilation: int, projection: bool) -> None:
        super().__init__()
        mid = out_ch // 4
        self.reduce = ConvBN(in_ch, mid, 1, stride=stride)
        self.conv3x3 = ConvBN(mid, mid, 3, dilation=dilation)
        self.increase = ConvBN(mid, out_ch, 1, relu=False)
        self.shortcut = ConvBN(in_ch, out_ch, 1, stride=stride, relu=False) if projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


class ResLayer(nn.Sequential):
    """`block1` .. `blockN`; the first projects the shortcut."""

    def __init__(self, blocks: int, in_ch: int, out_ch: int, stride: int, dilation: int) -> None:
        super().__init__()
        for i in range(blocks):
            self.add_module(
                f"block{i + 1}",
                CaffeBottleneck(
                    in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, dilation, i == 0
                ),
            )


class Stem(nn.Sequential):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = ConvBN(3, 64, 7, stride=2)
        self.pool = nn.MaxPool2d(3, 2, 1, ceil_mode=True)


class ASPP(nn.Module):
    """Four dilated 3x3 classifiers (`c0`..`c3`, with bias) whose logits are summed."""

    def __init__(self, in_ch: int, num_classes: int, rates: tuple[int, ...]) -> None:
        super().__init__()
        for i, rate in enumerate(rates):
            self.add_module(f"c{i}", nn.Conv2d(in_ch, num_classes, 3, 1, rate, rate, bias=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = list(self.children())
        out = branches[0](x)
        for branch in branches[1:]:  # summed in order, as the reference does
            out = out + branch(x)
        return out


class DeepLabV2Net(nn.Sequential):
    """Single-scale DeepLab-v2 ResNet-101: normalised BGR -> logits at output stride 8."""

    def __init__(self, num_classes: int = 182, rates: tuple[int, ...] = (6, 12, 18, 24)) -> None:
        super().__init__()
        self.layer1 = Stem()
        self.layer2 = ResLayer(3, 64, 256, stride=1, dilation=1)
        self.layer3 = ResLayer(4, 256, 512, stride=2, dilation=1)
        self.layer4 = ResLayer(23, 512, 1024, stride=1, dilation=2)
        self.layer5 = ResLayer(3, 1024, 2048, stride=1, dilation=4)
        self.aspp = ASPP(2048, num_classes, rates)


class DeepLabV2(Segmenter):
    """`DeepLabV2_ResNet101_MSC`: 182 COCO-Stuff classes (stuffthingmaps ids 0..181, 255 ignored)."""

    def __init__(self, num_classes: int = 182, msc_scales: tuple[float, ...] = (0.5, 0.75)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.class_names = COCO_STUFF_CLASS_NAMES if num_classes == 182 else tuple(
            str(i) for i in range(num_classes)
        )
        self.msc_scales = msc_scales
        self.base = DeepLabV2Net(num_classes)
        self.register_buffer("mean_bgr", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-subtracted BGR (0..255) -> max over scales of logits, at output stride 8."""
        logits = self.base(x)
        candidates = [logits]
        for scale in self.msc_scales:
            scaled = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
            candidates.append(
                F.interpolate(self.base(scaled), size=logits.shape[2:], mode="bilinear", align_corners=False)
            )
        return torch.stack(candidates).max(dim=0).values

    def class_scores(self, images: torch.Tensor) -> torch.Tensor:
        bgr = images.flip(1) * 255 - self.mean_bgr
        logits = self(bgr)
        return F.interpolate(logits, size=images.shape[2:], mode="bilinear", align_corners=False)

    @classmethod
    def from_file(cls, path: str | Path | None) -> DeepLabV2:
        state_dict, _ = load_state_dict_file(
            path, network="DeepLab-v2 COCO-Stuff", option="--deeplab", expected_name=DEEPLAB_WEIGHTS_NAME
        )
        model = cls(num_classes=182)
        load_into(model, state_dict, source=str(path))
        return model.eval()
