"""Initialisation: the published scheme, and the one the CPU preset trains with.

Both: convs and linears without spectral norm get Xavier-normal weights with gain 0.02 and
zero biases; BatchNorm weights N(1, 0.02), zero biases; a fused gamma/beta conv of SPADE is
initialised half by half, as the two published convs.

They differ in the spectral-normalised convs:
- "published": Xavier-normal (gain 0.02) as well, as the published code effectively does. Its
  `init_weights` writes into `m.weight.data`; right after the old `spectral_norm` is applied
  `weight` shares storage with `weight_orig`, so the write lands in `weight_orig`. Measured on
  the published code at Cityscapes widths: `weight_orig` std equals the Xavier(0.02) formula,
  25-35x below PyTorch's default; the normalised weight after the first forward is the same
  scale either way (normalisation divides the scale out), but Adam's steps are of fixed size,
  so each update turns the small `weight_orig` 25-35x further: a much larger effective
  learning rate for every spectral-normalised layer (docs/training-dynamics.md).
- "sn-default": spectral-normalised convs keep PyTorch's default (Kaiming-uniform) weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from dpgan.models.spade import SPADE

GAIN = 0.02
SCHEMES = ("published", "sn-default")


@torch.no_grad()
def init_weights(model: nn.Module, scheme: str = "published") -> nn.Module:
    if scheme not in SCHEMES:
        raise ValueError(f"initialisation scheme must be one of {SCHEMES}, not {scheme!r}")
    fused = {id(m.gamma_beta): m.channels for m in model.modules() if isinstance(m, SPADE)}
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if m.weight is not None:
                nn.init.normal_(m.weight, 1.0, GAIN)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            if parametrize.is_parametrized(m, "weight"):
                if scheme == "sn-default":
                    continue
                w = m.parametrizations.weight.original  # the published write lands here (see above)
            else:
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
