"""The AU head: pooled features -> one logit per AU (linear probe or small MLP)."""

from __future__ import annotations

import torch
from torch import nn


class AUClassifier(nn.Module):
    """(N, in_features) pooled features -> (N, num_aus) logits.

    ``hidden = 0``: [BatchNorm1d] -> Dropout -> Linear (the TCAE-style BN + linear probe).
    ``hidden > 0``: Linear -> [BatchNorm1d] -> ReLU -> Dropout -> Linear.

    Args:
        in_features: pooled feature width C.
        num_aus: number of AUs A.
        hidden: hidden width of an MLP head; 0 = linear.
        batchnorm: add the BatchNorm1d layer.
        dropout: dropout probability before the last linear layer.
    """

    def __init__(
        self,
        in_features: int,
        num_aus: int,
        hidden: int = 0,
        batchnorm: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        width = hidden if hidden > 0 else in_features
        norm = nn.BatchNorm1d(width) if batchnorm else nn.Identity()
        layers: list[nn.Module] = (
            [nn.Linear(in_features, hidden), norm, nn.ReLU(inplace=True)] if hidden > 0 else [norm]
        )
        layers += [nn.Dropout(dropout), nn.Linear(width, num_aus)]
        self.layers = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)
