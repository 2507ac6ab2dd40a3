"""Person-independent features without labels: what a clip's frames share must not vary
between clips.

Every frame of a clip shows the same person, background and lighting; what changes within the
clip is expression (and small motion). A linear identity classifier, or an AU probe confused by
people's resting faces, reads the differences between clips' mean features. This head asks the
pooled feature to vary within clips rather than between them: for every feature dimension, the
variance of the clip means over the batch divided by the dimension's total variance. Scale-free,
so shrinking the features does not help; 0 when every clip has the same mean feature. Meant
beside a head that teaches expression (e.g. landmark_shape): alone, features that never change
would also score 0 up to the ``eps`` floor.
"""

from __future__ import annotations

import torch

from aurep.data.batch import BatchNeeds, ClipBatch
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead


def between_clip_share(pooled: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """pooled: (B, T, C) -> scalar, the mean over C of var_b(clip mean) / var_{b,t}(feature)."""
    flat = pooled.flatten(0, 1)
    total = flat.var(dim=0, unbiased=False)
    between = pooled.mean(dim=1).var(dim=0, unbiased=False)
    return (between / (total + eps)).mean()


class ClipInvarianceHead(SSLHead):
    """Loss: :func:`between_clip_share` of view 0's pooled features (needs T >= 2 frames, and
    clips of at least two people per batch, which the clip sampler guarantees).

    Args:
        eps: variance floor of the ratio's denominator.
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).
    """

    needs = BatchNeeds()

    def __init__(self, eps: float = 1e-6, weight: float = 1.0):
        super().__init__(weight)
        self.eps = eps

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        if features.pooled.shape[1] < 2:
            raise ValueError("ClipInvarianceHead needs clips of at least 2 frames")
        return HeadOutput(between_clip_share(features.pooled, self.eps))
