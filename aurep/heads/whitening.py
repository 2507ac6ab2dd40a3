"""A regression loss that weighs every principal direction of the target alike.

Mean squared error over standardised coordinates weighs each principal direction of a
correlated target by its variance: with landmark shapes, a few large expression modes (jaw
drop, smile, brow raise) fill the loss and the subtle ones (lip pressor, lip tightener, lip
corner depressor, at 1e-2 to 1e-4 of the largest variance) hardly count. Whitening the error
with the target's running covariance counts each direction once, down to a variance floor
that keeps noise directions (a landmark detector's jitter, numerical residue) from being
amplified.
"""

from __future__ import annotations

import torch
from torch import nn


class RunningCovariance(nn.Module):
    """The (D, D) covariance of the rows a module sees in training mode, as an exponential
    moving average (starts at the identity, like BatchNorm's running variance at 1)."""

    def __init__(self, dim: int, momentum: float = 0.01):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("covariance", torch.eye(dim))

    @torch.no_grad()
    def update(self, rows: torch.Tensor) -> None:
        """rows: (N, D), N >= 2; ignored in eval mode."""
        if not self.training:
            return
        centred = rows.float() - rows.float().mean(dim=0)
        batch = centred.T @ centred / (len(rows) - 1)
        self.covariance.lerp_(batch, self.momentum)


def whitened_mse(error: torch.Tensor, covariance: torch.Tensor, floor: float) -> torch.Tensor:
    """error: (N, D) prediction - target, covariance: (D, D) the target's -> scalar, the mean of
    e^T C_f^-1 e divided by its value for predicting zero, tr(C_f^-1 C) (so predicting the mean
    scores 1). C_f is the covariance with every eigenvalue raised to at least ``floor`` times
    the largest (``floor`` in (0, 1]: 1 gives the plain mean squared error of the
    coordinates, up to the covariance's scale)."""
    variances, directions = torch.linalg.eigh(covariance.double())
    kept = variances.clamp(min=floor * variances.max().item())
    along = error.double() @ directions  # (N, D) in the eigenbasis
    quadratic = (along.square() / kept).sum(dim=1).mean()
    return (quadratic / (variances.clamp(min=0) / kept).sum()).to(error.dtype)
