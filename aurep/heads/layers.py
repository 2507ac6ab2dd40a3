"""Small building blocks shared by the heads: clip and identity centring, projection MLPs and
upsampling decoder blocks."""

from __future__ import annotations

import torch
from torch import nn


def clip_centred(values: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> the same minus each clip's mean over its T frames."""
    return values - values.mean(dim=1, keepdim=True)


def group_means(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """values: (B, T, ...), groups: (B,) int labels (e.g. ``batch.identity``) -> (B, ...) the
    mean over every frame of the clips sharing each clip's label (clips have equal T)."""
    _, inverse = groups.unique(return_inverse=True)
    members = torch.nn.functional.one_hot(inverse).to(values.dtype)  # (B, G)
    clip_means = values.mean(dim=1).flatten(1)  # (B, D)
    means = (members.T @ clip_means) / members.sum(dim=0)[:, None]  # (G, D)
    return (members @ means).view(values.shape[:1] + values.shape[2:])


def group_centred(values: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """(B, T, ...) -> the same minus :func:`group_means` (``groups``: (B,)): with one clip per
    label it is :func:`clip_centred`."""
    return values - group_means(values, groups)[:, None]


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
