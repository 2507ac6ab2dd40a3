"""CLP's cross-identity reconstruction (CIR): render clip A's AUs on clip B's identity."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.layers import mlp, upsampling_decoder
from aurep.models.backbone import Backbone

CODE_DISTANCES = ("cosine", "mse")
RENDER_BASES = ("none", "clip_mean")


class FaceDecoder(nn.Module):
    """G(au, id): codes (N, au_dim), (N, id_dim) -> image (N, 3, size, size) in the normalised
    image space. A linear layer to a ``width`` x 4 x 4 map, then bilinear x2 upsample blocks."""

    def __init__(self, au_dim: int, id_dim: int, width: int, size: int):
        super().__init__()
        blocks = (size // 4).bit_length() - 1
        if size < 4 or 4 * 2**blocks != size:
            raise ValueError(f"render_size must be 4 * 2**k (4, 8, 16, 32, 64...), got {size}")
        self.width = width
        self.stem = nn.Sequential(nn.Linear(au_dim + id_dim, width * 16), nn.ReLU(inplace=True))
        self.body = upsampling_decoder(width, width, blocks, 3)

    def forward(self, au: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        seed = self.stem(torch.cat([au, identity], dim=-1)).view(-1, self.width, 4, 4)
        return self.body(seed)


def code_distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Mean distance between codes (N, D): ``cosine`` = 1 - cos, ``mse`` = squared error."""
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(a, b, dim=-1)).mean()
    return F.mse_loss(a, b)


