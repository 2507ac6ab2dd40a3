"""What every self-supervised head is, receives and returns. Plain PyTorch, no Lightning.

A head declares :class:`~aurep.data.batch.BatchNeeds` (which inputs of a ClipBatch it reads)
and builds its shape-dependent modules in :meth:`SSLHead.attach` from the shared backbone and
the data's :class:`~aurep.data.batch.ClipSpec`, so no YAML repeats a number the data already
knows (e.g. the number of RoIs). :func:`~aurep.data.batch.check_needs` compares needs and spec
before the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.models.backbone import Backbone, BackboneOutput

Encoder = Callable[[torch.Tensor], BackboneOutput]


@dataclass
class ClipFeatures:
    """Backbone outputs of view 0 of a :class:`ClipBatch`, computed once and shared by all heads.

    maps: list of (B, T, C_i, h_i, w_i), shallow to deep (the backbone's ``levels``).
    pooled: (B, T, C) global average of the deepest map.
    """

    maps: list[torch.Tensor]
    pooled: torch.Tensor

    @classmethod
    def encode(cls, backbone: Backbone | Encoder, frames: torch.Tensor) -> ClipFeatures:
        """frames: (B, T, 3, H, W) normalised -> their features, in one backbone pass."""
        b, t = frames.shape[:2]
        out = backbone(frames.flatten(0, 1))
        return cls(
            maps=[fmap.unflatten(0, (b, t)) for fmap in out.feature_maps],
            pooled=out.pooled.unflatten(0, (b, t)),
        )

    @property
    def map(self) -> torch.Tensor:
        return self.maps[-1]


@dataclass
class HeadOutput:
    """loss: the head's total (scalar, before its ``weight``); logs: detached diagnostic scalars
    by term name (e.g. ``infonce``), each different from the loss (the loss is logged anyway)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class SSLHead(nn.Module):
    """Base class of a self-supervised head: owns its modules and its loss.

    Subclasses set ``needs`` (class attribute or property) and implement :meth:`forward`;
    anything whose shape depends on the backbone or the data is built in :meth:`attach`,
    called once before training. :meth:`after_optimizer_step` runs after each optimiser step
    (EMA encoders, memory queues). ``adversarial`` heads send the backbone a reversed
    gradient: the backbone maximises what the head minimises, so their loss need not fall.

    Args:
        weight: the head's loss weight in the multitask sum; 0 switches the head off (it is
            not built and its inputs are not loaded).
    """

    needs: ClassVar[BatchNeeds] = BatchNeeds()
    adversarial: ClassVar[bool] = False

    def __init__(self, weight: float = 1.0):
        super().__init__()
        if weight < 0:
            raise ValueError(f"{type(self).__name__}: weight must be >= 0, got {weight}")
        self.weight = float(weight)

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        """Build what depends on the backbone or the data; default: nothing."""

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        """batch: normalised clips; features: view 0's shared features; encode: the online
        backbone, for heads that encode other images (masked or re-rendered faces)."""
        raise NotImplementedError

    def after_optimizer_step(self, backbone: Backbone) -> None:
        """Called after each optimiser step with the updated backbone; default: nothing."""
