"""CLP's temporal contrastive learning (TCL): margin InfoNCE between two views of a clip."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.layers import clip_centred, mlp
from aurep.heads.losses import margin_info_nce, temporal_log_weights, temporal_ranking_loss
from aurep.heads.memory_bank import KeyQueue, ema_update, momentum_copy
from aurep.models.backbone import Backbone


class TemporalContrastiveHead(SSLHead):
    """Frame-wise discriminative, temporally coherent AU embeddings (MoCo-style, needs 2 views).

    Queries: the projector on view 0's pooled features, L2-normalised, (B, T, d). Keys: a
    momentum (EMA) copy of backbone + projector on view 1, no gradient. For frame i the positive
    is key i with an additive cosine ``margin``; the negatives are the other frames' keys of the
    same clip, weighted by temporal distance (``distance_power``, see
    :func:`~aurep.heads.losses.temporal_log_weights`), plus the queue of keys from earlier
    batches (gathered across ranks). Optional ranking term on the query-key similarities:
    a nearer frame must beat a farther one by ``rank_margin``.

    Args:
        embed_dim: embedding size d.
        hidden_dim: projector hidden width.
        temperature: InfoNCE temperature tau.
        margin: additive margin m subtracted from the positive cosine.
        queue_size: keys held in the memory bank (0 = in-clip negatives only).
        momentum: EMA momentum of the key encoder (per optimiser step).
        distance_power: in-clip negative weight ``(|i-j| / (T-1)) ** p``; 0 = no weighting.
        rank_weight: weight of the ranking term (0 = off, not computed).
        rank_margin: ranking margin delta (cosine units).
        clip_centred: subtract each clip's mean projection before normalising (queries and
            keys): what all frames of a clip share (identity, background, lighting) is removed,
            so only what changes within the clip can tell its frames apart. Needs
            ``queue_size=0`` (queue keys of other clips would be centred on their own clip).
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).

    Logs: ``pos_sim`` (mean positive cosine); with the ranking term on, ``infonce`` and ``rank``.
    """

    needs = BatchNeeds(views=2)

    def __init__(
        self,
        embed_dim: int = 128,
        hidden_dim: int = 512,
        temperature: float = 0.1,
        margin: float = 0.1,
        queue_size: int = 1024,
        momentum: float = 0.99,
        distance_power: float = 1.0,
        rank_weight: float = 0.1,
        rank_margin: float = 0.05,
        clip_centred: bool = False,
        weight: float = 1.0,
    ):
        super().__init__(weight)
        if temperature <= 0 or not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"TemporalContrastiveHead needs temperature > 0 and 0 <= momentum <= 1, "
                f"got temperature={temperature}, momentum={momentum}"
            )
        if clip_centred and queue_size > 0:
            raise ValueError(
                "TemporalContrastiveHead clip_centred=True compares frames within a clip only: "
                f"set queue_size=0 (got {queue_size}; queued keys are centred on other clips)"
            )
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.margin = margin
        self.momentum = momentum
        self.distance_power = distance_power
        self.rank_weight = rank_weight
        self.rank_margin = rank_margin
        self.clip_centred = clip_centred
        self.queue = KeyQueue(queue_size, embed_dim)
        self._pending_keys: list[torch.Tensor] = []

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        """Build the projector and the frozen momentum copies of backbone and projector."""
        self.projector = mlp(backbone.num_features, self.hidden_dim, self.embed_dim)
        self.key_backbone = momentum_copy(backbone)
        self.key_projector = momentum_copy(self.projector)

    def normalise(self, projected: torch.Tensor) -> torch.Tensor:
        """projected: (B, T, d) -> (B, T, d) unit vectors, clip mean removed if ``clip_centred``."""
        if self.clip_centred:
            projected = clip_centred(projected)
        return F.normalize(projected, dim=-1)

    def embed(self, pooled: torch.Tensor) -> torch.Tensor:
        """pooled: (B, T, C) -> (B, T, d) L2-normalised query embeddings."""
        return self.normalise(self.projector(pooled.flatten(0, 1)).view(*pooled.shape[:2], -1))

    @torch.no_grad()
    def encode_keys(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, 3, H, W) -> (B, T, d) L2-normalised keys from the momentum encoder."""
        pooled = self.key_backbone(frames.flatten(0, 1)).pooled
        return self.normalise(self.key_projector(pooled).view(*frames.shape[:2], -1))

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        if batch.num_views < 2:
            raise ValueError(
                f"TemporalContrastiveHead needs 2 views per clip, the batch has {batch.num_views}"
            )
        queries = self.embed(features.pooled)
        keys = self.encode_keys(batch.frames[:, 1])
        log_weights = (
            temporal_log_weights(batch.clip_length, self.distance_power).to(queries.device)
            if self.distance_power > 0
            else None
        )
        infonce = margin_info_nce(
            queries, keys, self.queue.keys, self.temperature, self.margin, log_weights
        )
        similarity = torch.einsum("bid,bjd->bij", queries, keys)
        logs = {"pos_sim": similarity.diagonal(dim1=1, dim2=2).mean()}
        loss = infonce
        if self.rank_weight > 0:
            rank = temporal_ranking_loss(similarity, self.rank_margin)
            loss = loss + self.rank_weight * rank
            logs.update(infonce=infonce, rank=rank)
        if self.training:
            self._pending_keys.append(keys.flatten(0, 1))
        return HeadOutput(loss, {k: v.detach() for k, v in logs.items()})

    @torch.no_grad()
    def after_optimizer_step(self, backbone: Backbone) -> None:
        """EMA-update the key encoder towards ``backbone`` + projector; enqueue this step's keys."""
        ema_update(self.key_backbone, backbone, self.momentum)
        ema_update(self.key_projector, self.projector, self.momentum)
        for keys in self._pending_keys:
            self.queue.enqueue(keys)
        self._pending_keys.clear()
