"""RTATL's single-image optical flow: predict the motion that produced frame t from t alone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.landmark_shape import face_frame
from aurep.heads.layers import clip_centred, mlp, upsampling_decoder
from aurep.heads.losses import end_point_error
from aurep.models.backbone import Backbone

FLOW_LOSSES = ("epe", "smooth_l1")
REFERENCES = ("previous", "clip_relative")
GLOBAL_MOTIONS = ("keep", "affine")
DECODERS = ("map", "pooled")
FRAMES = ("image", "face")


def without_affine_motion(flow: torch.Tensor) -> torch.Tensor:
    """flow: (..., 2, h, w) pixels -> the same minus each field's least-squares affine motion
    (u and v each fitted by a + b x + c y over the grid): what is left is local deformation,
    not the shift, rotation or zoom of the whole face."""
    height, width = flow.shape[-2:]
    ys, xs = torch.meshgrid(
        torch.linspace(-1, 1, height, device=flow.device, dtype=flow.dtype),
        torch.linspace(-1, 1, width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    basis = torch.stack([torch.ones_like(xs), xs, ys], dim=-1).view(height * width, 3)
    orthonormal, _ = torch.linalg.qr(basis)  # (h * w, 3)
    values = flow.flatten(-2)  # (..., 2, h * w)
    fitted = (values @ orthonormal) @ orthonormal.T
    return (values - fitted).view_as(flow)


def displacement_from_clip_start(flow: torch.Tensor) -> torch.Tensor:
    """flow: (B, T, 2, h, w), target t = motion from clip frame t - 1 -> (B, T, 2, h, w) the
    summed motion from clip frame 0 to each frame (0 for frame 0), pixels."""
    steps = torch.cat([torch.zeros_like(flow[:, :1]), flow[:, 1:]], dim=1)
    return steps.cumsum(dim=1)


def flow_in_face_frame(
    flow: torch.Tensor, landmarks: torch.Tensor, image_size: int, extent: float
) -> torch.Tensor:
    """Resample flow fields into the face frame of their frame's landmarks.

    flow: (..., 2, h, w) pixels on an h x w grid over a square image of ``image_size`` px;
    landmarks: (..., 68, 2) pixels of the same frames -> (..., 2, h, w) the flow at an h x w
    grid spanning ``[-extent, extent]`` in both axes of :func:`face_frame` (origin at the mean
    landmark, x along the eye line, unit = the outer-eye-corner distance), its vectors rotated
    into that frame and in pixels of an ``image_size`` crop of it (2 * ``extent`` eye distances
    across: about the image's own pixels for a face that fills the image). The same face
    deformation then gives the same field wherever the face sits, however turned or zoomed.
    """
    height, width = flow.shape[-2:]
    origin, rotation, scale = face_frame(landmarks.float())  # (..., 2), (..., 2, 2), (...)
    ys, xs = torch.meshgrid(
        torch.linspace(-extent, extent, height, device=flow.device),
        torch.linspace(-extent, extent, width, device=flow.device),
        indexing="ij",
    )
    in_face = torch.stack([xs, ys], dim=-1).flatten(0, 1)  # (h * w, 2)
    lead = flow.shape[:-3]
    # image point = origin + scale * rotation^T @ face point (row vectors: p @ rotation)
    points = origin[..., None, :] + scale[..., None, None] * (in_face @ rotation)
    grid = (points + 0.5) / image_size * 2 - 1  # grid_sample's coordinates, align_corners=False
    sampled = F.grid_sample(
        flow.reshape(-1, 2, height, width).float(),
        grid.reshape(-1, height, width, 2),
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    ).view(*lead, 2, height * width)
    crop_pixels = image_size / (2 * extent * scale[..., None, None])  # per image pixel
    vectors = rotation @ sampled * crop_pixels  # (..., 2, h * w)
    return vectors.view(*lead, 2, height, width).to(flow.dtype)


class OpticalFlowHead(SSLHead):
    """Decoder from view 0's features of frame t to the flow from t - delta to t
    (``batch.flow``, (B, V, T, 2, h, w), pixels). Every frame of view 0 is used; no extra
    backbone pass.

    ``decoder="map"`` (RTATL): a light upsampling decoder on one feature map: 1x1 conv to
    ``width`` channels, ``upsample_blocks`` bilinear x2 blocks, a 3x3 conv to 2 channels, then
    bilinear resizing to the target grid h x w. Backbone stages deeper than ``feature_level``
    get no gradient from it. ``decoder="pooled"``: a linear map (or MLP, ``hidden_dim``) from
    the pooled feature, the vector AU probes read, to a ``pooled_grid`` x ``pooled_grid`` field,
    bilinearly resized to h x w (still linear in the pooled feature): every stage is trained and
    the motion must be carried the way a linear probe reads it, as the landmark-shape head does.

    Args:
        decoder: ``map`` or ``pooled`` (above).
        feature_level: ``map`` decoder: index into the backbone's returned maps, -1 = deepest.
        width: ``map`` decoder channels.
        upsample_blocks: ``map`` decoder: number of x2 upsampling blocks before the final resize.
        pooled_grid: ``pooled`` decoder: side of the predicted field before the resize.
        hidden_dim: ``pooled`` decoder: MLP hidden width, 0 = linear.
        loss: ``epe`` (mean end-point error, pixels) or ``smooth_l1`` (per component).
        reference: ``previous`` = RTATL's target, the flow from ``t - delta`` to t (a velocity:
            ill-posed from one still frame); ``clip_relative`` = each frame's displacement
            from the clip's first frame (:func:`displacement_from_clip_start`), prediction and
            target both centred on the clip, so one frame predicts where its face points are
            relative to the clip's other frames (the data's targets must be from the previous
            clip frame: ``ClipSpec.flow_from_previous``).
        global_motion: ``keep`` = the flow as stored; ``affine`` = each frame's least-squares
            affine motion removed from target and prediction (:func:`without_affine_motion`),
            so alignment jitter and head motion are not regressed, only how the face deforms.
        frame: ``image`` = the field on the image grid; ``face`` (``pooled`` decoder only) =
            resampled into the face frame of view 0's landmarks of the frame whose pixels the
            target lies on (the previous clip frame; :func:`flow_in_face_frame`, vectors in
            pixels of a face-frame crop), so the prediction need not encode where the face
            sits in the image. face_extent: half-side of that grid in eye distances.
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).

    Logs: ``epe`` (pixels) when the loss is not the EPE itself; ``zero_epe``, the EPE of
    predicting no motion (the trivial baseline the EPE must beat).
    """

    needs = BatchNeeds(flow=True)

    def __init__(
        self,
        feature_level: int = -1,
        width: int = 64,
        upsample_blocks: int = 2,
        loss: str = "epe",
        reference: str = "previous",
        global_motion: str = "keep",
        decoder: str = "map",
        pooled_grid: int = 14,
        hidden_dim: int = 0,
        frame: str = "image",
        face_extent: float = 1.5,
        weight: float = 1.0,
    ):
        super().__init__(weight)
        if decoder not in DECODERS:
            raise ValueError(f"OpticalFlowHead decoder must be one of {DECODERS}, got {decoder!r}")
        if frame not in FRAMES:
            raise ValueError(f"OpticalFlowHead frame must be one of {FRAMES}, got {frame!r}")
        if frame == "face" and decoder != "pooled":
            raise ValueError(
                "OpticalFlowHead frame=face needs decoder=pooled (a map decoder predicts on the "
                "image grid)"
            )
        if face_extent <= 0:
            raise ValueError(f"OpticalFlowHead face_extent must be > 0, got {face_extent}")
        if frame == "face":
            self.needs = BatchNeeds(flow=True, landmarks=True)
        if pooled_grid < 1:
            raise ValueError(f"OpticalFlowHead pooled_grid must be >= 1, got {pooled_grid}")
        if loss not in FLOW_LOSSES:
            raise ValueError(f"OpticalFlowHead loss must be one of {FLOW_LOSSES}, got {loss!r}")
        if reference not in REFERENCES:
            raise ValueError(
                f"OpticalFlowHead reference must be one of {REFERENCES}, got {reference!r}"
            )
        if global_motion not in GLOBAL_MOTIONS:
            raise ValueError(
                f"OpticalFlowHead global_motion must be one of {GLOBAL_MOTIONS}, "
                f"got {global_motion!r}"
            )
        self.reference, self.global_motion = reference, global_motion
        self.feature_level, self.width = feature_level, width
        self.upsample_blocks, self.loss_kind = upsample_blocks, loss
        self.decoder_kind, self.pooled_grid, self.hidden_dim = decoder, pooled_grid, hidden_dim
        self.frame, self.face_extent = frame, face_extent

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        """Build the decoder for the chosen map's channels."""
        if self.reference == "clip_relative" and not spec.flow_from_previous:
            raise ValueError(
                f"OpticalFlowHead reference=clip_relative needs flow targets from the previous "
                f"clip frame, but {spec.source} stores targets whose delta is neither 1 nor the "
                "clip stride: rerun `aurep prepare flow` with --delta 1, or use reference=previous"
            )
        if self.decoder_kind == "pooled":
            outputs = 2 * self.pooled_grid**2
            self.regressor = mlp(backbone.num_features, self.hidden_dim, outputs)
            return
        try:
            channels = backbone.channels[self.feature_level]
        except IndexError:
            raise ValueError(
                f"OpticalFlowHead feature_level={self.feature_level} but the backbone returns "
                f"{len(backbone.channels)} maps (levels {backbone.levels})"
            ) from None
        self.decoder = nn.Sequential(
            nn.Conv2d(channels, self.width, 1),
            nn.ReLU(inplace=True),
            upsampling_decoder(self.width, self.width, self.upsample_blocks, 2),
        )

    def predict(self, features: ClipFeatures, size: tuple[int, int]) -> torch.Tensor:
        """View 0's features of B clips of T frames -> flow (B, T, 2, h, w) in pixels for
        ``size`` = (h, w)."""
        if self.decoder_kind == "pooled":
            pooled = features.pooled.flatten(0, 1)  # (N, C)
            flow = self.regressor(pooled).view(len(pooled), 2, self.pooled_grid, self.pooled_grid)
        else:
            flow = self.decoder(features.maps[self.feature_level].flatten(0, 1))
        flow = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
        return flow.unflatten(0, features.pooled.shape[:2])

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        if batch.flow is None:
            raise ValueError(
                "OpticalFlowHead needs flow targets but batch.flow is None: prepare the dataset "
                "with flow (or drop the flow head)"
            )
        target = batch.flow[:, 0]  # (B, T, 2, h, w)
        if self.frame == "face":  # target t lies on clip frame t - 1's pixels (0: its own)
            landmarks = batch.landmarks[:, 0]
            on_pixels_of = torch.cat([landmarks[:, :1], landmarks[:, :-1]], dim=1)
            size = batch.frames.shape[-1]
            target = flow_in_face_frame(target, on_pixels_of, size, self.face_extent)
        prediction = self.predict(features, target.shape[-2:])
        if self.reference == "clip_relative":
            target = clip_centred(displacement_from_clip_start(target))
            prediction = clip_centred(prediction)
        if self.global_motion == "affine":
            target, prediction = without_affine_motion(target), without_affine_motion(prediction)
        epe = end_point_error(prediction, target)
        logs = {"zero_epe": end_point_error(torch.zeros_like(target), target)}
        if self.loss_kind == "epe":
            return HeadOutput(epe, logs)
        loss = F.smooth_l1_loss(prediction, target)
        return HeadOutput(loss, {"epe": epe.detach(), **logs})
