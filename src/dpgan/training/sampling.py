"""Which images each training step sees: a pure function of (seed, step).

Epoch e is a permutation drawn from a generator seeded with (seed, e); step s takes the
s-th slice of it. Resuming at step s therefore replays exactly the batches a run that never
stopped would have seen, and each distributed rank takes its own part of the global batch.
With `keyed=True` each index comes as `(index, key)`, key = the item's slot in the whole
stream, from which datasets seed their crops and flips (see `data.transforms.WorkerRNG`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

from dpgan.errors import DataError


class StepBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        dataset_size: int,
        batch_size: int,
        *,
        seed: int,
        start_step: int,
        end_step: int,
        rank: int = 0,
        world_size: int = 1,
        keyed: bool = False,
    ) -> None:
        self.global_batch = batch_size * world_size
        if dataset_size < self.global_batch:
            raise DataError(
                f"the training set has {dataset_size} images, fewer than one global batch of "
                f"{self.global_batch}; lower --batch-size or add images"
            )
        self.n = dataset_size
        self.batch_size = batch_size
        self.seed = seed
        self.start_step = start_step
        self.end_step = end_step
        self.rank = rank
        self.keyed = keyed
        self.steps_per_epoch = dataset_size // self.global_batch

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def _slice(self, perm: torch.Tensor, step: int) -> list:
        i = step % self.steps_per_epoch
        start = i * self.global_batch + self.rank * self.batch_size
        indices = perm[start : start + self.batch_size].tolist()
        if not self.keyed:
            return indices
        first = step * self.global_batch + self.rank * self.batch_size
        return [(index, first + j) for j, index in enumerate(indices)]

    def batch_indices(self, step: int) -> list:
        return self._slice(self.epoch_permutation(step // self.steps_per_epoch), step)

    def __iter__(self) -> Iterator[list]:
        cached_epoch, perm = -1, None
        for step in range(self.start_step, self.end_step):
            epoch = step // self.steps_per_epoch
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, self.epoch_permutation(epoch)
            yield self._slice(perm, step)  # type: ignore[arg-type]
