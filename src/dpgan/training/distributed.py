"""Data-parallel training with PyTorch's own engine: one process per device, started by torchrun.

    torchrun --nproc_per_node K -m dpgan train ...        (one node; docs/distributed.md: many)

Design, and why it is not `DistributedDataParallel`:

* Gradients are averaged explicitly after the last backward of an update (`World.sync_gradients`):
  flattened into ~32 MiB buckets, all-reduced asynchronously, divided by the world size.
  A DP-GAN step does not fit DDP's model of "one forward, one backward": the D step runs D three
  times (fake, real, LabelMix) before one backward, the G step runs D with frozen parameters
  (a DDP-wrapped D would wait forever for their gradients), and G runs under `no_grad` in the
  D step. Syncing by hand after backward is correct for all of these, makes gradient
  accumulation trivial (sync once, after the last micro-batch), and lets the non-finite check
  ride on the same collective, so every rank takes the same skip/step decision. The price is
  no overlap of communication with backward: ~370 MB of fp32 gradients per step for the
  Cityscapes model, a few ms on NVLink against a step of hundreds of ms.
* The generator's batch norm (SPADE and dual-pyramid normalisation) is synchronised across ranks
  (`train.sync_batchnorm = "generator"`, the published setting); "all" also syncs D's patch-head
  BN (then K ranks x batch b equal one process x K*b up to rounding), "none" syncs nothing.
  On CUDA we use `nn.SyncBatchNorm` (fused kernels); on CPU/gloo, which it refuses, our own
  `SyncedBatchNorm` with a differentiable all-reduce. Both keep BatchNorm's state-dict keys, so
  checkpoints move freely between single- and multi-process runs.
* Every random draw of a step and the class-balance weights belong to the global batch, not to
  a rank (`dpgan.training.global_batch`): a run is the same whatever its split into ranks x micro-batches.
* Small control messages (stop requests, start-up failures) go over a gloo group on the CPU, so
  they never force a GPU synchronisation.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from dpgan.config import SYNC_BATCHNORM
from dpgan.devices import resolve_device
from dpgan.errors import DPGANError

_BUCKET_BYTES = 32 << 20
_MESSAGE_BYTES = 2048


# ---- the world of this process -------------------------------------------------------------------

@dataclass(frozen=True)
class World:
    """Rank, size and device of this process; `size == 1` is plain single-process training."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control_group: Any = None  # gloo group for CPU-side flags (None: the default group)

    @classmethod
    def single(cls, device: torch.device) -> World:
        return cls(device=torch.device(device))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.size > 1

    # -- control plane (CPU, gloo) --
    def any_of(self, flags: Sequence[bool]) -> list[bool]:
        """For each flag: True on every rank when it is true on at least one (one collective)."""
        if not self.is_distributed:
            return [bool(f) for f in flags]
        t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control_group)
        return [bool(v) for v in t.tolist()]

    def first_message(self, message: str | None) -> str | None:
        """The message of the lowest rank that has one, on every rank (None when no rank has)."""
        if not self.is_distributed:
            return message
        src = torch.tensor([self.rank if message is not None else self.size], dtype=torch.int64)
        dist.all_reduce(src, op=dist.ReduceOp.MIN, group=self.control_group)
        if int(src) == self.size:
            return None
        buf = torch.zeros(_MESSAGE_BYTES, dtype=torch.uint8)
        if message is not None and self.rank == int(src):
            raw = message.encode("utf-8")[:_MESSAGE_BYTES]
            buf[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
        dist.broadcast(buf, src=int(src), group=self.control_group)
        return bytes(buf.tolist()).rstrip(b"\0").decode("utf-8", errors="replace")

    def barrier(self) -> None:
        if self.is_distributed:
            dist.barrier(group=self.control_group)

    # -- data plane (the training device) --
    def mean(self, values: Tensor) -> Tensor:
        """Average of a tensor over ranks (the logged losses)."""
        if not self.is_distributed:
            return values
        out = values.detach().clone()
        dist.all_reduce(out)
        return out / self.size

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank."""
        if self.is_distributed:
            tensors = [t.data for t in module.parameters()] + [t.data for t in module.buffers()]
            for bucket in _buckets(tensors):
                flat = torch.cat([t.reshape(-1) for t in bucket])
                dist.broadcast(flat, src=0)
                _unflatten_into(flat, bucket)

    def sync_gradients(self, params: Iterable[nn.Parameter], loss: Tensor) -> Tensor:
        """Average the gradients of `params` over ranks; return a 0-dim bool tensor, on the device,
        that is true when the loss of every rank and every averaged gradient is finite.

        With several ranks a parameter without a gradient counts as a zero gradient, so all ranks
        reduce the same buckets. A non-finite loss on any rank reaches all ranks through the
        same collective.
        """
        grads = []
        for p in params:
            if not p.requires_grad or (p.grad is None and not self.is_distributed):
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
        bad_loss = (~torch.isfinite(loss.detach().reshape(1))).to(torch.float32)
        if self.is_distributed:
            work = []
            flats = []
            for bucket in _buckets(grads):
                flat = torch.cat([g.reshape(-1) for g in bucket])
                flats.append((flat, bucket))
                work.append(dist.all_reduce(flat, async_op=True))
            work.append(dist.all_reduce(bad_loss, async_op=True))
            for w in work:
                w.wait()
            for flat, bucket in flats:
                _unflatten_into(flat.div_(self.size), bucket)
        if not grads:
            return bad_loss[0] == 0
        norms = torch.stack(torch._foreach_norm(grads))
        return torch.isfinite(norms).all() & (bad_loss[0] == 0)

    def close(self) -> None:
        if self.is_distributed and dist.is_initialized():
            dist.destroy_process_group()


def _buckets(tensors: Sequence[Tensor], max_bytes: int = _BUCKET_BYTES) -> list[list[Tensor]]:
    """Consecutive groups of tensors of one dtype and device, each at most ~max_bytes."""
    out: list[list[Tensor]] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        last = out[-1] if out else None
        if last is None or last[0].dtype != t.dtype or last[0].device != t.device or size + nbytes > max_bytes:
            out.append([t])
            size = nbytes
        else:
            last.append(t)
            size += nbytes
    return out


def _unflatten_into(flat: Tensor, bucket: Sequence[Tensor]) -> None:
    offset = 0
    for t in bucket:
        n = t.numel()
        t.copy_(flat[offset : offset + n].view_as(t))
        offset += n


# ---- start-up from torchrun's environment ---------------------------------------------------------

def init_from_env(device: str = "auto", timeout_minutes: float = 30.0) -> World:
    """The World of this process. Under torchrun (WORLD_SIZE > 1) join the process group:
    NCCL on CUDA, gloo on CPU. Without torchrun: a single process on `device`."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank=local_rank, world_size=size)
    if size == 1:
        return World(device=dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=size, timeout=timedelta(minutes=timeout_minutes))
    control = dist.new_group(backend="gloo") if backend != "gloo" else None
    return World(rank=rank, local_rank=local_rank, size=size, device=dev, control_group=control)


# ---- synchronised batch norm ------------------------------------------------------------------------

class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) whose backward is again an all_reduce(SUM): every rank's loss depends on
    the shared statistics, so each rank's input gets the sum of all ranks' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:  # noqa: D102
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # noqa: D102
        out = grad.clone()
        dist.all_reduce(out)
        return out


class SyncedBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics cover the batches of all ranks, on any device.

    `nn.SyncBatchNorm` refuses CPU tensors; this one runs wherever the process group does (gloo
    on CPU: CI, CPU clusters). Two passes (mean, then mean squared deviation), like a
    single-process batch norm, so K ranks x b match one process x K*b to rounding. Outside
    training, or without a process group, it is plain BatchNorm.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([x.sum(dims), count]))
        n = sums[-1]
        mean = sums[:-1] / n
        centred = x - mean.view(shape)
        var = _SumOverRanks.apply((centred * centred).sum(dims)) / n
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp(min=1), m)
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    def _check_input_dim(self, input: Tensor) -> None:  # any rank >= 2, like nn.SyncBatchNorm
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")


def convert_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Replace every BatchNorm in `module` by its synchronised form, sharing parameters and
    buffers (optimisers built before or after see the same tensors)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, SyncedBatchNorm):
        new = SyncedBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        if module.track_running_stats:
            new.running_mean, new.running_var = module.running_mean, module.running_var
            new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_batchnorm(child, device))
    return module


def prepare_models(G: nn.Module, D: nn.Module, world: World, sync_batchnorm: str) -> tuple[nn.Module, nn.Module]:
    """Synchronise batch norm as configured and start every rank from rank 0's weights. Call it
    after the EMA copy is made: the EMA generator runs on rank 0 alone and must stay plain."""
    if sync_batchnorm not in SYNC_BATCHNORM:
        raise DPGANError(f"train.sync_batchnorm must be one of {SYNC_BATCHNORM}, not {sync_batchnorm!r}")
    if not world.is_distributed:
        return G, D
    if sync_batchnorm in ("generator", "all"):
        G = convert_batchnorm(G, world.device)
    if sync_batchnorm == "all":
        D = convert_batchnorm(D, world.device)
    world.broadcast_module(G)
    world.broadcast_module(D)
    return G, D
