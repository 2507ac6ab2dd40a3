"""The typed batch every pretraining DataModule yields and every head reads, and the contract
between them: a consumer (head) declares :class:`BatchNeeds`, the data offers a
:class:`ClipSpec`, :func:`check_needs` names the consumer and the input that is missing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace

import torch


@dataclass
class ClipBatch:
    """A batch of B clips of T consecutive frames, each seen in V augmented views.

    Inputs no enabled head needs are not loaded (None); see :class:`~aurep.heads.base.BatchNeeds`.

    frames: (B, V, T, 3, H, W) float32, normalised with ImageNet mean/std.
    identity: (B,) int64 subject index (dense, per dataset).
    partner: (B,) int64 index into the batch of a clip of a different identity.
    flow: (B, V, T, 2, h, w) float32 flow from frame t - delta to t, (dx, dy) in pixels of the
        view's frames, on an h x w grid.
    landmarks: (B, V, T, 68, 2) float32, iBUG points in pixels of the view's frames.
    video_landmarks: (B, V, 68, 2) float32, the mean landmarks over every frame with a face of
        the clip's whole video, mapped into the view as its first frame (comes with
        ``landmarks``): the person's average shape in that video, a reference for expression.
    subject_landmarks: (B, V, 68, 2) float32, as ``video_landmarks`` over every video of the
        clip's subject (comes with ``landmarks``): the person's average shape, which the
        mean expression of one video no longer shifts. Needs subject names, not AU labels.
    rois: (B, V, T, R, 4) float32 AU RoI boxes ``x1, y1, x2, y2`` in pixels of the view's frames.
    labels: (B, T, A) float32 AU occurrence 0/1; None when no frame has labels.
    label_mask: (B, T, A) bool, True where the label is known.
    """

    frames: torch.Tensor
    identity: torch.Tensor
    partner: torch.Tensor
    flow: torch.Tensor | None = None
    landmarks: torch.Tensor | None = None
    video_landmarks: torch.Tensor | None = None
    subject_landmarks: torch.Tensor | None = None
    rois: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    label_mask: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return self.frames.shape[0]

    @property
    def num_views(self) -> int:
        return self.frames.shape[1]

    @property
    def clip_length(self) -> int:
        return self.frames.shape[2]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        """Move every tensor field to ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
            for f in fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return replace(self, **moved)


@dataclass(frozen=True)
class BatchNeeds:
    """Inputs of a :class:`ClipBatch` a head reads besides view 0's frames.

    views: augmented views per clip (``batch.frames.shape[1]``); flow: ``batch.flow``;
    rois: ``batch.rois``; landmarks: ``batch.landmarks``; labels: ``batch.labels`` and
    ``label_mask``; partner: ``batch.partner`` (a clip of another identity per clip).
    """

    views: int = 1
    flow: bool = False
    rois: bool = False
    landmarks: bool = False
    labels: bool = False
    partner: bool = False

    @classmethod
    def of_all(cls, needs: Iterable[BatchNeeds]) -> BatchNeeds:
        """What several consumers need together."""
        total = cls()
        for one in needs:
            total = total.union(one)
        return total

    def union(self, other: BatchNeeds) -> BatchNeeds:
        """What two consumers need together (the most views, every input either needs)."""
        return BatchNeeds(
            views=max(self.views, other.views),
            flow=self.flow or other.flow,
            rois=self.rois or other.rois,
            landmarks=self.landmarks or other.landmarks,
            labels=self.labels or other.labels,
            partner=self.partner or other.partner,
        )


@dataclass(frozen=True)
class ClipSpec:
    """What the data gives, known before the first batch.

    clip_length: frames per clip T. image_size: side of the frames, pixels. num_rois: RoIs per
    frame R (``batch.rois.shape[3]``). max_views: the most views per clip it can give.
    has_flow / has_labels / has_landmarks: whether those inputs exist. flow_from_previous:
    flow target t is the motion from clip frame t - 1 (t >= 1). num_identities: identity
    numbers (``batch.identity``) run from 0 to num_identities - 1 (0: unknown). au_codes: the AU set
    of the labels. source: the data's name for messages (e.g. its directory).
    """

    clip_length: int
    image_size: int
    num_rois: int
    max_views: int = 2
    has_flow: bool = False
    flow_from_previous: bool = False
    num_identities: int = 0
    has_labels: bool = False
    has_landmarks: bool = True
    au_codes: tuple[int, ...] = ()
    source: str = "the data"


def unmet_needs(needs: BatchNeeds, spec: ClipSpec) -> list[str]:
    """Plain-words list of what ``needs`` asks and ``spec`` cannot give (empty when met)."""
    problems = []
    if needs.views > spec.max_views:
        problems.append(f"{needs.views} views per clip (the data gives {spec.max_views})")
    if needs.flow and not spec.has_flow:
        problems.append(
            f"optical-flow targets for every video ({spec.source} lacks some or all: "
            f"run `aurep prepare flow {spec.source}`)"
        )
    if needs.labels and not spec.has_labels:
        problems.append(f"AU labels ({spec.source} has none)")
    if (needs.landmarks or needs.rois) and not spec.has_landmarks:
        problems.append(f"landmarks ({spec.source} has none)")
    if needs.rois and spec.num_rois < 1:
        problems.append("AU RoIs (the data gives 0 RoIs per frame)")
    return problems


def check_needs(needs_by_consumer: Mapping[str, BatchNeeds], spec: ClipSpec) -> None:
    """ValueError naming the first consumer (head) whose needs ``spec`` cannot meet."""
    for name, needs in needs_by_consumer.items():
        problems = unmet_needs(needs, spec)
        if problems:
            raise ValueError(f"the {name} head needs {'; '.join(problems)}")
