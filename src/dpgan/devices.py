"""Which torch device a --device choice means: the one resolver for training, inference,
evaluation and the command line."""

from __future__ import annotations

import os

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


def physical_cpu_cores() -> int | None:
    """Distinct (socket, core) pairs in /proc/cpuinfo; None where it cannot be read (not Linux)."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    cores, socket = set(), "0"
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            socket = value.strip()
        elif key == "core id":
            cores.add((socket, value.strip()))
    return len(cores) or None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, cgroups cpusets, SLURM)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def choose_cpu_threads(requested: int | None = None, processes_per_node: int = 1) -> tuple[int, str]:
    """Set torch's intra-op CPU threads and say why that number: `requested` (--threads), else
    OMP_NUM_THREADS if set (torch reads it), else min(physical cores, usable CPUs) shared among the
    processes of this node. Torch's own default counts every core of the machine, even those another
    process or the affinity mask keeps busy; on a shared machine that oversubscribes the CPUs and runs
    many times slower than fewer threads."""
    if requested is not None:
        if requested < 1:
            raise DPGANError(f"--threads must be at least 1, not {requested}")
        torch.set_num_threads(requested)
        return requested, "--threads"
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads(), "OMP_NUM_THREADS"
    cpus = usable_cpus()
    cores = physical_cpu_cores()
    n = max(1, min(cpus, cores or cpus) // max(1, processes_per_node))
    torch.set_num_threads(n)
    why = f"min(physical cores {cores or '?'}, usable CPUs {cpus})"
    if processes_per_node > 1:
        why += f" / {processes_per_node} processes"
    return n, why
