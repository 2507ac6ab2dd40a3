"""Person-independent features by an identity adversary (gradient reversal, Ganin & Lempitsky
2015): a classifier learns to name the person from each frame's pooled feature while the
backbone, through the reversed gradient, learns to make that impossible. The identity numbers
come with every clip batch (which video belongs to whom), so no AU label is used. Meant beside
a head that teaches expression (e.g. landmark_shape): alone it only removes information.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.layers import mlp
from aurep.models.backbone import Backbone


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-scale`` backward."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return inputs.view_as(inputs)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.scale * grad, None


def reverse_gradient(inputs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``inputs`` unchanged; the gradient flowing back through it is multiplied by ``-scale``."""
    return _ReverseGradient.apply(inputs, scale)


class IdentityAdversaryHead(SSLHead):
    """Identity classifier on every frame's pooled feature (view 0) behind a gradient
    reversal: the classifier minimises the cross-entropy of the identity, the backbone
    maximises it (times ``reversal``). Loss: the cross-entropy (chance = log of the number of
    identities).

    Args:
        hidden_dim: classifier hidden width; 0 = a linear classifier (the kind of identity
            probe the benchmark uses).
        reversal: scale of the reversed gradient reaching the backbone (0 = the backbone is
            left alone and the head only measures identity).
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).

    Logs: ``accuracy`` of the classifier on the batch (lower = more person-independent).
    """

    needs = BatchNeeds()
    adversarial = True

    def __init__(self, hidden_dim: int = 256, reversal: float = 1.0, weight: float = 0.1):
        super().__init__(weight)
        if reversal < 0:
            raise ValueError(f"IdentityAdversaryHead reversal must be >= 0, got {reversal}")
        self.hidden_dim, self.reversal = hidden_dim, reversal

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        if spec.num_identities < 2:
            raise ValueError(
                f"IdentityAdversaryHead needs identity numbers of at least 2 people, "
                f"{spec.source} gives {spec.num_identities}"
            )
        self.classifier = mlp(backbone.num_features, self.hidden_dim, spec.num_identities)

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        pooled = features.pooled.flatten(0, 1)  # (B * T, C)
        logits = self.classifier(reverse_gradient(pooled, self.reversal))
        identity = batch.identity.repeat_interleave(features.pooled.shape[1])
        loss = F.cross_entropy(logits, identity)
        accuracy = (logits.argmax(dim=-1) == identity).float().mean()
        return HeadOutput(loss, {"accuracy": accuracy.detach()})
