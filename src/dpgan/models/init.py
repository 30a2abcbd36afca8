"""Initialisation as the published code effectively does it.

Convs and linears without spectral norm: Xavier-normal weights with gain 0.02, zero biases.
BatchNorm: weights N(1, 0.02), zero biases. Spectral-normalised convs keep PyTorch's default
initialisation: the published `init_weights` writes into `m.weight.data`, which under the old
spectral-norm API is the *computed* normalised weight, recomputed from `weight_orig` at the
next forward, so their init never reached those layers. It matters: a gain-0.02 weight under
spectral norm changes direction by 10-25% per early Adam step, the power-iteration estimate of
sigma lags, and D's features spike by orders of magnitude (we measured this before the fix).
A fused gamma/beta conv of SPADE is initialised half by half, as the two published convs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from dpgan.models.spade import SPADE

GAIN = 0.02


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
            if parametrize.is_parametrized(m, "weight"):
                continue  # spectral norm: default init, as in the published code (see above)
            w = m.weight
            if id(m) in fused:
                c = fused[id(m)]
                nn.init.xavier_normal_(w[:c], gain=GAIN)
                nn.init.xavier_normal_(w[c:], gain=GAIN)
            else:
                nn.init.xavier_normal_(w, gain=GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model
