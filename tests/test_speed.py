"""The speed-ups (dpgan.training.speed, the discriminator's fused resampling in
dpgan.models.fused_resampling) compute what the plain path computes.

Tolerances: the fused kernels are checked in float64 (exact up to 1e-10). The optimised
float32 path (fused resampling + channels_last; torch.compile takes ~2 minutes on CPU for
these models, so it is tested on its own below) is compared with the plain path on one G step
and one D step of a tiny configuration: losses to a relative 1e-6 and every gradient to
2e-5 x the largest gradient of its model. Measured (torch 2.14.1, CPU): losses 8.1e-8
relative, gradients 8.2e-7 (G) and 2.5e-7 (D): float32 rounding of sums taken in another order.
"""

import copy
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dpgan import losses
from dpgan.training import speed
from dpgan.config import Config, DataConfig, ModelConfig, TrainConfig
from dpgan.errors import DPGANError
from dpgan.models import build_discriminator, build_models_from_config
from dpgan.models import fused_resampling
from dpgan.models.discriminator import FusedResBlockD, ResBlockD
from dpgan.tensors import one_hot
from dpgan.training.steps import Batch, Objective, discriminator_step, generator_step

N = 6


def _cfg(**train) -> Config:
    return Config(
        name="tiny",
        data=DataConfig(height=32, width=64),
        model=ModelConfig(g_width=4, d_width=4, z_dim=8, pyramid_width=8, spade_hidden=8, num_res_blocks=4),
        train=TrainConfig(batch_size=2, **train),
    )


def _batch(b=2, h=32, w=64) -> Batch:
    g = torch.Generator().manual_seed(1)
    label = torch.randint(0, N, (b, h, w), generator=g)
    return Batch(torch.rand(b, 3, h, w, generator=g) * 2 - 1, label, one_hot(label, N),
                 z_g=torch.randn(b, 8, generator=g), z_d=torch.randn(b, 8, generator=g),
                 labelmix_mask=losses.labelmix_mask(label, N, generator=g))


def _one_iteration(cfg, G, D, batch):
    alpha = losses.class_balance_weights(batch.label_map, N)
    D.requires_grad_(False)
    parts = generator_step(Objective.from_config(cfg), G, D, batch, alpha)
    parts["g/total"].backward()
    D.requires_grad_(True)
    parts.update(discriminator_step(Objective.from_config(cfg), G, D, batch, alpha))
    parts["d/total"].backward()
    return {k: float(v.detach()) for k, v in parts.items()}


def _max_grad_error(a: nn.Module, b: nn.Module) -> float:
    scale = max(p.grad.abs().max().item() for p in a.parameters())
    return max((p.grad - q.grad).abs().max().item() for p, q in zip(a.parameters(), b.parameters())) / scale


@pytest.mark.parametrize("min_pixels", [1, fused_resampling.MIN_FUSED_PIXELS])  # every block fused / the default rule
def test_optimised_fp32_path_gives_the_plain_losses_and_gradients(monkeypatch, min_pixels):
    monkeypatch.setattr(fused_resampling, "MIN_FUSED_PIXELS", min_pixels)
    cfg = _cfg(channels_last=True)
    G0, D0 = build_models_from_config(cfg.model, N)
    _, D1 = build_models_from_config(cfg.model, N, fused_resampling=True)
    D1.load_state_dict(D0.state_dict())
    G1 = copy.deepcopy(G0)
    speed.prepare_models(G1, D1, cfg.train, "cpu")
    assert all(type(m) is FusedResBlockD for m in D1.modules() if isinstance(m, ResBlockD))
    assert not any(type(m) is FusedResBlockD for m in D0.modules())
    assert D1.body_down[1].conv1.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
    assert list(D1.state_dict()) == list(D0.state_dict())  # checkpoints do not change

    plain, fast = _one_iteration(cfg, G0, D0, _batch()), _one_iteration(cfg, G1, D1, _batch())
    for k in plain:
        assert fast[k] == pytest.approx(plain[k], rel=1e-6, abs=1e-8), k
    assert _max_grad_error(G0, G1) < 2e-5
    assert _max_grad_error(D0, D1) < 2e-5
    # the same number of spectral-norm power iterations ran (D: 5 forwards)
    for (name, b0), (_, b1) in zip(D0.named_buffers(), D1.named_buffers()):
        if name.endswith("_u"):
            torch.testing.assert_close(b1, b0, rtol=1e-4, atol=1e-5)


def test_fused_kernels_are_the_resampled_convolutions(monkeypatch):
    monkeypatch.setattr(fused_resampling, "MIN_FUSED_PIXELS", 1)
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1).double()
    x = torch.randn(3, 5, 12, 18, generator=g, dtype=torch.float64)
    torch.testing.assert_close(fused_resampling.conv3x3_then_avg_pool(x, conv), F.avg_pool2d(conv(x), 2), rtol=0, atol=1e-10)
    torch.testing.assert_close(fused_resampling.nearest_up_then_conv3x3(x, conv),
                               conv(F.interpolate(x, scale_factor=2.0, mode="nearest")), rtol=0, atol=1e-10)


