"""The global batch of a data-parallel step: where each image sits, its random draws, alpha_c.

The global batch of a step is batch_size x grad_accum x ranks images. Rank r, micro-batch m
holds global positions (r * grad_accum + m) * batch_size ... + batch_size, which is how
`StepBatchSampler` (batch_size x grad_accum per rank, keyed by global slot) lays them out.
Everything random in a step is drawn for the whole global batch from generators seeded with
(seed, step, purpose) and sliced by position (`StepNoise`): a run does not depend on how its
global batch is split into ranks and micro-batches, and resumes exactly without RNG state.
Class-balance weights are computed from class counts summed over ranks, as the published
DataParallel computed them over the gathered batch.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dpgan import losses
from dpgan.training.distributed import World
from dpgan.errors import DPGANError


def noise_seed(seed: int, step: int, purpose: str) -> int:
    digest = hashlib.blake2b(f"dpgan:{seed}:{step}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass(frozen=True)
class StepNoise:
    """The random draws of one training step for the whole global batch (CPU, float32).

    Rows are global positions: rank r, micro-batch m holds rows (r * accum + m) * b ... + b,
    which is also how `StepBatchSampler` lays a rank's images out in the global batch.
    """

    z_generator_step: Tensor | None  # (global batch, z_dim)
    z_discriminator_step: Tensor | None
    labelmix_coins: Tensor | None  # (global batch, num_classes) of 0/1

    @classmethod
    def draw(cls, seed: int, step: int, global_batch: int, *, z_dim: int | None,
             labelmix_classes: int | None) -> StepNoise:
        def gen(purpose: str) -> torch.Generator:
            return torch.Generator().manual_seed(noise_seed(seed, step, purpose))

        z_g = z_d = coins = None
        if z_dim:
            z_g = torch.randn(global_batch, z_dim, generator=gen("z-g"))
            z_d = torch.randn(global_batch, z_dim, generator=gen("z-d"))
        if labelmix_classes:
            coins = torch.randint(0, 2, (global_batch, labelmix_classes), generator=gen("labelmix"))
        return cls(z_g, z_d, coins)


def micro_batches(batch: Any, world: World, accum: int, noise: StepNoise) -> list[Any]:
    """Split this rank's batch (accum * b images) into `accum` micro-batches of b, each with its
    rows of the step's noise attached (`z_g`, `z_d`, `labelmix_mask` fields of train.Batch)."""
    n = batch.label_map.shape[0]
    if n % accum:
        raise DPGANError(f"a rank's batch of {n} images does not split into train.grad_accum={accum} micro-batches")
    b = n // accum
    dev = batch.label_map.device
    out = []
    for m in range(accum):
        local = slice(m * b, (m + 1) * b)
        start = (world.rank * accum + m) * b
        rows = slice(start, start + b)

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[rows].to(dev, non_blocking=True)

        label_map = batch.label_map[local]
        mask = None if noise.labelmix_coins is None else losses.labelmix_mask_from_coins(label_map, noise.labelmix_coins[rows])
        out.append(dataclasses.replace(
            batch, image=batch.image[local], label_map=label_map, onehot=batch.onehot[local],
            z_g=pick(noise.z_generator_step), z_d=pick(noise.z_discriminator_step), labelmix_mask=mask,
        ))
    return out


def class_balance_weights(world: World, label_map: Tensor, num_classes: int, ignore_index: int | None) -> Tensor:
    """alpha_c over the global batch. One process: exactly `losses.class_balance_weights`."""
    if not world.is_distributed:
        return losses.class_balance_weights(label_map, num_classes, ignore_index)
    counts = torch.bincount(label_map.reshape(-1), minlength=num_classes).to(torch.float64)
    dist.all_reduce(counts)
    return losses.class_balance_weights_from_counts(counts, label_map.numel() * world.size, ignore_index).to(torch.float32)


def accumulate(
    step_fn: Callable[[Any], dict[str, Tensor]],
    micro: Sequence[Any],
    total_key: str,
    models: Sequence[nn.Module] = (),
) -> dict[str, Tensor]:
    """Forward and backward every micro-batch (loss / len(micro)); return the parts averaged
    over micro-batches, detached. Gradients are left summed in `.grad` for `sync_gradients`.

    Every micro-batch starts from the spectral-norm state (u, v) of the update's start, as
    every rank does: the power iterations then match K ranks exactly (D runs up to three
    times per micro-batch), and sigma's estimate advances once per update whatever grad_accum.
    """
    parts_sum: dict[str, Tensor] = {}
    k = len(micro)
    start = _power_iteration_state(models) if k > 1 else []
    for i, mb in enumerate(micro):
        for live, saved in start if i else ():
            live.copy_(saved)
        parts = step_fn(mb)
        (parts[total_key] if k == 1 else parts[total_key] / k).backward()
        for name, value in parts.items():
            v = value.detach() if k == 1 else value.detach() / k
            parts_sum[name] = parts_sum[name] + v if name in parts_sum else v
    return parts_sum


def _power_iteration_state(models: Sequence[nn.Module]) -> list[tuple[Tensor, Tensor]]:
    """(buffer, copy) of the u and v vectors of every spectral norm (torch parametrizations)."""
    return [(b, b.detach().clone()) for model in models for m in model.modules() if hasattr(m, "_power_method")
            for b in (m._u, m._v)]
