"""Faster training and synthesis with the same results: what `TrainConfig`'s speed options do.

    G, D = speed.prepare_models(G, D, cfg.train, device)    # after make_ema, before DDP wrapping
    step_g = speed.with_autocast(generator_step, cfg.train, device)

Where the time goes (torch.profiler on CPU, benchmarks/RESULTS.md): convolutions, forward and
backward, are 70-80% of a training step; the discriminator runs five forwards per iteration
(three in the D step, two in the G step) and two backwards, so its convolutions dominate. The speed-ups, all of which leave the computed function unchanged:

- Fused resampling in the discriminator (always, in training): the discriminator's own code
  path, chosen when it is built (`UNetDiscriminator(fused_resampling=True)`, see
  dpgan/models/fused_resampling.py); same parameters and state-dict keys, only rounding differs.
- Synthesis: spectral norm baked into the weights (in eval mode it divides every weight by
  the same sigma at every call), channels_last.
- channels_last (NHWC) memory format, cudnn.benchmark autotuning, torch.compile (with a
  fallback to eager, announced by one warning, when it cannot compile) and bf16 autocast on
  CUDA (master weights, optimiser and losses stay float32): options of `TrainConfig`.

The savings of the training step itself (the D forward on the real image in the G step runs
without a graph, D's weights get no gradient in the G step, a fused EMA) live in training/steps.py,
training/global_batch.py and training/ema.py; the published code pays for all of them.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn
from torch.nn.utils.parametrizations import _SpectralNorm

from dpgan.config import PRECISIONS
from dpgan.errors import DPGANError
from dpgan.inference.pretrained import bake_spectral_norm

Fn = TypeVar("Fn", bound=Callable[..., Any])


# ---- precision ----------------------------------------------------------------------------------

def check_precision(precision: str, device: torch.device | str) -> None:
    """bf16 autocast on CUDA only. CPU autocast runs too (benchmarks/RESULTS.md has its speed
    on a CPU with AMX), but training in it has not been validated
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