class CrossIdentityReconstructionHead(SSLHead):
    """Person-independent AU codes by swapping identities between clips.

    AU code per frame: MLP on pooled features (B, T, C) -> (B, T, au_dim). Identity code per
    clip: MLP on the pooled features averaged over the T frames -> (B, id_dim). Decoder
    :class:`FaceDecoder` renders ``render_size`` px faces, either whole (``render_base="none"``,
    the paper) or as a residual added to a clip's mean frame (``"clip_mean"``: the AU code must
    explain how frame t differs from its clip's mean, and a cross render puts A's residual on
    B's mean face). Losses:

    - ``self``: for ``frames_per_clip`` random frames t per clip, L1 between G(au_A,t, id_A)
      and frame t of view 0 area-downsampled to ``render_size`` (no extra backbone pass);
    - ``cross``: for the same frames, x' = G(au_A,t, id_B)
      (B = ``batch.partner``) is bilinearly upsampled to the input size and re-encoded with the
      online backbone; ``au(x')`` must match au_A,t and ``id(x')`` (identity MLP on x' alone)
      must match id_B. The real-image codes are the detached targets (``detach_targets``),
      so these terms train the decoder and the encoder's view of rendered faces;
    - ``cycle`` (only when ``cycle_weight > 0``): G(au(x'), id_A) must reconstruct x_A,t (L1).

    Args:
        au_dim, id_dim: code sizes.
        hidden_dim: hidden width of both code MLPs.
        decoder_width: channels of the decoder's upsample blocks.
        render_size: side of the rendered face, pixels; 4 * 2**k.
        frames_per_clip: frames per clip rendered (self and across identity) and re-encoded
            (extra backbone images per step = B * frames_per_clip).
        self_weight, cross_au_weight, cross_id_weight, cycle_weight: loss weights.
        code_distance: ``cosine`` (1 - cos) or ``mse`` between codes.
        render_base: ``none`` = G renders the face; ``clip_mean`` = G renders the residual on
            the mean frame of the clip whose identity it renders (A's for ``self`` and
            ``cycle``, B's across identity).
        detach_targets: stop gradients through the real-image codes used as targets.
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).

    Logs: ``self``, ``cross_au``, ``cross_id``, ``cycle`` (if on): the unweighted terms;
    ``clip_mean_l1``: the ``self`` term's trivial baseline, each frame rendered as its clip's
    mean frame (what an AU code that carries nothing would give).
    """

    needs = BatchNeeds(partner=True)

    def __init__(
        self,
        au_dim: int = 64,
        id_dim: int = 64,
        hidden_dim: int = 256,
        decoder_width: int = 64,
        render_size: int = 32,
        frames_per_clip: int = 1,
        self_weight: float = 1.0,
        cross_au_weight: float = 1.0,
        cross_id_weight: float = 1.0,
        cycle_weight: float = 0.0,
        code_distance: str = "cosine",
        detach_targets: bool = True,
        render_base: str = "none",
        weight: float = 1.0,
    ):
        super().__init__(weight)
        if code_distance not in CODE_DISTANCES:
            raise ValueError(
                f"code_distance must be one of {CODE_DISTANCES}, got {code_distance!r}"
            )
        if render_base not in RENDER_BASES:
            raise ValueError(f"render_base must be one of {RENDER_BASES}, got {render_base!r}")
        if frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
        self.decoder = FaceDecoder(au_dim, id_dim, decoder_width, render_size)
        self.au_dim, self.id_dim, self.hidden_dim = au_dim, id_dim, hidden_dim
        self.render_size = render_size
        self.frames_per_clip = frames_per_clip
        self.weights = {
            "self": self_weight,
            "cross_au": cross_au_weight,
            "cross_id": cross_id_weight,
            "cycle": cycle_weight,
        }
        self.distance = code_distance
        self.detach_targets = detach_targets
        self.render_base = render_base

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        """Build the AU and identity code MLPs for the backbone's pooled width."""
        self.au_encoder = mlp(backbone.num_features, self.hidden_dim, self.au_dim)
        self.id_encoder = mlp(backbone.num_features, self.hidden_dim, self.id_dim)

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        pooled = features.pooled  # (B, T, C)
        batch_size, length = pooled.shape[:2]
        au = self.au_encoder(pooled.flatten(0, 1)).view(batch_size, length, -1)
        identity = self.id_encoder(pooled.mean(dim=1))  # (B, id_dim)

        frames = batch.frames[:, 0]  # (B, T, 3, H, W)
        picked = torch.randperm(length, device=pooled.device)[: self.frames_per_clip]
        count = len(picked)
        small = F.interpolate(frames[:, picked].flatten(0, 1), size=self.render_size, mode="area")
        # area downsampling is linear: the small mean frame is the mean of the small frames
        means = F.interpolate(frames.mean(dim=1), size=self.render_size, mode="area")
        mean_a = means.repeat_interleave(count, dim=0)  # (B * k, 3, s, s)
        mean_b = means[batch.partner].repeat_interleave(count, dim=0)
        au_a = au[:, picked].flatten(0, 1)  # (B * k, au_dim)
        id_a = identity.repeat_interleave(count, dim=0)
        id_b = identity[batch.partner].repeat_interleave(count, dim=0)

        def render(au_code: torch.Tensor, id_code: torch.Tensor, mean: torch.Tensor):
            face = self.decoder(au_code, id_code)
            return face + mean if self.render_base == "clip_mean" else face

        terms = {"self": F.l1_loss(render(au_a, id_a, mean_a), small)}
        swapped = render(au_a, id_b, mean_b)
        swapped_full = F.interpolate(
            swapped, size=frames.shape[-2:], mode="bilinear", align_corners=False
        )
        swapped_pooled = encode(swapped_full).pooled
        au_swapped = self.au_encoder(swapped_pooled)
        targets_au, targets_id = (
            (au_a.detach(), id_b.detach()) if self.detach_targets else (au_a, id_b)
        )
        terms["cross_au"] = code_distance(au_swapped, targets_au, self.distance)
        terms["cross_id"] = code_distance(
            self.id_encoder(swapped_pooled), targets_id, self.distance
        )
        if self.weights["cycle"] > 0:
            terms["cycle"] = F.l1_loss(render(au_swapped, id_a, mean_a), small)
        loss = sum(self.weights[name] * value for name, value in terms.items())
        logs = {name: value.detach() for name, value in terms.items()}
        logs["clip_mean_l1"] = F.l1_loss(mean_a, small).detach()
        return HeadOutput(loss, logs)
