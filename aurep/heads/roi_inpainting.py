"""RTATL's RoI inpainting: mask AU regions, recover their pixels from the visible ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.models.backbone import Backbone

FILLS = ("zero", "mean", "noise")
PATCH_BASES = ("none", "clip_mean", "standardised")


def box_masks(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """boxes: (N, R, 4) ``x1, y1, x2, y2`` pixels -> (N, R, H, W) bool, True for pixels whose
    centre lies inside the box."""
    ys = torch.arange(height, device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(width, device=boxes.device, dtype=boxes.dtype) + 0.5
    x1, y1, x2, y2 = (boxes[..., i, None, None] for i in range(4))
    inside_x = (xs >= x1) & (xs < x2)  # (N, R, 1, W)
    inside_y = (ys[:, None] >= y1) & (ys[:, None] < y2)  # (N, R, H, 1)
    return inside_x & inside_y


def hidden_pixels(inside: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """inside: (N, R, H, W) bool box masks (:func:`box_masks`); masked: (N, R) bool ->
    (N, 1, H, W) bool, True for pixels inside any masked box."""
    return (inside & masked[..., None, None]).any(dim=1, keepdim=True)


def mask_rois(
    images: torch.Tensor, boxes: torch.Tensor, masked: torch.Tensor, fill: str = "zero"
) -> torch.Tensor:
    """Fill the pixels of the masked boxes.

    images: (N, 3, H, W) normalised; boxes: (N, R, 4) pixels; masked: (N, R) bool.
    fill: ``zero`` (the dataset mean colour, as images are normalised), ``mean`` (each image's
    own mean colour) or ``noise`` (standard normal noise). Returns a new (N, 3, H, W) tensor.
    """
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
    hidden = hidden_pixels(box_masks(boxes, *images.shape[-2:]), masked)  # (N, 1, H, W)
    if fill == "zero":
        value = torch.zeros_like(images)
    elif fill == "mean":
        value = images.mean(dim=(2, 3), keepdim=True).expand_as(images)
    else:
        value = torch.randn_like(images)
    return torch.where(hidden, value, images)


def roi_patches(images: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """images: (N, C, H, W), boxes (N, R, 4) pixels -> (N, R, C, size, size) by roi_align."""
    count, rois = boxes.shape[:2]
    patches = roi_align(images, list(boxes), output_size=size, spatial_scale=1.0, aligned=True)
    return patches.view(count, rois, *patches.shape[1:])


def standardised(patches: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """(..., C, p, p) -> each channel of each patch minus its mean, over its standard deviation
    (+ ``eps``, in the patches' units): what is left is the patch's structure, not how bright
    or contrasted the light made it."""
    mean = patches.mean(dim=(-2, -1), keepdim=True)
    std = patches.std(dim=(-2, -1), keepdim=True)
    return (patches - mean) / (std + eps)


def masked_patch_l1(
    prediction: torch.Tensor,
    images: torch.Tensor,
    boxes: torch.Tensor,
    masked: torch.Tensor,
    standardise: bool = False,
) -> torch.Tensor:
    """Mean L1 between predicted and original patches over the masked RoIs only.

    prediction: (N, R, 3, p, p); images: (N, 3, H, W) the ORIGINAL (unmasked) images;
    boxes: (N, R, 4) pixels; masked: (N, R) bool. Unmasked RoIs contribute nothing.
    standardise: compare with the :func:`standardised` original patches.
    """
    target = roi_patches(images, boxes, prediction.shape[-1])
    if standardise:
        target = standardised(target)
    return F.l1_loss(prediction[masked], target[masked])


def ring_mean_patches(
    images: torch.Tensor, boxes: torch.Tensor, masked: torch.Tensor, size: int, ring: float = 2.0
) -> torch.Tensor:
    """The trivial inpainting: each RoI filled with the mean colour of the visible pixels in a
    ``ring``-pixel band around its box (pixels of masked boxes are not visible).

    images: (N, 3, H, W); boxes: (N, R, 4) pixels; masked: (N, R) bool -> (N, R, 3, size,
    size) constant patches (0, the dataset mean colour, where the band has no visible pixel)."""
    height, width = images.shape[-2:]
    inner = box_masks(boxes, height, width)
    outer = box_masks(boxes + boxes.new_tensor([-ring, -ring, ring, ring]), height, width)
    band = (outer & ~inner & ~hidden_pixels(inner, masked)).to(images.dtype)  # (N, R, H, W)
    total = torch.einsum("nchw,nrhw->nrc", images, band)
    colour = total / band.sum(dim=(-2, -1))[..., None].clamp(min=1.0)
    return colour[..., None, None].expand(*colour.shape, size, size)


class RoIInpaintingHead(SSLHead):
    """Recover masked AU RoI patches from the other RoIs through an AU relation embedding.

    For ``frames_per_clip`` random frames per clip (view 0), ``num_masked`` random RoIs of each
    image are filled (``fill``) and the masked images are re-encoded with the online backbone.
    One token per RoI is pooled from ``maps[feature_level]`` by ``roi_align`` (``token_pool`` x
    ``token_pool`` cells, flattened, projected to ``dim``); the learned per-RoI embedding
    (the AU relation embedding, (R, dim)) is added to every token and a learned mask token to
    the masked ones; a ``depth``-layer transformer encoder mixes them; a linear layer decodes
    each token to its 3 x ``patch_size`` x ``patch_size`` pixels, either the patch itself
    (``patch_base="none"``, the paper) or its change from the same box in the clip's mean frame
    (``"clip_mean"``: the person's look is removed from the target, what is left is how this
    frame's region differs from the clip's average), or the patch standardised per channel
    (``"standardised"``, MAE's normalised pixels: brightness and contrast, which the light sets,
    are removed from the target). Loss: L1 against roi_align of the original image, over masked
    RoIs only.

    Args:
        num_masked: RoIs masked per image k (1 <= k <= R; R, the RoIs per frame, comes from
            the data at :meth:`attach`).
        num_rois: None (default) = the data's R; a number is checked against the data.
        patch_size: side p of the recovered patch, pixels of the patch grid.
        dim: token width.
        depth: transformer layers (the relation module).
        num_heads: attention heads (must divide ``dim``).
        fill: ``zero``, ``mean`` or ``noise`` (see :func:`mask_rois`).
        frames_per_clip: frames per clip masked and re-encoded (extra backbone images per step
            = B * frames_per_clip).
        feature_level: index into the backbone's returned maps (its ``levels``), -1 = deepest.
        token_pool: roi_align output side used to build each token.
        patch_base: ``none`` = tokens decode to patches; ``clip_mean`` = to residuals added to
            the clip's mean frame's patch in the same box; ``standardised`` = to the
            standardised patch (:func:`standardised`).
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).

    Logs: the same L1 for the trivial fill, which the loss must fall below to show that the
    relation module recovers more than it: ``ring_l1`` (``patch_base="none"``,
    :func:`ring_mean_patches`, each masked RoI as the mean colour around it) or
    ``clip_mean_l1`` (``"clip_mean"``, a zero residual: the clip's mean patch) or
    ``patch_mean_l1`` (``"standardised"``: zeros, each patch filled with its own mean).
    """

    needs = BatchNeeds(rois=True)

    def __init__(
        self,
        num_masked: int = 4,
        patch_size: int = 8,
        dim: int = 128,
        depth: int = 2,
        num_heads: int = 4,
        fill: str = "zero",
        frames_per_clip: int = 1,
        feature_level: int = -2,
        token_pool: int = 2,
        num_rois: int | None = None,
        patch_base: str = "none",
        weight: float = 1.0,
    ):
        super().__init__(weight)
        if num_masked < 1 or (num_rois is not None and num_masked > num_rois):
            raise ValueError(f"need 1 <= num_masked <= num_rois, got {num_masked} and {num_rois}")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        if frames_per_clip < 1:
            raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
        if patch_base not in PATCH_BASES:
            raise ValueError(f"patch_base must be one of {PATCH_BASES}, got {patch_base!r}")
        self.patch_base = patch_base
        self.num_rois, self.num_masked = num_rois, num_masked
        self.patch_size, self.dim = patch_size, dim
        self.fill, self.frames_per_clip = fill, frames_per_clip
        self.feature_level, self.token_pool = feature_level, token_pool
        self.mask_token = nn.Parameter(torch.zeros(dim))
        layer = nn.TransformerEncoderLayer(
            dim, num_heads, dim_feedforward=4 * dim, dropout=0.0, batch_first=True, norm_first=True
        )
        self.relation = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.to_pixels = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3 * patch_size**2))

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        """Build the per-RoI relation embedding for the data's R RoIs and the token projection
        for the chosen map's channels; remember the map's stride."""
        if self.num_rois is not None and self.num_rois != spec.num_rois:
            raise ValueError(
                f"RoIInpaintingHead num_rois={self.num_rois} but the data gives {spec.num_rois} "
                "RoIs per frame: leave num_rois unset to follow the data"
            )
        if self.num_masked > spec.num_rois:
            raise ValueError(
                f"RoIInpaintingHead num_masked={self.num_masked} but the data gives only "
                f"{spec.num_rois} RoIs per frame"
            )
        self.num_rois = spec.num_rois
        self.relation_embedding = nn.Parameter(torch.randn(spec.num_rois, self.dim) * 0.02)
        try:
            channels = backbone.channels[self.feature_level]
            self.reduction = backbone.reductions[self.feature_level]
        except IndexError:
            raise ValueError(
                f"RoIInpaintingHead feature_level={self.feature_level} but the backbone returns "
                f"{len(backbone.channels)} maps (levels {backbone.levels})"
            ) from None
        self.to_token = nn.Linear(channels * self.token_pool**2, self.dim)

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        length, rois = batch.rois.shape[2], batch.rois.shape[3]
        if rois != self.num_rois:
            raise ValueError(
                f"RoIInpaintingHead was built with num_rois={self.num_rois} but the batch has "
                f"{rois} RoIs per frame (batch.rois shape {tuple(batch.rois.shape)})"
            )
        picked = torch.randperm(length, device=batch.frames.device)[: self.frames_per_clip]
        images = batch.frames[:, 0, picked].flatten(0, 1)  # (N, 3, H, W)
        boxes = batch.rois[:, 0, picked].flatten(0, 1).to(images.dtype)  # (N, R, 4)
        order = torch.rand(len(images), rois, device=images.device).argsort(dim=1)
        masked = order < self.num_masked  # k random RoIs per image
        feature_map = encode(mask_rois(images, boxes, masked, self.fill)).feature_maps[
            self.feature_level
        ]
        pooled = roi_align(
            feature_map,
            list(boxes.to(feature_map.dtype)),
            output_size=self.token_pool,
            spatial_scale=1.0 / self.reduction,
            aligned=True,
        )
        tokens = self.to_token(pooled.flatten(1)).view(len(images), rois, self.dim)
        tokens = tokens + self.relation_embedding + masked[..., None] * self.mask_token
        patches = self.to_pixels(self.relation(tokens))
        prediction = patches.view(len(images), rois, 3, self.patch_size, self.patch_size)
        if self.patch_base == "none":
            with torch.no_grad():
                trivial = ring_mean_patches(images, boxes, masked, self.patch_size)
            name = "ring_l1"
        elif self.patch_base == "standardised":
            trivial, name = torch.zeros_like(prediction), "patch_mean_l1"
        else:  # each picked frame's clip mean (view 0), cut in the frame's own boxes
            means = batch.frames[:, 0].mean(dim=1).repeat_interleave(len(picked), dim=0)
            trivial = roi_patches(means, boxes, self.patch_size)
            prediction = prediction + trivial
            name = "clip_mean_l1"
        standardise = self.patch_base == "standardised"
        loss = masked_patch_l1(prediction, images, boxes, masked, standardise)
        baseline = masked_patch_l1(trivial, images, boxes, masked, standardise).detach()
        return HeadOutput(loss, {name: baseline})
