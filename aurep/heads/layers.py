"""Small building blocks shared by the heads: clip centring, projection MLPs and upsampling
decoder blocks."""

from __future__ import annotations

import torch
from torch import nn


def clip_centred(values: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> the same minus each clip's mean over its T frames."""
    return values - values.mean(dim=1, keepdim=True)


def mlp(in_dim: int, hidden_dim: int, out_dim: int, batchnorm: bool = True) -> nn.Module:
    """Two-layer MLP (N, in_dim) -> (N, out_dim): Linear, [BatchNorm1d], ReLU, Linear;
    ``hidden_dim`` 0 = one Linear (a linear map, the way a linear probe reads features)."""
    if hidden_dim < 0:
        raise ValueError(f"hidden_dim must be >= 0 (0 = linear), got {hidden_dim}")
    if hidden_dim == 0:
        return nn.Linear(in_dim, out_dim)
    norm = nn.BatchNorm1d(hidden_dim) if batchnorm else nn.Identity()
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), norm, nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
    )


def upsample_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """(N, in, h, w) -> (N, out, 2h, 2w): bilinear x2, 3x3 conv, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def upsampling_decoder(
    in_channels: int, width: int, blocks: int, out_channels: int
) -> nn.Sequential:
    """(N, in, h, w) -> (N, out, h * 2**blocks, w * 2**blocks): ``blocks`` upsample blocks of
    ``width`` channels then a 3x3 conv to ``out_channels`` (no activation)."""
    layers = [upsample_block(in_channels if i == 0 else width, width) for i in range(blocks)]
    last_in = width if blocks else in_channels
    layers.append(nn.Conv2d(last_in, out_channels, 3, padding=1))
    return nn.Sequential(*layers)
