"""Initialisation of the published configuration: conv and linear weights Xavier-normal with
gain 0.02 and zero biases; BatchNorm weights N(1, 0.02) and zero biases.

Spectral-normalised convs initialise their underlying (original) weight. A fused gamma/beta
conv of SPADE is initialised half by half, exactly as the two separate published convs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from dpgan.models.spade import SPADE

GAIN = 0.02


def _weight(m: nn.Module) -> torch.Tensor:
    if parametrize.is_parametrized(m, "weight"):
        return m.parametrizations.weight.original  # type: ignore[union-attr]
    return m.weight  # type: ignore[return-value]


@torch.no_grad()
def init_weights(model: nn.Module) -> nn.Module:
    fused = {id(m.gamma_beta): m.channels for m in model.modules() if isinstance(m, SPADE)}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            w = _weight(m)
            if id(m) in fused:
                c = fused[id(m)]
                nn.init.xavier_normal_(w[:c], gain=GAIN)
                nn.init.xavier_normal_(w[c:], gain=GAIN)
            else:
                nn.init.xavier_normal_(w, gain=GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
