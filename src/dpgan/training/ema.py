"""Exponential moving average of the generator, and batch-norm recalibration for the copy.

Only floating-point parameters are averaged. Batch-norm running statistics of the EMA copy are
not averaged (an average of statistics of other weights means nothing); they are recomputed
with `recalibrate_batchnorm` before the copy is used, as the published recipe intends.
Spectral-norm power-iteration vectors are copied from the live generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    ema = copy.deepcopy(model)
    ema.requires_grad_(False)
    ema.eval()
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, one fused call over all parameters."""
    ema_params = [p for p in ema.parameters() if p.dtype.is_floating_point]
    params = [p.detach() for p in model.parameters() if p.dtype.is_floating_point]
    torch._foreach_lerp_(ema_params, params, 1.0 - decay)
    for (name, b_ema), (_, b) in zip(ema.named_buffers(), model.named_buffers()):
        if name.endswith(("_u", "_v")):  # spectral-norm power-iteration state
            b_ema.copy_(b)


def _batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable, forward: Callable[[nn.Module, object], object]) -> int:
    """Recompute the running mean/var of every BatchNorm in `model` as an exact average over
    `batches` (momentum None), leaving all other layers in eval mode. Returns batches used."""
    norms = _batchnorms(model)
    if not norms:
        return 0
    saved = [m.momentum for m in norms]
    was_training = model.training
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    used = 0
    try:
        for batch in batches:
            forward(model, batch)
            used += 1
    finally:
        for m, mom in zip(norms, saved):
            m.momentum = mom
        model.train(was_training)
    return used