def test_small_inputs_keep_the_plain_convolutions(monkeypatch):
    """Below MIN_FUSED_PIXELS the plain ops run (building the 4x4 kernel would cost more)."""
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(1, 4, 8, 8)
    calls = []
    monkeypatch.setattr(fused_resampling, "box_sum_kernel", lambda w: calls.append(w) or torch.zeros(4, 4, 4, 4))
    torch.testing.assert_close(fused_resampling.conv3x3_then_avg_pool(x, conv), F.avg_pool2d(conv(x), 2))
    assert not calls
    monkeypatch.setattr(fused_resampling, "MIN_FUSED_PIXELS", 1)
    fused_resampling.conv3x3_then_avg_pool(x, conv)
    assert len(calls) == 1


class _Boom(nn.Module):
    def forward(self, x):
        if x.shape[-1] == 3:
            raise ValueError("bad width")
        return torch.tanh(x) * 2


def _failing_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


def test_compile_failure_falls_back_to_eager_with_one_warning():
    m = speed.compile_or_eager(_Boom(), backend=_failing_backend)
    x = torch.randn(2, 4)
    with pytest.warns(UserWarning, match=r"torch.compile of _Boom failed .*running it eagerly"):
        out = m(x)
    torch.testing.assert_close(out, torch.tanh(x) * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, no second attempt
        torch.testing.assert_close(m(x + 1), torch.tanh(x + 1) * 2)


def test_errors_of_the_model_are_not_hidden_by_the_fallback():
    m = speed.compile_or_eager(_Boom(), backend="eager")
    with pytest.raises(ValueError, match="bad width"):
        m(torch.randn(2, 3))
    torch.testing.assert_close(m(torch.ones(1, 4)), torch.tanh(torch.ones(1, 4)) * 2)


def test_compiled_discriminator_runs_several_forwards_before_one_backward():
    """D runs three times before the D step's backward; spectral norm must survive compile."""
    D0 = build_discriminator(N, width=2, num_res_blocks=3)
    D1 = speed.compile_or_eager(copy.deepcopy(D0), backend="aot_eager")
    xs = [torch.randn(2, 3, 16, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    for d in (D0, D1):
        outs = [d(x) for x in xs]
        sum(o.logits.square().mean() + o.patch_scores[0].mean() for o in outs).backward()
    assert _max_grad_error(D0, D1) < 1e-5


def test_precision_is_checked():
    with pytest.raises(DPGANError, match="bf16.*CUDA"):
        speed.check_precision("bf16", "cpu")
    with pytest.raises(DPGANError, match="precision"):
        speed.check_precision("fp16", "cuda")
    G, D = build_models_from_config(_cfg().model, N)
    with pytest.raises(DPGANError, match="bf16"):
        speed.prepare_models(G, D, TrainConfig(precision="bf16"), "cpu")
    fp32 = TrainConfig()
    assert speed.with_autocast(generator_step, fp32, "cpu") is generator_step
    with speed.autocast(fp32, "cpu"):
        assert not torch.is_autocast_enabled("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no CUDA here: torch says it disables the context
        ctx = speed.autocast(TrainConfig(precision="bf16"), "cuda")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16 and ctx.device == "cuda"


def _train_cfg(**train) -> Config:
    return Config(
        name="tiny",
        data=DataConfig(height=32, width=64, num_train=8, num_val=2, num_workers=0),
        model=ModelConfig(g_width=4, d_width=4, z_dim=8, pyramid_width=8, spade_hidden=8, num_res_blocks=4),
        train=TrainConfig(steps=2, batch_size=2, log_every=1, sample_every=2, checkpoint_every=2,
                          ema_bn_batches=1, **train),
    )


def test_training_runs_with_channels_last_and_resumes_into_a_plain_model(tmp_path):
    from dpgan.checkpoint import load_checkpoint
    from dpgan.data.synthetic import SYNTHETIC_STREETS
    from dpgan.training.loop import train

    result = train(_train_cfg(channels_last=True), tmp_path / "run", device="cpu", progress=False)
    assert result.step == 2 and all(v == v for v in result.last_losses.values())
    ck = load_checkpoint(tmp_path / "run", map_location="cpu")
    G, _ = build_models_from_config(_train_cfg().model, SYNTHETIC_STREETS.num_classes)
    G.load_state_dict(ck["generator_ema"])  # a plain (contiguous) model loads it


def test_training_refuses_bf16_on_cpu_before_writing_anything(tmp_path):
    from dpgan.training.loop import train

    with pytest.raises(DPGANError, match="bf16"):
        train(_train_cfg(precision="bf16"), tmp_path / "run", device="cpu", progress=False)
    assert not (tmp_path / "run" / "config.json").exists()


def test_synthesis_generator_gives_the_same_images_and_leaves_copies_alone():
    G, _ = build_models_from_config(_cfg().model, N)
    with torch.no_grad():
        G(_batch().onehot, _batch().z_g)  # running statistics away from their initial values
    G.eval()
    twin = copy.deepcopy(G)  # shares torch's parametrized classes with G, as the EMA copy does
    batch = _batch()
    with torch.no_grad():
        ref = G(batch.onehot, batch.z_g)
    plain = speed.prepare_generator_for_synthesis(copy.deepcopy(G), channels_last=False)
    nhwc = speed.prepare_generator_for_synthesis(copy.deepcopy(G), channels_last=True)
    assert not any("parametrizations" in k for k in plain.state_dict())
    with torch.inference_mode():
        assert torch.equal(plain(batch.onehot, batch.z_g), ref)
        torch.testing.assert_close(nhwc(batch.onehot, batch.z_g), ref, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        assert torch.equal(twin(batch.onehot, batch.z_g), ref)  # still spectral-normalised and working
