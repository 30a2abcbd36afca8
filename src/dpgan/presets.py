"""Named presets (the embedded CPU benchmark and the paper's datasets) and the paper's
ablation rows, as `Config` values (dpgan/config.py)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dpgan.config import Config, DataConfig, LossConfig, ModelConfig, TrainConfig
from dpgan.errors import DPGANError

def _synthetic_cpu() -> Config:
    """The default: trains on 2 CPU cores in minutes on the embedded synthetic streets."""
    return Config(
        name="synthetic-streets",
        data=DataConfig(),
        # 4 blocks, not the published 6: at 64x128 that puts G's first grid and D's bottleneck at 8x16 and
        # 4x8, the grids the published 6 blocks reach at 256x512; with 6 blocks here they are 2x4 and 1x2,
        # and G paints row bands (docs/training-dynamics.md). The encoder patch heads are then counted
        # from the bottleneck, so that D keeps two (at 16x32 and 4x8, the published heads' grids).
        # D width 16: at width 8, G's images grow fine vertical stripes by step 700 (same document).
        # The feature loss reads D's encoder, not the published decoder: on D's decoder it outweighs the
        # pixel loss here and G paints a grid texture with no cars (the study's table (c), 3 seeds; same
        # document). `--feature-loss dec` is the published choice; the study's rows each set their own.
        model=ModelConfig(g_width=8, d_width=16, z_dim=32, pyramid_width=16, spade_hidden=32, num_res_blocks=4,
                          encoder_head_anchor="bottleneck", init="sn-default", feature_loss="enc"),
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
