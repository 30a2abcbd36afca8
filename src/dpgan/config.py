"""Run configuration: frozen dataclasses, named presets and the paper's ablation rows.

A `Config` is written as `config.json` beside every run and inside every checkpoint; it is
read back as plain JSON data (never unpickled, never executed).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dpgan.config_fields import TypedFields, kind_of, show
from dpgan.errors import DPGANError

# The choices of the string options, in one place (validated here, imported where they are used).
FEATURE_TAPS = ("none", "enc", "dec", "enc+dec")  # model.patch_loss / model.feature_loss
D_ARCHS = ("unet", "multiscale-patch")
SYNC_BATCHNORM = ("generator", "all", "none")
NONFINITE_POLICIES = ("rollback", "stop", "skip")
PRECISIONS = ("fp32", "bf16")
INIT_SCHEMES = ("published", "sn-default")  # model.init: dpgan/models/init.py
ENCODER_HEAD_ANCHORS = ("input", "bottleneck")  # model.encoder_head_anchor: models/discriminator.py


@dataclass(frozen=True)
class DataConfig:
    """Which dataset, where, and at what resolution."""

    dataset: str = "synthetic-streets"
    root: str | None = None  # folder of a real dataset; None for the embedded one
    height: int = 64  # training and evaluation resolution (after any crop)
    width: int = 128
    load_height: int | None = None  # resize to this before a random crop (ADE20K: 286)
    load_width: int | None = None
    flip: bool = True  # random horizontal flips in training
    num_train: int = 2000  # synthetic-streets only: number of generated scenes per split
    num_val: int = 200
    synthetic_seed: int = 0
    num_workers: int = 2


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, decided at build time (docs/architecture.md)."""

    generator: str = "dp"  # "oa": OASIS SPADE generator; "dp": dual pyramid generator
    g_width: int = 64  # base channel width ch; blocks use [16,16,16,8,4,2,1] x ch
    d_width: int = 64  # D encoder channels [2,2,4,4,8,8] x width, decoder ends at width
    z_dim: int = 64
    use_3d_noise: bool = True
    num_res_blocks: int = 6
    spectral_norm: bool = True
    pyramid_width: int = 64  # dual pyramid levels; SPADE in DP blocks sees 2 x this
    spade_hidden: int = 128  # OASIS generator SPADE hidden width
    # initialisation (models/init.py): "published" reaches the spectral-normed convs as the published
    # code does (the paper presets); "sn-default" leaves them at PyTorch's default (the CPU preset, and
    # every run written before this field existed; docs/training-dynamics.md)
    init: str = "sn-default"
    # Scale-enhancement discriminator: patch heads + hinge loss on these D features ...
    patch_loss: str = "enc"
    # Where the encoder patch heads sit, counted from the "input" (after encoder blocks 3 and the last,
    # the published block indices; every run written before this field existed) or from the
    # "bottleneck" (the last block and the one two above it). Equal for 6 blocks; with 4 blocks
    # "bottleneck" keeps the published two heads two blocks apart (the CPU preset).
    encoder_head_anchor: str = "input"
    # ... and the feature-matching loss on these D features. Both "none" = OASIS discriminator.
    feature_loss: str = "dec"
    # "unet": the segmenting U-Net above (OASIS, DP-GAN); "multiscale-patch": the SPADE baseline's
    # pix2pixHD discriminator on [label ; image] (models/patchgan.py), trained with hinge + L1
    # feature matching instead of the pixel, patch and LabelMix losses (patch/feature_loss "none")
    d_arch: str = "unet"

    @property
    def discriminator(self) -> str:
        if self.d_arch == "multiscale-patch":
            return "multiscale-patch"
        if self.patch_loss == "none" and self.feature_loss == "none":
            return "oa"
        if self.patch_loss == "enc" and self.feature_loss == "dec":
            return "dp"
        return f"dp(patch={self.patch_loss},feature={self.feature_loss})"


