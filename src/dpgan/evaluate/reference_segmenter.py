"""A reference segmenter for datasets without a published one (synthetic streets, own folders).

mIoU of generated images needs a segmenter trained on real images of the same label space.
The paper's datasets have published ones (DRN, UperNet, DeepLab); the embedded dataset and a
user's folder do not, so `dpgan train-segmenter` trains this compact U-Net on the real training
images. Its mIoU on the real validation images, stored with its weights, is the ceiling that
any generator can reach under this judge. Its pooled bottleneck features give a Frechet
distance that needs no downloaded network: "RefSeg-FD". It is not FID; its values are on
another scale and compare only runs judged by the same segmenter file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from dpgan.files import torch_save_atomic
from dpgan.config import DataConfig
from dpgan.data.info import DatasetInfo
from dpgan.errors import CheckpointError, DPGANError
from dpgan.evaluate.report import json_safe
from dpgan.evaluate.segmenters.base import Segmenter, to_unit_range

FORMAT = "dpgan-reference-segmenter"
VERSION = 1
SEGMENTER_FILE = "segmenter.pt"


def weights_digest(state_dict: dict[str, Tensor]) -> str:
    """Which judge this is: a hash of the weights alone (names, shapes, dtypes and bytes), so two
    files of the same segmenter match even though their training records (seconds) differ.
    Scores compare only between equal digests."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class ReferenceSegmenterConfig:
    """Architecture and the label space it was trained for (saved as JSON with the weights)."""

    num_classes: int
    base_channels: int = 12  # channels of the full-resolution level; doubled per level
    levels: int = 4  # resolutions 1, 1/2, ..., 1/2^(levels - 1)
    ignore_index: int | None = None  # never predicted: the don't-care id
    image_height: int = 64  # resolution it was trained at
    image_width: int = 128

    @property
    def feature_dims(self) -> int:
        return self.base_channels * 2 ** (self.levels - 1)


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ReferenceSegmenter(Segmenter):
    """U-Net: two 3x3 convs per level, max-pool down, bilinear up with skip connections.

    Full-resolution skips keep thin and distant objects (poles, far cars) that a stride-8
    network like DRN would blur, which matters on 64 x 128 images.
    """

    def __init__(self, config: ReferenceSegmenterConfig, class_names: tuple[str, ...] | None = None) -> None:
        super().__init__()
        if config.levels < 1 or config.base_channels < 1 or config.num_classes < 1:
            raise ValueError(f"invalid reference segmenter config {config}")
        self.config = config
        self.num_classes = config.num_classes
        self.class_names = class_names or tuple(str(i) for i in range(config.num_classes))
        channels = [config.base_channels * 2**i for i in range(config.levels)]
        self.down = nn.ModuleList([_double_conv(3, channels[0])])
        self.down.extend(
            nn.Sequential(nn.MaxPool2d(2), _double_conv(channels[i - 1], channels[i]))
            for i in range(1, config.levels)
        )
        self.up = nn.ModuleList(
            _double_conv(channels[i] + channels[i - 1], channels[i - 1]) for i in range(config.levels - 1, 0, -1)
        )
        self.head = nn.Conv2d(channels[0], config.num_classes, 1)

    def _encode(self, images: Tensor) -> tuple[list[Tensor], tuple[int, int]]:
        """Images in [0, 1], padded (replicate) to a multiple of 2^(levels-1); all level outputs."""
        height, width = images.shape[2:]
        stride = 2 ** (self.config.levels - 1)
        x = F.pad(images * 2 - 1, (0, -width % stride, 0, -height % stride), mode="replicate")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        return skips, (height, width)

    def forward(self, images: Tensor) -> Tensor:
        """Images in [0, 1] (N x 3 x H x W) -> logits N x C x H x W."""
        skips, (height, width) = self._encode(images)
        x = skips[-1]
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)[:, :, :height, :width]

    def class_scores(self, images: Tensor) -> Tensor:
        scores = self(images)
        if self.config.ignore_index is not None:  # don't-care is a channel, never an answer
            scores[:, self.config.ignore_index] = float("-inf")
        return scores

    @torch.no_grad()
    def features(self, images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
        """Bottleneck activations averaged over space (N x feature_dims, float64), the input of
        RefSeg-FD. Images in `value_range` (generator output: (-1, 1)) or uint8."""
        device = next(self.parameters()).device
        skips, _ = self._encode(to_unit_range(images, value_range).to(device))
        return skips[-1].mean(dim=(2, 3)).double().cpu()

    # ---- file format: JSON config + state dict, read with weights_only=True -------------
    def save(self, path: str | Path, info: DatasetInfo, val_scores: dict[str, Any], training: dict[str, Any]) -> Path:
        path = Path(path)
        torch_save_atomic(
            {
                "format": FORMAT,
                "version": VERSION,
                "config": json.dumps(asdict(self.config)),
                "dataset_info": info.to_json(),
                "val_scores": json.dumps(val_scores),
                "training": json.dumps(training),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            },
            path,
        )
        return path

    @classmethod
    def from_file(cls, path: str | Path | None, option: str = "--segmenter") -> LoadedReferenceSegmenter:
        if path is None or not Path(path).is_file():
            where = "was not given" if path is None else f"{str(path)!r} does not exist"
            raise DPGANError(
                f"The reference segmenter file {where}: set {option} to the {SEGMENTER_FILE} written by "
                "`dpgan train-segmenter`, or run that command first."
            )
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # corrupt, truncated, or a pickle that wants to run code
            raise CheckpointError(f"{path} (given as {option}) is not a readable reference segmenter file "
                                  f"({type(exc).__name__}).") from None
        if not isinstance(obj, dict) or obj.get("format") != FORMAT:
            raise CheckpointError(f"{path} (given as {option}) was not written by `dpgan train-segmenter`.")
        if obj.get("version") != VERSION:
            raise CheckpointError(f"{path}: reference segmenter version {obj.get('version')} is not supported.")
        config = ReferenceSegmenterConfig(**json.loads(obj["config"]))
        info = DatasetInfo.from_dict(json.loads(obj["dataset_info"]))
        model = cls(config, info.class_names)
        try:
            model.load_state_dict(obj["state_dict"])
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit the saved architecture ({exc}).") from None
        return LoadedReferenceSegmenter(
            model.eval(), info, json.loads(obj["val_scores"]), json.loads(obj["training"]), str(path),
            weights_digest(obj["state_dict"]),
        )


@dataclass
class LoadedReferenceSegmenter:
    model: ReferenceSegmenter
    info: DatasetInfo
    val_scores: dict[str, Any]  # mIoU etc. on the real validation images: the ceiling
    training: dict[str, Any]  # steps, data config, seconds, ...
    path: str
    digest: str  # weights_digest: runs judged by segmenters of different digests do not compare


# ---- training ----------------------------------------------------------------------------
def default_segmenter_path(data_cfg: DataConfig) -> Path:
    """Where `train-segmenter` writes and `evaluate` looks: segmenters/<dataset>-<H>x<W>/segmenter.pt
    under $DPGAN_SEGMENTERS (default: ./segmenters)."""
    import os

    from dpgan.data.registry import dataset_info

    root = Path(os.environ.get("DPGAN_SEGMENTERS", "segmenters"))
    return root / f"{dataset_info(data_cfg).name}-{data_cfg.height}x{data_cfg.width}" / SEGMENTER_FILE


def class_weights(dataset: Dataset, info: DatasetInfo, *, samples: int = 256, seed: int = 0) -> Tensor:
    """Cross-entropy weights 1 / sqrt(pixel frequency), from up to `samples` training label maps,
    scaled so that an average pixel weighs 1. Without them the U-Net learns to skip the rare,
    small classes (signs, lights, people) whose IoU the evaluation cares most about; the square
    root keeps it from painting them everywhere, which would cost IoU the other way."""
    g = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(dataset), generator=g)[:samples].tolist()
    counts = torch.zeros(info.num_classes, dtype=torch.float64)
    for i in picks:
        counts += torch.bincount(dataset[i]["label"].reshape(-1), minlength=info.num_classes)[: info.num_classes]
    if info.ignore_index is not None:
        counts[info.ignore_index] = 0
    freq = counts / counts.sum().clamp(min=1)
    weights = torch.where(freq > 0, freq.clamp(min=1e-6).rsqrt(), torch.zeros_like(freq))
    weights = weights / (freq * weights).sum().clamp(min=1e-12)
    # classes unseen in the sample keep the largest weight: they are at least as rare
    weights = torch.where(freq > 0, weights, weights.max())
    if info.ignore_index is not None:
        weights[info.ignore_index] = 0
    return weights.float()


