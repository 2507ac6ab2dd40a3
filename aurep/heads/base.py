"""What every self-supervised head receives and returns. Plain PyTorch, no Lightning."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from aurep.data.batch import ClipBatch
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

    @property
    def map(self) -> torch.Tensor:
        return self.maps[-1]


@dataclass
class HeadOutput:
    """loss: the head's total (scalar, before the task's head weight); logs: detached scalars
    named ``<head>/<term>`` for the logger (each loss term included)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor] = field(default_factory=dict)


class SSLHead(nn.Module):
    """Base class of a self-supervised head: owns its modules and its loss.

    ``name`` prefixes its logs; ``needs_flow`` / ``min_views`` say what the batch must carry.
    :meth:`attach` is called once with the shared backbone before training (e.g. to build a
    momentum copy); :meth:`forward` gets the batch, view 0's shared features and the online
    encoder (for heads that must encode other images, such as masked or re-rendered faces).
    :meth:`on_train_batch_end` runs after each optimiser step (e.g. EMA updates).
    """

    name: str = "head"
    needs_flow: bool = False
    min_views: int = 1

    def attach(self, backbone: Backbone) -> None:
        """Called once with the shared backbone; default: nothing."""

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        raise NotImplementedError

    def on_train_batch_end(self, backbone: Backbone) -> None:
        """Called after each optimiser step with the updated backbone; default: nothing."""
