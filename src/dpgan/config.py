"""Run configuration: frozen dataclasses, named presets and the paper's ablation rows.

A `Config` is written as `config.json` beside every run and inside every checkpoint; it is
read back as plain JSON data (never unpickled, never executed).
"""

from __future__ import annotations

import dataclasses
import json
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
        sections = {f.name: f.type for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in sections:
                raise DPGANError(f"unknown config section {key!r}")
            if key == "name":
                kwargs[key] = str(value)
                continue
            section_cls = _SECTION_CLASSES[key]
            known = {f.name for f in fields(section_cls)}
            unknown = set(value) - known
            if unknown:
                raise DPGANError(f"unknown option(s) in config section {key!r}: {sorted(unknown)}")
            kwargs[key] = section_cls(**value)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str) -> Config:
        return cls.from_dict(json.loads(text))

    def override(self, **sections: dict[str, Any]) -> Config:
        """Return a copy with some fields of some sections replaced: `cfg.override(train={"steps": 10})`."""
        new = {}
        for key, changes in sections.items():
            section = getattr(self, key)
            known = {f.name for f in fields(section)}
            unknown = set(changes) - known
            if unknown:
                raise DPGANError(f"unknown option(s) for {key}: {sorted(unknown)}")
            new[key] = replace(section, **changes)
        return replace(self, **new)


_SECTION_CLASSES = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def validate(cfg: Config) -> None:
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


# --- presets ------------------------------------------------------------------------------

def _synthetic_cpu() -> Config:
    """The default: trains on 2 CPU cores in minutes on the embedded synthetic streets."""
    return Config(
        name="synthetic-streets",
        data=DataConfig(),
        model=ModelConfig(g_width=8, d_width=8, z_dim=32, pyramid_width=16, spade_hidden=32, init="sn-default"),
        loss=LossConfig(lambda_labelmix=5.0),
        # lr 5e-4 rather than the published 2e-4: at this width and step budget, 2e-4 (or TTUR 1e-4/4e-4)
        # leaves G ignoring the label map (row-only bands at step 800); 5e-4 shows the layout by step 300
        # channels_last: faster per iteration on CPU (benchmarks/RESULTS.md). Class balancing stays on: off,
        # D segments sooner but G is worse at step 1000 (docs/training-dynamics.md). A checkpoint every
        # 100 steps (and a sample grid): the first at 10% of the run, so synthesize/evaluate/demo work early.
        train=TrainConfig(steps=1000, batch_size=8, lr_g=5e-4, lr_d=5e-4, sample_every=100, checkpoint_every=100,
                          channels_last=True),
    )


def _cityscapes() -> Config:
    # 2975 images / batch 5 = 595 iterations per epoch, 200 epochs.
    return Config(
        name="cityscapes",
        data=DataConfig(dataset="cityscapes", height=256, width=512, num_workers=8),
        model=ModelConfig(init="published"),
        loss=LossConfig(lambda_labelmix=5.0),
        train=TrainConfig(
            steps=119_000, batch_size=5, lr_g=2e-4, lr_d=2e-4, ema_decay=0.999,
            ema_bn_batches=50, log_every=100, sample_every=2500, checkpoint_every=2500,
        ),
    )


def _ade20k(name: str = "ade20k", num_train_images: int = 20_210) -> Config:
    steps = 200 * (num_train_images // 5)
    return Config(
        name=name,
        data=DataConfig(dataset=name, height=256, width=256, load_height=286, load_width=286,
                        num_workers=8),
        model=ModelConfig(init="published"),
        loss=LossConfig(lambda_labelmix=10.0),
        train=TrainConfig(
            steps=steps, batch_size=5, lr_g=4e-4, lr_d=4e-4, ema_decay=0.9999,
            ema_bn_batches=50, log_every=100, sample_every=5000, checkpoint_every=5000,
        ),
    )


def _coco_stuff() -> Config:
    cfg = _ade20k("coco-stuff", num_train_images=118_287)
    # The published configuration trains COCO-Stuff for 100 epochs.
    return cfg.override(train={"steps": 100 * (118_287 // 5)})


PRESETS: dict[str, Any] = {
    "synthetic-streets": _synthetic_cpu,
    "cityscapes": _cityscapes,
    "ade20k": _ade20k,
    "ade20k-outdoor": lambda: _ade20k("ade20k-outdoor", num_train_images=10_000),
    "coco-stuff": _coco_stuff,
}

# The paper's ablation rows (Cityscapes tables a, b, c) as model overrides.
ABLATIONS: dict[str, dict[str, Any]] = {
    # (a) generator / discriminator from OASIS (oa) or DP-GAN (dp)
    "oa-oa": {"generator": "oa", "patch_loss": "none", "feature_loss": "none"},
    "oa-dp": {"generator": "oa", "patch_loss": "enc", "feature_loss": "dec"},
    "dp-oa": {"generator": "dp", "patch_loss": "none", "feature_loss": "none"},
    "dp-dp": {"generator": "dp", "patch_loss": "enc", "feature_loss": "dec"},
    # (b) patch loss L_ms on encoder / decoder features (feature loss on dec)
    "patch-none": {"generator": "dp", "patch_loss": "none", "feature_loss": "dec"},
    "patch-dec": {"generator": "dp", "patch_loss": "dec", "feature_loss": "dec"},
    "patch-enc+dec": {"generator": "dp", "patch_loss": "enc+dec", "feature_loss": "dec"},
    "patch-enc": {"generator": "dp", "patch_loss": "enc", "feature_loss": "dec"},
    # (c) feature loss L_fm on encoder / decoder features (patch loss on enc)
    "fm-none": {"generator": "dp", "patch_loss": "enc", "feature_loss": "none"},
    "fm-enc": {"generator": "dp", "patch_loss": "enc", "feature_loss": "enc"},
    "fm-enc+dec": {"generator": "dp", "patch_loss": "enc", "feature_loss": "enc+dec"},
    "fm-dec": {"generator": "dp", "patch_loss": "enc", "feature_loss": "dec"},
    # baseline (paper Table 1): SPADE = the OASIS generator without 3D noise, trained against a
    # multi-scale PatchGAN with hinge and feature-matching losses (no VGG loss: no weights offline)
    "spade": {"generator": "oa", "use_3d_noise": False, "d_arch": "multiscale-patch",
              "patch_loss": "none", "feature_loss": "none"},
}
# what a row changes besides the model: the SPADE baseline has neither LabelMix nor class balancing
ABLATION_LOSS: dict[str, dict[str, Any]] = {"spade": {"labelmix": False, "class_balancing": False}}


def preset(name: str, ablation: str | None = None) -> Config:
    if name not in PRESETS:
        raise DPGANError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    if ablation is not None:
        if ablation not in ABLATIONS:
            raise DPGANError(f"unknown ablation {ablation!r}; choose one of {list(ABLATIONS)}")
        cfg = cfg.override(model=ABLATIONS[ablation], loss=ABLATION_LOSS.get(ablation, {}))
        cfg = replace(cfg, name=f"{cfg.name}-{ablation}")
    return cfg
