"""Which images each training step sees: a pure function of (seed, step).

Epoch e is a permutation drawn from a generator seeded with (seed, e); step s takes the
s-th slice of it. Resuming at step s therefore replays exactly the batches a run that never
stopped would have seen, and each distributed rank takes its own part of the global batch.
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
        self.steps_per_epoch = dataset_size // self.global_batch

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def epoch_permutation(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def batch_indices(self, step: int) -> list[int]:
        epoch, i = divmod(step, self.steps_per_epoch)
        perm = self.epoch_permutation(epoch)
        start = i * self.global_batch + self.rank * self.batch_size
        return perm[start : start + self.batch_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        cached_epoch, perm = -1, None
        for step in range(self.start_step, self.end_step):
            epoch, i = divmod(step, self.steps_per_epoch)
            if epoch != cached_epoch:
                cached_epoch, perm = epoch, self.epoch_permutation(epoch)
            start = i * self.global_batch + self.rank * self.batch_size
            yield perm[start : start + self.batch_size].tolist()  # type: ignore[index]
