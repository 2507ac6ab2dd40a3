"""The multitask pretraining model: one shared backbone, any set of heads, one weighted loss.

Plain PyTorch (no Lightning): :class:`~aurep.tasks.pretrain.PretrainTask` only wires it to
optimisers, logging and the optimiser-step hooks. ``model(batch)`` encodes view 0 of every clip
**once**, gives the shared :class:`~aurep.heads.base.ClipFeatures` to every head, and returns
the weighted sum of the head losses plus the optional supervised AU term.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from aurep.data.batch import BatchNeeds, ClipBatch, ClipSpec, check_needs
from aurep.heads.au_classifier import AUClassifier
from aurep.heads.base import ClipFeatures, SSLHead
from aurep.heads.losses import masked_bce
from aurep.models.backbone import Backbone, BackboneOutput

HEAD_NAME = re.compile(r"[a-z][a-z0-9_]*")
AU_TERM = "au"


@dataclass
class PretrainOutput:
    """loss: the weighted total (scalar); logs: detached scalars named ``<head>/<term>`` (each
    head's ``<head>/loss`` included, ``au/loss`` for the AU term); features: view 0's shared
    features (the online probe reads them)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    features: ClipFeatures


class PretrainModel(nn.Module):
    """Backbone + named heads (+ optional AU head on pooled features).

    Args:
        backbone: the shared encoder.
        heads: name -> head; the name is the one used in YAML, logs (``<name>/...``), error
            messages and tables (lowercase letters, digits, ``_``). Heads with ``weight == 0``
            are dropped: they are not built and their inputs are not loaded.
        au_weight: weight of the supervised AU loss on labelled frames (0 = none); the AU
            head (:class:`AUClassifier` on pooled features) is built for the data's AU set.
        bn_from_real_frames: images a head encodes itself (masked or re-rendered faces) are
            normalised with their own batch statistics but do not update the backbone's
            BatchNorm running statistics, which then describe real frames only (the frames
            every downstream use feeds the backbone). False: every pass updates them.

    Call :meth:`attach` once with the data's :class:`ClipSpec` before the first step.
    """

    def __init__(
        self,
        backbone: Backbone,
        heads: Mapping[str, SSLHead],
        au_weight: float = 0.0,
        bn_from_real_frames: bool = True,
    ):
        super().__init__()
        for name, head in heads.items():
            if not HEAD_NAME.fullmatch(name) or name == AU_TERM:
                raise ValueError(
                    f"head name {name!r}: use lowercase letters, digits and _ (not {AU_TERM!r})"
                )
            if not isinstance(head, SSLHead):
                raise ValueError(f"head {name!r} is a {type(head).__name__}, not an SSLHead")
        self.backbone = backbone
        self.heads = nn.ModuleDict({k: h for k, h in heads.items() if h.weight > 0})
        self.au_weight = float(au_weight)
        self.bn_from_real_frames = bn_from_real_frames
        self.au_head: AUClassifier | None = None
        if not self.heads and au_weight <= 0:
            raise ValueError(
                "every head is off (none given or all weights 0) and au_weight is 0: add heads, "
                "e.g. --config configs/pretrain/heads/temporal.yaml after the base config"
            )
        self.register_buffer("au_pos_weight", torch.ones(0), persistent=False)
        self.attached = False

    def needs(self) -> dict[str, BatchNeeds]:
        """What each consumer reads from a batch: every head by name, and the AU term."""
        needs = {name: head.needs for name, head in self.heads.items()}
        if self.au_weight > 0:
            needs[AU_TERM] = BatchNeeds(labels=True)
        return needs

    def attach(self, spec: ClipSpec) -> None:
        """Check the data against every head's needs (ValueError naming the head and the missing
        input), then build the data-dependent modules: each head's, and the AU head for the
        data's AU set. Idempotent."""
        if self.attached:
            return
        check_needs(self.needs(), spec)
        for head in self.heads.values():
            head.attach(self.backbone, spec)
        if self.au_weight > 0:
            self.au_head = AUClassifier(self.backbone.num_features, len(spec.au_codes))
            self.au_pos_weight = torch.ones(len(spec.au_codes))
        self.attached = True

    def forward(self, batch: ClipBatch) -> PretrainOutput:
        """The weighted multitask loss of one batch. FloatingPointError names a non-finite term."""
        if not self.attached:
            raise RuntimeError("PretrainModel.attach(spec) must run before the first batch")
        features = ClipFeatures.encode(self.backbone, batch.frames[:, 0])
        total = features.pooled.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            out = head(batch, features, self.encode_other)
            check_finite(f"{name} head", out.loss)
            total = total + head.weight * out.loss
            logs[f"{name}/loss"] = out.loss.detach()
            logs.update({f"{name}/{term}": value for term, value in out.logs.items()})
        if self.au_head is not None and batch.labels is not None:
            au_loss = masked_bce(
                self.au_head(features.pooled.flatten(0, 1)),
                batch.labels.flatten(0, 1),
                batch.label_mask.flatten(0, 1),
                self.au_pos_weight,
            )
            check_finite("AU", au_loss)
            total = total + self.au_weight * au_loss
            logs[f"{AU_TERM}/loss"] = au_loss.detach()
        return PretrainOutput(total, logs, features)

    def encode_other(self, images: torch.Tensor) -> BackboneOutput:
        """The online backbone on images that are not real frames (N, 3, H, W) -> its outputs;
        see ``bn_from_real_frames``."""
        if not (self.training and self.bn_from_real_frames):
            return self.backbone(images)
        with frozen_running_stats(self.backbone):
            return self.backbone(images)

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """Run every head's post-step update (EMA encoders, queues) once per optimiser step."""
        for head in self.heads.values():
            head.after_optimizer_step(self.backbone)


@contextmanager
def frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Inside: BatchNorm layers of ``module`` in train mode still normalise with batch
    statistics but leave running mean/var (and the batch counter) unchanged."""
    tracked = [
        m
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    saved = [(m.momentum, m.num_batches_tracked.clone()) for m in tracked]
    for norm in tracked:
        norm.momentum = 0.0
    try:
        yield
    finally:
        for norm, (momentum, count) in zip(tracked, saved, strict=True):
            norm.momentum = momentum
            norm.num_batches_tracked.copy_(count)


def pooled_parameters(backbone: Backbone, image_size: int) -> list[str]:
    """Names of the backbone parameters the pooled feature depends on: those a gradient of
    ``pooled.sum()`` reaches on a (2, 3, S, S) random batch (running statistics, existing
    gradients and the global random stream are left as they were)."""
    params = dict(backbone.named_parameters())
    saved = {name: p.grad for name, p in params.items()}
    own_stream = torch.Generator().manual_seed(0)  # the global random stream is not touched
    images = torch.randn(2, 3, image_size, image_size, generator=own_stream)
    images = images.to(next(iter(params.values())).device)
    try:
        with frozen_running_stats(backbone):
            backbone(images).pooled.sum().backward()
        return [name for name, p in params.items() if p.requires_grad and p.grad is not None]
    finally:
        for name, p in params.items():
            p.grad = saved[name]


def stages_without_gradient(backbone: Backbone, names: list[str]) -> list[str]:
    """The backbone stages (``layer4``; ``blocks.11`` where the first part of a parameter's
    name is a container of numbered stages) holding a parameter of ``names`` that no loss
    reached in the last backward pass (gradient None; a zero gradient, as timm's
    zero-initialised last BatchNorm of a block gives its branch at the first step, counts as
    reached), in order of first appearance."""
    params = dict(backbone.named_parameters())
    stages: dict[str, None] = {}
    for name in names:
        if params[name].grad is None:
            first, second = [*name.removeprefix("model.").split("."), ""][:2]
            numbered = not any(c.isdigit() for c in first) and second.isdigit()
            stages[f"{first}.{second}" if numbered else first] = None
    return list(stages)


def check_finite(name: str, loss: torch.Tensor) -> None:
    """FloatingPointError naming the term when ``loss`` is NaN or infinite."""
    if not torch.isfinite(loss):
        raise FloatingPointError(
            f"the {name} loss is {loss.item()}: lower the learning rate or that head's weight, "
            "or check the data"
        )
