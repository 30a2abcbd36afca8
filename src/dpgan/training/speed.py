"""Faster training and synthesis with the same results: what `TrainConfig`'s speed options do.

    G, D = speed.prepare_models(G, D, cfg.train, device)    # after make_ema, before DDP wrapping
    step_g = speed.with_autocast(generator_step, cfg.train, device)

Where the time goes (torch.profiler on CPU, benchmarks/RESULTS.md): convolutions, forward and
backward, are 70-80% of a training step; the discriminator runs five forwards per iteration
(three in the D step, two in the G step) and two backwards, so its convolutions dominate. The speed-ups, all of which leave the computed function unchanged:

- Fused resampling in the discriminator (always): a 3x3 conv followed by 2x2 average pooling is
  one 4x4 conv of stride 2, and nearest x2 upsampling followed by a 3x3 conv is one 4x4
  transposed conv of stride 2; both do 2.25x fewer multiply-adds. 1x1 shortcut convs commute
  with pooling and nearest upsampling, so they run at the low resolution (4x fewer). The
  spectral-normalised weight is read once per forward, as before, so the power iterations and
  the parameters (names, shapes, state dict) are unchanged; only rounding differs.
  Below MIN_FUSED_PIXELS the plain ops run: there the weights are large and the images small.
- Synthesis: spectral norm baked into the weights (in eval mode it divides every weight by
  the same sigma at every call), channels_last.
- channels_last (NHWC) memory format, cudnn.benchmark autotuning, torch.compile (with a
  fallback to eager, announced by one warning, when it cannot compile) and bf16 autocast on
  CUDA (master weights, optimiser and losses stay float32): options of `TrainConfig`.

The savings of the training step itself (the D forward on the real image in the G step runs
without a graph, D's weights get no gradient in the G step, a fused EMA) live in train.py and
ema.py; the published code pays for all of them.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import _SpectralNorm

from dpgan.errors import DPGANError
from dpgan.models.discriminator import ResBlockD
from dpgan.inference.pretrained import bake_spectral_norm

PRECISIONS = ("fp32", "bf16")
Fn = TypeVar("Fn", bound=Callable[..., Any])


# ---- precision ----------------------------------------------------------------------------------

def check_precision(precision: str, device: torch.device | str) -> None:
    """bf16 autocast on CUDA only. CPU autocast runs too (and on a CPU with AMX it measured
    2x faster than float32, benchmarks/RESULTS.md), but training in it has not been validated
    here, so it is refused rather than silently changing the numerics of CPU runs."""
    if precision not in PRECISIONS:
        raise DPGANError(f"train.precision must be one of {PRECISIONS}, not {precision!r}")
    if precision == "bf16" and torch.device(device).type != "cuda":
        raise DPGANError(
            f"train.precision 'bf16' needs a CUDA device, but training runs on {torch.device(device).type}; "
            "use precision 'fp32' there"
        )


def autocast(train_cfg, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward passes' precision context: bf16 autocast on CUDA, nothing for fp32.
    Parameters, gradients and Adam state stay float32; autocast runs losses in float32."""
    check_precision(train_cfg.precision, device)
    if train_cfg.precision == "bf16":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def with_autocast(step_fn: Fn, train_cfg, device: torch.device | str) -> Fn:
    """`step_fn` with its forward passes under `autocast`; the caller's backward stays outside
    (PyTorch advises against backward under autocast)."""
    check_precision(train_cfg.precision, device)
    if train_cfg.precision == "fp32":
        return step_fn

    @functools.wraps(step_fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with autocast(train_cfg, device):
            return step_fn(*args, **kwargs)

    return run  # type: ignore[return-value]


# ---- the models ---------------------------------------------------------------------------------

def prepare_models(
    G: nn.Module, D: nn.Module, train_cfg, device: torch.device | str, *, ema: nn.Module | None = None,
    compile_backend: str = "inductor",
) -> tuple[nn.Module, nn.Module]:
    """Apply the speed options to freshly built G and D, in place; returns them.

    Call it after the EMA copy is made and before any DistributedDataParallel wrapping. The EMA
    copy (`ema`) only takes the memory format of G, so that the EMA update runs on matching
    layouts; it is never compiled (it only samples). Parameters and state-dict keys do not change.
    """
    device = torch.device(device)
    check_precision(train_cfg.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = bool(train_cfg.cudnn_benchmark)
    fuse_discriminator(D)
    if train_cfg.channels_last:
        for m in (G, D) if ema is None else (G, D, ema):
            m.to(memory_format=torch.channels_last)
    if train_cfg.compile:
        compile_or_eager(G, backend=compile_backend)
        compile_or_eager(D, backend=compile_backend)
    return G, D


def prepare_generator_for_synthesis(G: nn.Module, *, channels_last: bool = True) -> nn.Module:
    """The inference path, in place: eval mode, spectral-normalised weights computed once and
    stored as plain weights (in eval mode spectral norm only rescales by a fixed sigma: the
    images are bit-identical without channels_last), NHWC on request. The generator can no longer be trained or
    saved as a training checkpoint afterwards (its state-dict keys change): synthesis only.
    Wrap calls in torch.inference_mode()."""
    bake_spectral_norm(G)
    if channels_last:
        G.to(memory_format=torch.channels_last)
    return G


def compile_or_eager(module: nn.Module, *, backend: str = "inductor") -> nn.Module:
    """torch.compile `module`'s forward in place (state-dict keys unchanged). Compilation happens
    at the first call; if it fails there, or torch.compile is unsupported here, the module runs
    eagerly from then on and one warning line says why. Errors of the model itself still raise:
    the eager rerun raises them again."""
    if getattr(module, "_dpgan_compiled", False):
        return module
    if not torch._dynamo.is_dynamo_supported():
        warnings.warn(f"torch.compile is not supported here; {type(module).__name__} runs eagerly", stacklevel=2)
        return module
    for m in module.modules():
        # Compiled with inductor (torch 2.14.1), a D step (three forwards, then one backward)
        # failed in backward: a spectral-norm power-iteration vector saved for backward had been
        # updated in place by the next forward. The normalised weights computed eagerly (a graph
        # break at each) train correctly (tests/test_speed.py).
        if isinstance(m, _SpectralNorm) and "forward" not in vars(m):
            m.forward = torch.compiler.disable(m.forward)
    eager = module.forward
    compiled = torch.compile(eager, backend=backend)
    failed = False

    def forward(*args: Any, **kwargs: Any) -> Any:
        nonlocal failed
        if not failed:
            try:
                return compiled(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - any compiler failure means: run eagerly
                out = eager(*args, **kwargs)  # a genuine model error raises here, unchanged
                failed = True
                reason = (str(err).strip().splitlines() or [""])[0][:200]
                warnings.warn(f"torch.compile of {type(module).__name__} failed ({type(err).__name__}: "
                              f"{reason}); running it eagerly", stacklevel=2)
                return out
        return eager(*args, **kwargs)

    module.forward = forward  # instance attribute: nn.Module.__call__ (and its hooks) still apply
    module._dpgan_compiled = True
    return module


# ---- fused resampling in the discriminator ------------------------------------------------------

# Below this many low-resolution pixels per image (height x width) a block keeps the plain convs:
# building the 4x4 kernel costs a few passes over the weight, which only pays where the weight
# is applied at many positions (high resolution, small weights). Measured on CPU (RESULTS.md).
# Per image, not per batch: a data-parallel split of the batch must not change what is computed.
MIN_FUSED_PIXELS = 512


def box_sum_kernel(w: Tensor) -> Tensor:
    """(O, I, 3, 3) -> (O, I, 4, 4): the 3x3 kernel summed at the four offsets of a 2x2 window,
    built separably (rows, then columns) from slices and two additions."""
    w = torch.cat([w[..., :1], w[..., :-1] + w[..., 1:], w[..., -1:]], dim=-1)
    return torch.cat([w[..., :1, :], w[..., :-1, :] + w[..., 1:, :], w[..., -1:, :]], dim=-2)


def conv3x3_then_avg_pool(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """avg_pool2d(conv(x), 2) as one 4x4 stride-2 conv (the box-summed kernel / 4)."""
    w = conv.weight  # read once: one spectral-norm power iteration, as in the plain block
    if x.shape[-2] * x.shape[-1] < 4 * MIN_FUSED_PIXELS:
        return F.avg_pool2d(F.conv2d(x, w, conv.bias, padding=1), 2)
    return F.conv2d(x, box_sum_kernel(w) * 0.25, conv.bias, stride=2, padding=1)


def nearest_up_then_conv3x3(x: Tensor, conv: nn.Conv2d) -> Tensor:
    """conv(interpolate(x, x2, nearest)) as one 4x4 stride-2 transposed conv: each output
    pixel's 3x3 window covers 2x2 input pixels, whose taps are the box-summed (flipped) kernel."""
    w = conv.weight
    if x.shape[-2] * x.shape[-1] < MIN_FUSED_PIXELS:
        return F.conv2d(_up2(x), w, conv.bias, padding=1)
    k = box_sum_kernel(w.flip(-2, -1)).transpose(0, 1)
    return F.conv_transpose2d(x, k, conv.bias, stride=2, padding=1)


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


class FusedResBlockD(ResBlockD):
    """`ResBlockD` with its resampling folded into the convolutions (module docstring)."""

    def forward(self, x: Tensor) -> Tensor:
        if self.up:
            s = _up2(self.conv_s(x) if self.learned_shortcut else x)
            dx = nearest_up_then_conv3x3(F.leaky_relu(x, 0.2), self.conv1)
            dx = self.conv2(F.leaky_relu(dx, 0.2))
            return s + dx
        s = F.avg_pool2d(x, 2)
        if self.learned_shortcut:
            s = self.conv_s(s)
        dx = self.conv1(x if self.first else F.leaky_relu(x, 0.2))
        return s + conv3x3_then_avg_pool(F.leaky_relu(dx, 0.2), self.conv2)


def _plain_3x3(conv: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros")


def fuse_discriminator(D: nn.Module) -> nn.Module:
    """Switch every residual block of D to `FusedResBlockD` (same module, same parameters)."""
    for m in D.modules():
        if type(m) is ResBlockD and _plain_3x3(m.conv1) and _plain_3x3(m.conv2):
            m.__class__ = FusedResBlockD
    return D
