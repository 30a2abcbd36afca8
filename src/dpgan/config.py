"""Run configuration: frozen dataclasses, named presets and the paper's ablation rows.

A `Config` is written as `config.json` beside every run and inside every checkpoint; it is
read back as plain JSON data (never unpickled, never executed).
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import re
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from dpgan.errors import DPGANError

# The choices of the string options, in one place (validated here, imported where they are used).
FEATURE_TAPS = ("none", "enc", "dec", "enc+dec")  # model.patch_loss / model.feature_loss
D_ARCHS = ("unet", "multiscale-patch")
SYNC_BATCHNORM = ("generator", "all", "none")
NONFINITE_POLICIES = ("rollback", "stop", "skip")
PRECISIONS = ("fp32", "bf16")
INIT_SCHEMES = ("published", "sn-default")  # model.init: dpgan/models/init.py


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
            raise DPGANError(f"a config must be a JSON object of sections, not {_kind(d)}")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key == "name":
                kwargs[key] = coerce_name(value)
                continue
            if key not in _SECTION_CLASSES:
                raise DPGANError(f"unknown config section {str(key)[:80]!r}; the sections are "
                                 f"{['name', *_SECTION_CLASSES]}")
            kwargs[key] = _SECTION_CLASSES[key](**_coerce_section(key, value))
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
            new[key] = replace(getattr(self, key), **_coerce_section(key, changes))
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
_INT_TEXT = re.compile(r"^[+-]?\d{1,30}$")


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class _FieldType:
    base: type  # bool, int, float or str
    optional: bool


def _field_types(cls: type) -> dict[str, _FieldType]:
    out = {}
    for name, hint in typing.get_type_hints(cls).items():
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = bool(typing.get_args(hint)) and len(args) < len(typing.get_args(hint))
        out[name] = _FieldType(args[0] if optional else hint, optional)
    return out


def _allowed(key: str, ft: _FieldType) -> str:
    if ft.base is bool:
        text = "true or false"
    elif ft.base is int:
        lo, hi = INT_RANGES.get(key, _DEFAULT_INT)
        text = f"an integer from {lo} to {hi}"
    elif ft.base is float:
        lo, hi, lo_in, hi_in = FLOAT_RANGES.get(key, _DEFAULT_FLOAT)
        text = f"a finite number in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"
    else:
        text = f"a string (at most {MAX_STRING} characters)"
    return text + (", or null" if ft.optional else "")


def _from_text(raw: str, ft: _FieldType) -> Any:
    """A --set value (always text) as the field's type would have it in JSON."""
    if ft.optional and raw.strip().lower() in ("null", "none"):
        return None
    if ft.base is str:
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':  # a JSON string, quotes and all
            try:
                return json.loads(raw)
            except ValueError:
                return raw
        return raw
    if ft.base is int and _INT_TEXT.match(raw.strip()):
        return int(raw)
    if ft.base is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw  # bool text is read by coerce; anything else is refused there, showing what was given


def coerce(section: str, name: str, value: Any, *, text: bool = False) -> Any:
    """`value` for field `section.name` as that field's type, within its range, or a DPGANError
    that names the field, the value and what is allowed. `text`: value is a --set string
    (`--set loss.labelmix=False`), read by the field's type: true/false in any case for booleans,
    decimal digits for integers, a number for floats, the text itself for strings, null (or none)
    for optional fields. From JSON: booleans are true/false (also as strings, any case) only,
    integers refuse floats and booleans, floats accept integers, strings refuse anything else."""
    if section not in _SECTION_CLASSES:
        raise DPGANError(f"unknown config section {str(section)[:80]!r}; the sections are {list(_SECTION_CLASSES)}")
    types = _FIELD_TYPES[section]
    if name not in types:
        raise DPGANError(f"unknown option {section}.{str(name)[:80]}; the options of {section} are {sorted(types)}")
    key, ft = f"{section}.{name}", types[name]
    given = value
    if text and isinstance(value, str):
        value = _from_text(value, ft)
    ok, out = _typed(key, ft, value)
    if not ok:
        raise DPGANError(f"{key}={_show(given)} is not allowed: {key} is {_allowed(key, ft)}")
    return out


def _typed(key: str, ft: _FieldType, value: Any) -> tuple[bool, Any]:
    if value is None:
        return ft.optional, None
    if ft.base is bool:
        if isinstance(value, bool):
            return True, value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return True, value.strip().lower() == "true"
        return False, None
    if ft.base is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False, None
        lo, hi = INT_RANGES.get(key, _DEFAULT_INT)
        return lo <= int(value) <= hi, int(value)
    if ft.base is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False, None
        try:
            v = float(value)
        except OverflowError:  # an integer too large for a float
            return False, None
        lo, hi, lo_in, hi_in = FLOAT_RANGES.get(key, _DEFAULT_FLOAT)
        inside = (v >= lo if lo_in else v > lo) and (v <= hi if hi_in else v < hi)
        return math.isfinite(v) and inside, v
    return isinstance(value, str) and len(value) <= MAX_STRING, value


def coerce_name(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise DPGANError(f"name={_show(value)} is not allowed: name is a non-empty string")
    return value


def _coerce_section(section: str, values: Any, *, text: bool = False) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise DPGANError(f"config section {section!r} must be an object of options, not {_kind(values)}")
    return {name: coerce(section, name, value, text=text) for name, value in values.items()}


def parse_set(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set SECTION.FIELD=VALUE` items as typed overrides (see `coerce`)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise DPGANError(f"--set {_show(item)}: expected SECTION.FIELD=VALUE, e.g. train.steps=100")
        out.setdefault(section, {})[name] = coerce(section, name, raw, text=True)
    return out


_FIELD_TYPES = {section: _field_types(cls) for section, cls in _SECTION_CLASSES.items()}


def _check_fields(cfg: Config) -> None:
    """The type and range of every field (also for a Config built in code); values are stored
    in their field's type (an int given for a float field becomes that float)."""
    coerce_name(cfg.name)
    for section, cls in _SECTION_CLASSES.items():
        part = getattr(cfg, section)
        if not isinstance(part, cls):
            raise DPGANError(f"config section {section!r} must be a {cls.__name__}, not {_kind(part)}")
        for name in _FIELD_TYPES[section]:
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
