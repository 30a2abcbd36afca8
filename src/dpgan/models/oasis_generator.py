"""The OASIS generator (the "OA" generator of the paper's ablations) and what both generators
share: turning a label map and a noise vector into the conditioning input.

Input to every conditioning layer: [z ; one-hot label] ("3D noise"): z channels first, then
the label channels, as in the published code, so published checkpoints convert.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dpgan.models.options import GeneratorOptions
from dpgan.models.spade import SPADEResBlock, generator_channels, resize_nearest


class ConditionalGenerator(nn.Module):
    """Label map (+ noise) -> image in [-1, 1]. Subclasses build the trunk."""

    def __init__(self, num_classes: int, options: GeneratorOptions) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.z_dim = options.z_dim if options.use_3d_noise else 0
        self.use_3d_noise = options.use_3d_noise
        self.num_res_blocks = options.num_res_blocks

    @property
    def cond_channels(self) -> int:
        return self.num_classes + self.z_dim

    def condition(self, label_map: Tensor, z: Tensor | None) -> Tensor:
        """[z ; one-hot] at full resolution. `label_map`: one-hot (B, N, H, W) or ids (B, H, W).
        `z`: None (sampled), (B, z_dim) (one vector per image) or (B, z_dim, H, W) (a noise map,
        so that one region can be resampled while the rest stays fixed)."""
        if label_map.dim() == 3:
            if label_map.dtype.is_floating_point:
                raise ValueError("an id label map must be an integer tensor (B, H, W)")
            if label_map.numel() and (int(label_map.max()) >= self.num_classes or int(label_map.min()) < 0):
                raise ValueError(
                    f"label map holds id {int(label_map.max())}, outside [0, {self.num_classes})"
                )
            label_map = F.one_hot(label_map, self.num_classes).permute(0, 3, 1, 2).float()
        if label_map.dim() != 4 or label_map.shape[1] != self.num_classes:
            raise ValueError(
                f"expected a one-hot label map (B, {self.num_classes}, H, W) or ids (B, H, W), "
                f"got shape {tuple(label_map.shape)}"
            )
        if not self.use_3d_noise:
            return label_map
        b, _, h, w = label_map.shape
        if z is None:
            z = torch.randn(b, self.z_dim, device=label_map.device, dtype=label_map.dtype)
        if z.dim() == 2:
            z = z[:, :, None, None].expand(b, self.z_dim, h, w)
        if z.shape != (b, self.z_dim, h, w):
            raise ValueError(f"z must be (B, {self.z_dim}) or (B, {self.z_dim}, {h}, {w}), got {tuple(z.shape)}")
        return torch.cat([z.to(label_map.dtype), label_map], dim=1)

    def build_trunk(self, width: int, spade_cond: int, spade_hidden: int, spectral_norm: bool) -> None:
        """First conv at 1/2^(n-1), n SPADE blocks with x2 upsampling between them, conv to RGB."""
        ch = generator_channels(width, self.num_res_blocks)
        self.fc = nn.Conv2d(self.cond_channels, ch[0], 3, padding=1)
        self.body = nn.ModuleList(
            SPADEResBlock(ch[i], ch[i + 1], spade_cond, hidden=spade_hidden, spectral_norm=spectral_norm)
            for i in range(self.num_res_blocks)
        )
        self.conv_img = nn.Conv2d(ch[-1], 3, 3, padding=1)

    def block_conditions(self, cond: Tensor) -> Callable[[int, torch.Size], Tensor]:
        """(block index, its spatial size) -> what that block's SPADE layers are conditioned on."""
        raise NotImplementedError

    def forward(self, label_map: Tensor, z: Tensor | None = None) -> Tensor:
        cond = self.condition(label_map, z)
        condition_of = self.block_conditions(cond)
        x = self.fc(resize_nearest(cond, self.latent_size(*cond.shape[-2:])))
        for i, block in enumerate(self.body):
            x = block(x, condition_of(i, x.shape[-2:]))
            if i < len(self.body) - 1:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return torch.tanh(self.conv_img(F.leaky_relu(x, 0.2)))

    def latent_size(self, h: int, w: int) -> tuple[int, int]:
        stride = 2 ** (self.num_res_blocks - 1)
        if h % stride or w % stride:
            raise ValueError(f"image size {h}x{w} must be a multiple of {stride} for {self.num_res_blocks} blocks")
        return h // stride, w // stride


class OASISGenerator(ConditionalGenerator):
    """SPADE blocks from 1/2^(n-1) to full resolution, every SPADE conditioned on [z ; label]
    resized to its scale, through a shared hidden layer of `spade_hidden` channels."""

    def __init__(self, num_classes: int, options: GeneratorOptions = GeneratorOptions(kind="oa")) -> None:
        super().__init__(num_classes, options)
        self.build_trunk(options.width, self.cond_channels, options.spade_hidden, options.spectral_norm)

    def block_conditions(self, cond: Tensor) -> Callable[[int, torch.Size], Tensor]:
        return lambda i, size: resize_nearest(cond, size)  # once per block, not once per SPADE
