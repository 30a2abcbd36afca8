"""The training state, named once: what resume, the checkpoint and a roll-back save and load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class TrainingState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0

    def _parts(self) -> dict[str, Any]:
        # checkpoint key -> object; the keys are the checkpoint file format (dpgan.checkpoint)
        return {"generator": self.G, "discriminator": self.D, "generator_ema": self.G_ema,
                "opt_g": self.opt_g, "opt_d": self.opt_d}

    def state_dict(self) -> dict[str, Any]:
        return {**{key: part.state_dict() for key, part in self._parts().items()}, "step": self.step}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """From a checkpoint (which holds these keys among others)."""
        for key, part in self._parts().items():
            part.load_state_dict(saved[key])
        self.step = int(saved["step"])
