"""Generators (OASIS "oa", dual pyramid "dp"), the scale-enhancement discriminator, and the
SPADE baseline's multi-scale PatchGAN."""

from __future__ import annotations

from torch import nn

from dpgan.models.discriminator import DiscriminatorOutput, UNetDiscriminator
from dpgan.models.dual_pyramid import DualPyramidGenerator
from dpgan.models.init import init_weights
from dpgan.models.oasis_generator import ConditionalGenerator, OASISGenerator
from dpgan.models.options import GeneratorOptions
from dpgan.models.patchgan import MultiscalePatchDiscriminator, PatchGANOutput

__all__ = [
    "ConditionalGenerator", "DiscriminatorOutput", "DualPyramidGenerator", "GeneratorOptions",
    "MultiscalePatchDiscriminator", "OASISGenerator", "PatchGANOutput", "UNetDiscriminator",
    "build_discriminator", "build_generator", "build_generator_from_config", "build_models_from_config",
]


def build_generator(options: GeneratorOptions, num_classes: int, *, init: str = "published") -> ConditionalGenerator:
    """The generator `options.kind` names, initialised by the `init` scheme (init.py)."""
    g: ConditionalGenerator
    if options.kind == "dp":
        g = DualPyramidGenerator(num_classes, options)
    else:
        g = OASISGenerator(num_classes, options)
    return init_weights(g, init)


def build_discriminator(
    num_classes: int,
    *,
    width: int = 64,
    num_res_blocks: int = 6,
    patch_heads: str = "enc",
    heads_from_bottleneck: bool = False,
    spectral_norm: bool = True,
    fused_resampling: bool = False,
    init: str = "published",
) -> UNetDiscriminator:
    """`patch_heads` names the features that carry patch heads, as model.patch_loss does: "none",
    or "enc" and/or "dec" joined by "+" (encoder first). `heads_from_bottleneck`: see
    UNetDiscriminator (model.encoder_head_anchor "bottleneck")."""
    places = str(patch_heads).split("+")
    if patch_heads != "none" and places != [p for p in ("enc", "dec") if p in places]:
        raise ValueError(f"patch_heads must be 'none', or 'enc' and/or 'dec' joined by '+', not {patch_heads!r}")
    d = UNetDiscriminator(num_classes, width=width, num_res_blocks=num_res_blocks, encoder_heads="enc" in places,
                          decoder_heads="dec" in places, heads_from_bottleneck=heads_from_bottleneck,
                          spectral_norm=spectral_norm, fused_resampling=fused_resampling)
    return init_weights(d, init)


def build_generator_from_config(model_cfg, num_classes: int) -> ConditionalGenerator:
    """G of a `dpgan.config.ModelConfig` (for synthesis, where no discriminator is needed)."""
    return build_generator(GeneratorOptions.from_model_config(model_cfg), num_classes, init=model_cfg.init)


def build_models_from_config(
    model_cfg, num_classes: int, *, fused_resampling: bool = False
) -> tuple[ConditionalGenerator, nn.Module]:
    """(G, D) of a `dpgan.config.ModelConfig`; D is a `UNetDiscriminator` (with fused
    resampling if asked: training's choice) or, for the SPADE baseline (d_arch
    "multiscale-patch"), a `MultiscalePatchDiscriminator`."""
    m = model_cfg
    g = build_generator_from_config(m, num_classes)
    if m.d_arch == "multiscale-patch":
        d: nn.Module = init_weights(
            MultiscalePatchDiscriminator(num_classes, width=m.d_width, spectral_norm=m.spectral_norm), m.init)
    else:
        d = build_discriminator(num_classes, width=m.d_width, num_res_blocks=m.num_res_blocks,
                                patch_heads=m.patch_loss, heads_from_bottleneck=m.encoder_head_anchor == "bottleneck",
                                spectral_norm=m.spectral_norm,
                                fused_resampling=fused_resampling, init=m.init)
    return g, d


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
