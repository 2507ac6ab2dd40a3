"""MoCo-style machinery: cross-rank gathering, a key queue (memory bank) and EMA updates."""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (N, ...) from every rank along dim 0 (no gradient). Without an
    initialised process group this returns ``tensor`` itself. Every rank must pass the same N."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts)


class KeyQueue(nn.Module):
    """A FIFO memory bank of L2-normalised keys, kept as buffers so checkpoints restore it.

    Args:
        size: number of keys held (0 = no queue: :attr:`keys` is empty).
        dim: key dimension.

    Buffers: ``queue`` (size, dim), initialised with random unit vectors (as in MoCo);
    ``pointer`` () int64, the next row to overwrite.
    """

    def __init__(self, size: int, dim: int):
        super().__init__()
        if size < 0 or dim < 1:
            raise ValueError(f"KeyQueue needs size >= 0 and dim >= 1, got size={size}, dim={dim}")
        self.register_buffer("queue", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @property
    def keys(self) -> torch.Tensor:
        """(size, dim) the stored keys (order irrelevant)."""
        return self.queue

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """keys: (N, dim) from this rank; gathered across ranks, then written over the oldest."""
        size = self.queue.shape[0]
        if size == 0:
            return
        keys = gather(keys.detach()).to(self.queue.dtype)[-size:]
        rows = (self.pointer + torch.arange(len(keys), device=self.queue.device)) % size
        self.queue[rows] = keys
        self.pointer.copy_((self.pointer + len(keys)) % size)


def momentum_copy(module: nn.Module) -> nn.Module:
    """A frozen deep copy of ``module`` (``requires_grad=False``) to be updated by EMA."""
    twin = copy.deepcopy(module)
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: nn.Module, source: nn.Module, momentum: float) -> None:
    """target <- momentum * target + (1 - momentum) * source, parameter by parameter.
    Buffers (e.g. BatchNorm statistics) are copied from ``source``."""
    for t, s in zip(target.parameters(), source.parameters(), strict=True):
        t.lerp_(s.detach(), 1.0 - momentum)
    for t, s in zip(target.buffers(), source.buffers(), strict=True):
        t.copy_(s)