@dataclass(frozen=True)
class LossConfig:
    class_balancing: bool = True  # alpha_c weights in the (N+1)-class cross entropy
    labelmix: bool = True
    lambda_labelmix: float = 5.0
    lambda_patch: float = 1.0
    lambda_feature: float = 1.0
    lambda_gan_feature: float = 10.0  # SPADE baseline (model.d_arch "multiscale-patch"): L1 feature matching
    # Not in the paper: an unweighted N-class cross entropy of D's semantic channels on real images,
    # added to D's loss (0 = off, as published). See docs/training-dynamics.md.
    lambda_d_segmentation: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 3000
    batch_size: int = 8
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.999
    ema_decay: float = 0.999
    ema_bn_batches: int = 20  # batches used to recompute the EMA generator's BN statistics
    ema_warmup: bool = True  # decay min(ema_decay, (1+step)/(10+step)); see train.ema_decay_at
    seed: int = 43
    log_every: int = 25  # scalars to TensorBoard (the only host-device sync points)
    sample_every: int = 500  # image grid of label | generated | real
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    # Many devices (docs/distributed.md): batch_size is per process and micro-batch; the global
    # batch is batch_size x grad_accum x number of processes.
    grad_accum: int = 1
    sync_batchnorm: str = "generator"  # "generator" (published), "all" (also D's patch heads), "none"
    # Divergence: a non-finite loss or gradient skips the update; max_nonfinite skipped steps
    # within nonfinite_window steps then roll back to the last checkpoint with the learning
    # rates x rollback_lr_factor (at most max_rollbacks times), or stop, or keep skipping.
    nonfinite_policy: str = "rollback"  # "rollback", "stop" or "skip"
    max_nonfinite: int = 3
    nonfinite_window: int = 100
    rollback_lr_factor: float = 0.5
    max_rollbacks: int = 3
    # Speed (benchmarks/): results are the same as the plain fp32 path (tests/test_speed.py)
    channels_last: bool = False  # NHWC memory format for G and D
    precision: str = "fp32"  # "fp32" or "bf16" (autocast on CUDA; master weights stay fp32)
    compile: bool = False  # torch.compile G and D, falling back to eager where it cannot compile
    cudnn_benchmark: bool = True  # cuDNN autotuning (fixed input sizes)
    # Evaluation during training (dpgan.evaluate.training_eval): every eval_every steps (0: never)
    # on eval_images validation label maps; the best checkpoint by eval_metric is kept as best.pt
    eval_every: int = 0
    eval_metric: str = "auto"  # "auto": fid with Inception weights, else refseg_fd, else miou
    eval_images: int = 64
    eval_segmenter: str | None = None  # reference segmenter file (default: the dataset's usual place)
    eval_inception: str | None = None  # pytorch-fid Inception weights file, for FID/KID
    eval_segmenter_weights: str | None = None  # the dataset's published segmenter (DRN / UperNet / DeepLab)


@dataclass(frozen=True)
class Config:
    name: str = "synthetic-streets"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        validate(self)

    # --- serialisation: plain JSON, never pickle ---
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """From parsed JSON (a config.json, a checkpoint's or a saved model's config): every value
        is checked against its field's type and range (`coerce`); anything else is a DPGANError."""
        if not isinstance(d, dict):
            raise DPGANError(f"a config must be a JSON object of sections, not {kind_of(d)}")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key == "name":
                kwargs[key] = coerce_name(value)
                continue
            if key not in _SECTION_CLASSES:
                raise DPGANError(f"unknown config section {str(key)[:80]!r}; the sections are "
                                 f"{['name', *_SECTION_CLASSES]}")
            kwargs[key] = _SECTION_CLASSES[key](**_FIELDS.coerce_section(key, value))
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Config:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:  # bad JSON, absurd nesting or numbers
            raise DPGANError(f"the config is not valid JSON ({str(exc).splitlines()[0][:200]})") from None
        return cls.from_dict(data)

    @classmethod
    def from_file(cls, path: Any) -> Config:
        """A config.json file; unreadable, binary or larger than MAX_CONFIG_BYTES is one DPGANError
        naming the file, as is anything from_json refuses."""
        from pathlib import Path

        path = Path(path)
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise DPGANError(f"{path}: {path.stat().st_size} bytes is too large for a config file "
                                 f"(at most {MAX_CONFIG_BYTES})")
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise DPGANError(f"{path}: not a text file (a config is UTF-8 JSON)") from None
        except OSError as exc:
            raise DPGANError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
        try:
            return cls.from_json(text)
        except DPGANError as exc:
            raise DPGANError(f"{path}: {exc}") from None

    def override(self, **sections: dict[str, Any]) -> Config:
        """Return a copy with some fields of some sections replaced: `cfg.override(train={"steps": 10})`."""
        new = {}
        for key, changes in sections.items():
            if key not in _SECTION_CLASSES:
                raise DPGANError(f"unknown config section {str(key)[:80]!r}; the sections are {list(_SECTION_CLASSES)}")
            new[key] = replace(getattr(self, key), **_FIELDS.coerce_section(key, changes))
        return replace(self, **new)


