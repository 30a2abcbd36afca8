"""The published DP-GAN code (github.com/sj-li/DP_GAN), driven on the same data as ours.

It is imported from a scratch copy that is never part of this project:

    git clone https://github.com/sj-li/DP_GAN /tmp/published_dpgan
    (or: git -C <mirror of sj-li/DP_GAN> archive HEAD | tar -x -C /tmp/published_dpgan)

and runs unmodified. This adapter only fills the option namespace its training script would
build, gives its hinge loss the zero tensor it caches (its own code makes it with `.cuda()`,
which fails on CPU), calls its modules directly (its DataParallel wrapper does exactly that on
one device) and, when matplotlib is missing, stubs the plotting import of its utils module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import sys
import types
from pathlib import Path

import torch

from dpgan.config import Config
from dpgan.tensors import one_hot

NUM_CLASSES = 35  # Cityscapes: 34 label ids + "unlabelled" (its dataset sets semantic_nc = 35)

PUBLISHED_HOWTO = ("not measured: pass --published-src DIR, made with `git clone https://github.com/sj-li/DP_GAN DIR` "
                   "(or `git -C <mirror> archive HEAD | tar -x -C DIR`)")


def import_published(src: Path):
    """(models.models, models.losses, utils.utils) of the published code at `src`."""
    if not (src / "models" / "models.py").is_file():
        raise SystemExit(f"{src}: not a copy of the published DP-GAN code (models/models.py missing)")
    if str(src) not in sys.path:
        sys.path.insert(0, str(src))
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        # its utils module plots losses with matplotlib; nothing here calls that
        plt = types.ModuleType("matplotlib.pyplot")
        sys.modules["matplotlib"] = types.ModuleType("matplotlib")
        sys.modules["matplotlib.pyplot"] = plt
    import models.losses as p_losses
    import models.models as p_models
    import utils.utils as p_utils
    return p_models, p_losses, p_utils


def published_options(cfg: Config, device: torch.device) -> types.SimpleNamespace:
    """The option namespace its training script would build for Cityscapes at this size."""
    return types.SimpleNamespace(
        phase="train", gpu_ids="0" if device.type == "cuda" else "-1", semantic_nc=NUM_CLASSES,
        contain_dontcare_label=True, z_dim=64, no_3dnoise=False, channels_G=cfg.model.g_width,
        channels_D=64, num_res_blocks=6, crop_size=cfg.data.width, aspect_ratio=cfg.data.width / cfg.data.height,
        no_spectral_norm=False, spade_ks=3, param_free_norm="syncbatch", no_EMA=False, EMA_decay=0.999,
        add_vgg_loss=False, lambda_vgg=10.0, no_labelmix=False, lambda_labelmix=5.0, no_balancing_inloss=False,
        continue_train=False, batch_size=cfg.train.batch_size, lr_g=2e-4, lr_d=2e-4, beta1=0.0, beta2=0.999,
        freq_print=10**9, freq_fid=10**9, freq_save_ckpt=10**9, freq_save_latest=10**9,
    )


def build_published(src: Path, cfg: Config, device: torch.device):
    p_models, p_losses, p_utils = import_published(src)
    opt = published_options(cfg, device)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints parameter counts
        model = p_models.DP_GAN_model(opt)
    model = model.to(device).train()
    if device.type == "cpu":
        model.GAN_loss.zero_tensor = torch.zeros(1)  # its hinge loss would call .cuda() to make this
    return model, opt, p_losses, p_utils


def published_iteration(src: Path, cfg: Config, device: torch.device, image, label) -> tuple[callable, list]:
    """One iteration of its train.py loop (DataParallel on one device calls the module directly)."""
    model, opt, p_losses, p_utils = build_published(src, cfg, device)
    losses_computer = p_losses.losses_computer(opt)
    opt_g = torch.optim.Adam(model.netG.parameters(), lr=opt.lr_g, betas=(opt.beta1, opt.beta2))
    opt_d = torch.optim.Adam(model.netD.parameters(), lr=opt.lr_d, betas=(opt.beta1, opt.beta2))
    onehot = one_hot(label, NUM_CLASSES)  # what its preprocess_input makes with scatter_
    holder = types.SimpleNamespace(module=model)

    def iteration() -> None:
        model.netG.zero_grad()
        loss_g, _ = model(image, onehot, "losses_G", losses_computer)
        loss_g.mean().backward()
        opt_g.step()
        model.netD.zero_grad()
        loss_d, _ = model(image, onehot, "losses_D", losses_computer)
        loss_d.mean().backward()
        opt_d.step()
        p_utils.update_EMA(holder, 1, None, opt)  # iteration 1: no BN-statistics pass

    return iteration, [model.netG, model.netD]
