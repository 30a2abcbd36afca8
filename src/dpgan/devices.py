"""Which torch device a --device choice means: the one resolver for training, inference,
evaluation and the command line."""

from __future__ import annotations

import torch

from dpgan.errors import DPGANError


def resolve_device(name: str = "auto", *, local_rank: int = 0, world_size: int = 1) -> torch.device:
    """The torch device for --device ('auto', 'cpu', 'cuda' or 'cuda:N'), checked to exist (one
    clear error if not). Under torchrun (world_size > 1) 'cuda' is the GPU of the local rank."""
    cuda_ok = torch.cuda.is_available()
    count = torch.cuda.device_count() if cuda_ok else 0
    if name == "auto":
        name = "cuda" if cuda_ok else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise DPGANError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")
    if not cuda_ok:
        raise DPGANError(f"--device {name} was asked for but no CUDA device is available; use --device cpu")
    if name == "cuda":
        index = local_rank if world_size > 1 else torch.cuda.current_device()
        if index >= count and count == 1:
            index = 0  # the scheduler gave each process its own GPU (CUDA_VISIBLE_DEVICES per task)
        elif index >= count:
            raise DPGANError(
                f"local rank {local_rank} was started but this node has only {count} CUDA device(s) "
                f"visible; start at most {count} processes per node (torchrun --nproc_per_node, "
                f"srun --ntasks-per-node)"
            )
        return torch.device("cuda", index)
    if world_size > 1:
        raise DPGANError(
            f"--device {name}: with torchrun every process uses the GPU of its local rank; pass "
            f"--device cuda (or auto) and choose GPUs with CUDA_VISIBLE_DEVICES"
        )
    dev = torch.device(name)
    if dev.index is not None and dev.index >= count:
        raise DPGANError(f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return dev