_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


# --- typed fields ---------------------------------------------------------------------------
# Every value that reaches a Config from outside (--set, --config FILE, a run's or a saved model's
# config.json, the API's override) goes through `coerce`: the field's type, then its range. The
# upper limits protect memory and time from a typo (a width of 10^6 would allocate terabytes).
MAX_WIDTH = 1024  # model.g_width, d_width, pyramid_width, spade_hidden, z_dim
MAX_RES_BLOCKS = 8
MAX_SIDE = 4096  # data.height, width, load_height, load_width
MAX_BATCH = 1024  # train.batch_size, grad_accum
MAX_SEED = 2**31 - 1
MAX_STRING = 4096
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB

# (section.field) -> inclusive (low, high) for ints
INT_RANGES: dict[str, tuple[int, int]] = {
    "data.height": (1, MAX_SIDE), "data.width": (1, MAX_SIDE),
    "data.load_height": (1, MAX_SIDE), "data.load_width": (1, MAX_SIDE),
    "data.num_train": (1, 10_000_000), "data.num_val": (1, 10_000_000),
    "data.synthetic_seed": (0, MAX_SEED), "data.num_workers": (0, 256),
    "model.g_width": (1, MAX_WIDTH), "model.d_width": (1, MAX_WIDTH), "model.pyramid_width": (1, MAX_WIDTH),
    "model.spade_hidden": (1, MAX_WIDTH), "model.z_dim": (0, MAX_WIDTH), "model.num_res_blocks": (1, MAX_RES_BLOCKS),
    "train.steps": (0, 10**9), "train.batch_size": (1, MAX_BATCH), "train.grad_accum": (1, MAX_BATCH),
    "train.ema_bn_batches": (0, 100_000), "train.seed": (0, MAX_SEED),
    "train.log_every": (1, 10**9), "train.sample_every": (1, 10**9), "train.checkpoint_every": (1, 10**9),
    "train.keep_checkpoints": (0, 10**6), "train.max_nonfinite": (1, 10**9), "train.nonfinite_window": (1, 10**9),
    "train.max_rollbacks": (0, 10**6), "train.eval_every": (0, 10**9), "train.eval_images": (1, 1_000_000),
}
# (section.field) -> (low, high, low included, high included) for floats; all must be finite
FLOAT_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "train.lr_g": (0.0, math.inf, False, False), "train.lr_d": (0.0, math.inf, False, False),
    "train.beta1": (0.0, 1.0, True, False), "train.beta2": (0.0, 1.0, True, False),
    "train.ema_decay": (0.0, 1.0, True, False), "train.rollback_lr_factor": (0.0, 1.0, False, True),
}
_DEFAULT_FLOAT = (0.0, math.inf, True, False)  # loss weights: finite and >= 0
_DEFAULT_INT = (0, 10**9)  # an integer field not listed above: a count or a number of steps

_FIELDS = TypedFields(_SECTION_CLASSES, int_ranges=INT_RANGES, float_ranges=FLOAT_RANGES,
                      default_int=_DEFAULT_INT, default_float=_DEFAULT_FLOAT, max_string=MAX_STRING)
coerce = _FIELDS.coerce  # the one gate for a field's value (docs/reliability.md)
parse_set = _FIELDS.parse_set


def coerce_name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise DPGANError(f"name={show(value)} is not allowed: name is a non-empty string")
    return value


