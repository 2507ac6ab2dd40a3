"""Facial shape from one frame: regress the pose-normalised 68 landmarks from pooled features.

A pretext task with free targets: the landmarks every prepared dataset already has (MediaPipe
at ``aurep prepare`` time, exact in the synthetic corpus), no AU labels. It asks the pooled
feature, the one AU probes read, to carry the face's geometry: brow raise, lid closure, lip
corner and jaw positions are what most AUs move.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.layers import clip_centred, group_centred, mlp
from aurep.heads.whitening import RunningCovariance, whitened_mse
from aurep.landmarks import EYE_CORNERS, NUM_LANDMARKS
from aurep.models.backbone import Backbone

REFERENCES = (
    "template",
    "clip_mean",
    "clip_relative",
    "subject_relative",
    "video_mean",
    "subject_mean",
)
# References whose prediction is centred like the target, so that only differences are regressed.
RELATIVE = ("clip_relative", "subject_relative")
# The batch field holding each clip's reference landmarks, for the references that use one.
REFERENCE_FIELDS = {"video_mean": "video_landmarks", "subject_mean": "subject_landmarks"}


def face_frame(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """points: (..., 68, 2) pixels -> the face frame they define: origin (..., 2) at the mean
    point, rotation (..., 2, 2) taking image axes to x along the line between the outer eye
    corners, scale (...,) the outer-eye-corner distance in pixels. A point maps to the frame by
    ``rotation @ (point - origin) / scale``."""
    origin = points.mean(dim=-2)
    eye_line = points[..., EYE_CORNERS[3], :] - points[..., EYE_CORNERS[0], :]
    scale = eye_line.norm(dim=-1).clamp(min=1e-6)
    cos, sin = (eye_line / scale[..., None]).unbind(-1)
    rotation = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)
    return origin, rotation, scale


def normalised_shape(points: torch.Tensor) -> torch.Tensor:
    """points: (..., 68, 2) pixels -> (..., 68, 2) in their :func:`face_frame` (unit = the
    outer-eye-corner distance). Removes translation, rotation and scale (the view's augmentation
    and the head pose in the image plane); a mirrored face stays mirrored (its indices are
    already swapped)."""
    origin, rotation, scale = face_frame(points)
    centred = points - origin[..., None, :]
    return centred @ rotation.transpose(-1, -2) / scale[..., None, None]


class LandmarkShapeHead(SSLHead):
    """MLP (or linear map) on each frame's pooled feature (view 0) -> its normalised 68-point shape
    (:func:`normalised_shape`), each of the 136 coordinates standardised by BatchNorm statistics
    of the targets (expression moves them by a few percent of the eye distance, so raw targets
    would reward predicting the mean shape). Loss: mean squared error of the standardised
    coordinates; predicting the mean shape scores 1.

    Logs: ``explained`` = 1 - the mean squared error, the share of the shape variance the
    features predict (``explained_whitened`` = 1 - the loss when ``whiten`` is set).

    Args:
        hidden_dim: MLP hidden width; 0 = a linear map, so the features must carry the shape
            linearly, the way a linear AU probe reads them.
        reference: ``template`` = the shape itself (identity + expression); ``clip_mean`` = the
            shape minus the clip's mean shape (the expression change within the clip, which
            removes most of the identity; weak when a clip spans few AU changes);
            ``clip_relative`` = as ``clip_mean``, and the prediction is centred on the clip too:
            differences between a clip's frames are regressed, so the features need not guess
            the person's mean shape from one frame; ``subject_relative`` = as
            ``clip_relative`` over every frame of the batch's clips of the same subject
            (``batch.identity``; with ``clips_per_identity`` > 1 they come from different
            videos): differences between videos of a person are regressed too, so the
            features must carry each video's mean expression, still without guessing the
            person's mean shape (uses subject names, not AU labels); ``video_mean`` = the shape minus the
            shape of the video's mean landmarks (``batch.video_landmarks``): each frame's
            expression relative to the person's average in the whole video, so the features
            must carry it in absolute terms (not only within a clip) while the person's own
            shape is still removed; ``subject_mean`` = as ``video_mean`` with the mean over
            all of the subject's videos (``batch.subject_landmarks``), so one video's mean
            expression no longer shifts the target (uses subject names, not AU labels).
        whiten: None = the loss is the mean squared error of the standardised coordinates, so
            each principal direction of the target (an expression mode) counts by its
            variance; a float in (0, 1] = the loss is :func:`~aurep.heads.whitening.whitened_mse`
            under the targets' running covariance, every direction counted alike down to
            ``whiten`` times the largest variance (e.g. 1e-4; larger for noisy landmarks).
        weight: the head's loss weight (see :class:`~aurep.heads.base.SSLHead`).
    """

    needs = BatchNeeds(landmarks=True)

    def __init__(
        self,
        hidden_dim: int = 256,
        reference: str = "template",
        whiten: float | None = None,
        weight: float = 1.0,
    ):
        super().__init__(weight)
        if reference not in REFERENCES:
            raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
        if whiten is not None and not 0 < whiten <= 1:
            raise ValueError(f"whiten must be None or in (0, 1], got {whiten}")
        self.hidden_dim, self.reference, self.whiten = hidden_dim, reference, whiten

    def attach(self, backbone: Backbone, spec: ClipSpec) -> None:
        outputs = NUM_LANDMARKS * 2
        self.regressor = mlp(backbone.num_features, self.hidden_dim, outputs)
        self.standardise = nn.BatchNorm1d(outputs, affine=False)
        if self.whiten is not None:
            self.target_covariance = RunningCovariance(outputs)

    def centred(self, values: torch.Tensor, identity: torch.Tensor | None) -> torch.Tensor:
        """(B, T, ...) minus the mean over the clip, or over the subject's clips for
        ``subject_relative`` (identity: (B,), needed then)."""
        if self.reference != "subject_relative":
            return clip_centred(values)
        if identity is None:
            raise ValueError("LandmarkShapeHead reference=subject_relative needs batch.identity")
        return group_centred(values, identity)

    def shapes(
        self,
        landmarks: torch.Tensor,
        mean_landmarks: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """landmarks: (B, T, 68, 2) pixels of view 0 (mean_landmarks: (B, 68, 2), the
        reference's mean landmarks, needed by ``video_mean`` and ``subject_mean``; identity:
        (B,), needed by ``subject_relative``) -> (B, T, 68, 2) the shapes to regress, relative
        to ``reference``, in eye distances (:func:`normalised_shape`)."""
        shape = normalised_shape(landmarks.float())
        if self.reference == "template":
            return shape
        if self.reference not in REFERENCE_FIELDS:
            return self.centred(shape, identity)
        if mean_landmarks is None:
            field = REFERENCE_FIELDS[self.reference]
            raise ValueError(
                f"LandmarkShapeHead reference={self.reference} needs batch.{field} (each "
                "clip's mean landmarks, which ClipDataModule gives with the landmarks)"
            )
        return shape - normalised_shape(mean_landmarks.float())[:, None]

    def targets(
        self,
        landmarks: torch.Tensor,
        mean_landmarks: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """As :meth:`shapes` -> (B * T, 136), each coordinate standardised."""
        shape = self.shapes(landmarks, mean_landmarks, identity)
        return self.standardise(shape.flatten(-2).flatten(0, 1))

    def forward(self, batch: ClipBatch, features: ClipFeatures, encode: Encoder) -> HeadOutput:
        field = REFERENCE_FIELDS.get(self.reference)
        means = None if field is None else getattr(batch, field)
        means = None if means is None else means[:, 0]
        target = self.targets(batch.landmarks[:, 0], means, batch.identity)
        pooled = features.pooled  # (B, T, C)
        prediction = self.regressor(pooled.flatten(0, 1)).unflatten(0, pooled.shape[:2])
        if self.reference in RELATIVE:
            prediction = self.centred(prediction, batch.identity)
        prediction = prediction.flatten(0, 1)
        squared_error = F.mse_loss(prediction, target)
        logs = {"explained": (1 - squared_error).detach()}
        if self.whiten is None:
            return HeadOutput(squared_error, logs)
        self.target_covariance.update(target)
        loss = whitened_mse(prediction - target, self.target_covariance.covariance, self.whiten)
        return HeadOutput(loss, {**logs, "explained_whitened": (1 - loss).detach()})