@dataclass
class TrainedSegmenter:
    path: Path
    val_scores: dict[str, Any]
    seconds: float


def train_reference_segmenter(
    data_cfg: DataConfig,
    out_dir: str | Path | None = None,
    *,
    steps: int = 3000,
    batch_size: int = 8,
    lr: float = 2e-3,
    base_channels: int = 12,
    levels: int = 4,
    seed: int = 0,
    device: str = "auto",
    num_workers: int | None = None,
    eval_batch_size: int = 16,
    class_balancing: bool = True,
    progress: bool = True,
) -> TrainedSegmenter:
    """Train on the real training split (with the training augmentation), score on the real
    validation split (the training split when a folder has none), write `out_dir/segmenter.pt`
    (default: `default_segmenter_path(data_cfg)`) and a readable `segmenter.json` beside it."""
    import time

    from torch.utils.data import DataLoader
    from tqdm import tqdm

    from dpgan.data.registry import build_dataset, has_split
    from dpgan.evaluate.judges import JudgeTally, reference_judge
    from dpgan.devices import resolve_device

    if steps < 1 or batch_size < 1:
        raise DPGANError(f"train-segmenter needs --steps >= 1 and --batch-size >= 1 (got {steps}, {batch_size}).")
    dev = resolve_device(device)
    path = Path(out_dir) / SEGMENTER_FILE if out_dir is not None else default_segmenter_path(data_cfg)
    train_set = build_dataset(data_cfg, "train", train=True)
    val_split = "val" if has_split(data_cfg, "val") else "train"
    val_set = build_dataset(data_cfg, val_split, train=False)
    info: DatasetInfo = train_set.info
    torch.manual_seed(seed)
    config = ReferenceSegmenterConfig(
        num_classes=info.num_classes, base_channels=base_channels, levels=levels,
        ignore_index=info.ignore_index, image_height=data_cfg.height, image_width=data_cfg.width,
    )  # fmt: skip
    model = ReferenceSegmenter(config, info.class_names).to(dev)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    workers = data_cfg.num_workers if num_workers is None else num_workers
    loader = DataLoader(
        train_set, batch_size=min(batch_size, len(train_set)), shuffle=True, drop_last=True,
        num_workers=workers, persistent_workers=workers > 0, pin_memory=dev.type == "cuda",
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip
    ignore = -100 if info.ignore_index is None else info.ignore_index
    weights = class_weights(train_set, info, seed=seed).to(dev) if class_balancing else None

    t0 = time.perf_counter()
    model.train()
    bar = tqdm(total=steps, desc="train-segmenter", unit="step", disable=not progress, dynamic_ncols=True)
    step = 0
    while step < steps:
        for batch in loader:
            images = (batch["image"].to(dev) + 1) / 2
            logits = model(images)
            loss = F.cross_entropy(logits, batch["label"].to(dev), weight=weights, ignore_index=ignore)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
            if step == steps:
                break
    bar.close()

    model.eval()
    tally = JudgeTally(reference_judge(model, info))
    val_loader = DataLoader(val_set, batch_size=eval_batch_size, shuffle=False, num_workers=0)
    for batch in tqdm(val_loader, desc=f"score on real {val_split} images", unit="batch", disable=not progress):
        tally.update(batch["image"], batch["label"])
    scores = {**tally.scores(), "split": val_split, "num_images": len(val_set)}
    seconds = time.perf_counter() - t0
    training = {
        "steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed, "seconds": seconds,
        "class_balancing": class_balancing,
        "data": asdict(data_cfg), "train_images": len(train_set), "device": str(dev),
        # the same seed and settings give the same weights bit for bit only at the same thread count
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
    }  # fmt: skip
    model.cpu().save(path, info, scores, training)
    summary = {"config": asdict(config), "dataset": info.name, "val_scores": scores, "training": training,
               "weights_digest": weights_digest(model.state_dict())}
    (path.parent / "segmenter.json").write_text(json.dumps(json_safe(summary), indent=2, default=str) + "\n")
    return TrainedSegmenter(path, scores, seconds)