def _check_fields(cfg: Config) -> None:
    """The type and range of every field (also for a Config built in code); values are stored
    in their field's type (an int given for a float field becomes that float)."""
    coerce_name(cfg.name)
    for section, cls in _SECTION_CLASSES.items():
        part = getattr(cfg, section)
        if not isinstance(part, cls):
            raise DPGANError(f"config section {section!r} must be a {cls.__name__}, not {kind_of(part)}")
        for name in _FIELDS.names(section):
            value = getattr(part, name)
            typed = coerce(section, name, value)
            if typed is not value and type(typed) is not type(value):
                object.__setattr__(part, name, typed)


def validate(cfg: Config) -> None:
    _check_fields(cfg)
    m, t = cfg.model, cfg.train
    if m.generator not in ("oa", "dp"):
        raise DPGANError(f"model.generator must be 'oa' or 'dp', not {m.generator!r}")
    for name in ("patch_loss", "feature_loss"):
        if getattr(m, name) not in FEATURE_TAPS:
            raise DPGANError(f"model.{name} must be one of {FEATURE_TAPS}, not {getattr(m, name)!r}")
    if m.d_arch not in D_ARCHS:
        raise DPGANError(f"model.d_arch must be one of {D_ARCHS}, not {m.d_arch!r}")
    if m.encoder_head_anchor not in ENCODER_HEAD_ANCHORS:
        raise DPGANError(f"model.encoder_head_anchor must be one of {ENCODER_HEAD_ANCHORS}, "
                         f"not {m.encoder_head_anchor!r}")
    if m.init not in INIT_SCHEMES:
        raise DPGANError(f"model.init must be one of {INIT_SCHEMES}, not {m.init!r}")
    if m.d_arch == "multiscale-patch" and (m.patch_loss != "none" or m.feature_loss != "none"):
        raise DPGANError("model.patch_loss and model.feature_loss act on the U-Net discriminator's features; "
                         "set both to 'none' with model.d_arch 'multiscale-patch'")
    if m.d_arch == "multiscale-patch" and cfg.loss.labelmix:
        raise DPGANError("LabelMix needs the U-Net discriminator's segmentation; set loss.labelmix=false "
                         "with model.d_arch 'multiscale-patch'")
    for name in ("g_width", "d_width", "num_res_blocks", "pyramid_width", "spade_hidden"):
        if getattr(m, name) < 1:
            raise DPGANError(f"model.{name} must be positive")
    if m.use_3d_noise and m.z_dim < 1:
        raise DPGANError("model.z_dim must be positive when 3D noise is used")
    if t.steps < 0 or t.batch_size < 1:
        raise DPGANError("train.steps must be >= 0 and train.batch_size >= 1")
    if not 0.0 <= t.ema_decay < 1.0:
        raise DPGANError("train.ema_decay must be in [0, 1)")
    if t.grad_accum < 1:
        raise DPGANError(f"train.grad_accum must be >= 1, not {t.grad_accum}")
    if t.sync_batchnorm not in SYNC_BATCHNORM:
        raise DPGANError(f"train.sync_batchnorm must be 'generator', 'all' or 'none', not {t.sync_batchnorm!r}")
    if t.nonfinite_policy not in NONFINITE_POLICIES:
        raise DPGANError(f"train.nonfinite_policy must be 'rollback', 'stop' or 'skip', not {t.nonfinite_policy!r}")
    if t.max_nonfinite < 1 or t.nonfinite_window < 1 or t.max_rollbacks < 0:
        raise DPGANError("train.max_nonfinite and train.nonfinite_window must be >= 1, train.max_rollbacks >= 0")
    if not 0.0 < t.rollback_lr_factor <= 1.0:
        raise DPGANError(f"train.rollback_lr_factor must be in (0, 1], not {t.rollback_lr_factor}")
    if t.precision not in PRECISIONS:
        raise DPGANError(f"train.precision must be 'fp32' or 'bf16', not {t.precision!r}")
    if t.eval_every < 0 or t.eval_images < 1:
        raise DPGANError("train.eval_every must be >= 0 and train.eval_images >= 1")
    d = cfg.data
    stride = 2 ** (m.num_res_blocks - 1)
    if d.height % stride or d.width % stride:
        raise DPGANError(
            f"data.height and data.width ({d.height}x{d.width}) must be multiples of "
            f"{stride} = 2^(num_res_blocks - 1)"
        )
