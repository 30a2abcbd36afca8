"""Every option of a generator, listed once: the generators and `build_generator` take this."""

from __future__ import annotations

from dataclasses import dataclass

GENERATOR_KINDS = ("oa", "dp")


@dataclass(frozen=True)
class GeneratorOptions:
    kind: str = "dp"  # "oa" (OASIS) or "dp" (dual pyramid)
    width: int = 64  # base channel width (the blocks use 16 ... 1 x width)
    z_dim: int = 64
    use_3d_noise: bool = True
    num_res_blocks: int = 6
    spectral_norm: bool = True
    pyramid_width: int = 64  # dual pyramid only: channels of each pyramid level
    spade_hidden: int = 128  # OASIS only: SPADE's shared hidden layer

    def __post_init__(self) -> None:
        if self.kind not in GENERATOR_KINDS:
            raise ValueError(f"generator kind must be 'oa' or 'dp', not {self.kind!r}")

    @classmethod
    def from_model_config(cls, m) -> GeneratorOptions:
        """From the `model` section of the configuration (its names: generator, g_width, ...)."""
        return cls(kind=m.generator, width=m.g_width, z_dim=m.z_dim, use_3d_noise=m.use_3d_noise,
                   num_res_blocks=m.num_res_blocks, spectral_norm=m.spectral_norm,
                   pyramid_width=m.pyramid_width, spade_hidden=m.spade_hidden)
