"""Multitask self-supervised pretraining: one shared timm backbone, pluggable heads.

The backbone encodes view 0 of every clip once; the resulting :class:`ClipFeatures` go to every
enabled head (a slot set to ``null`` in the YAML is off). Heads that must encode other images
(masked faces, re-rendered faces) call the same online backbone; the contrastive head keeps its own
momentum copy. The total loss is the weighted sum of the head losses, plus an optional supervised
AU term on labelled frames (RTATL-style joint training). An online linear AU probe on detached
pooled features reports per-AU F1 whenever the batch carries labels; it never changes the backbone.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from aurep.au import au_column
from aurep.data.batch import ClipBatch
from aurep.data.datamodules import ClipDataModule
from aurep.data.prepared import DatasetError
from aurep.heads import (
    AUClassifier,
    CrossIdentityReconstructionHead,
    OpticalFlowHead,
    RoIInpaintingHead,
    TemporalContrastiveHead,
    masked_bce,
)
from aurep.heads.base import ClipFeatures
from aurep.metrics import AUDetectionMetrics
from aurep.models.backbone import Backbone


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)


class PretrainTask(pl.LightningModule):
    """Self-supervised pretraining with any subset of the four heads.

    Args:
        backbone: timm model name (``pretrained=False``: nothing is downloaded).
        backbone_levels: backbone stages returned as feature maps (heads pick one by
            ``feature_level``); the last is pooled.
        img_size: fixed input size for ViT backbones, pixels (None for CNNs).
        temporal / cross_identity / inpainting / flow: the heads; ``None`` turns one off.
        temporal_weight / cross_identity_weight / inpainting_weight / flow_weight: loss weights.
        au_codes: the dataset's AU codes (linked from the DataModule by the CLI).
        au_weight: weight of the supervised AU loss on labelled frames (0 = self-supervised only).
        online_probe: train a linear AU probe on detached features and log its per-AU F1.
        optimizer / lr_scheduler: callables from the config (LightningCLI injects them).
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        backbone_levels: list[int] | None = None,
        img_size: int | None = None,
        temporal: TemporalContrastiveHead | None = None,
        cross_identity: CrossIdentityReconstructionHead | None = None,
        inpainting: RoIInpaintingHead | None = None,
        flow: OpticalFlowHead | None = None,
        temporal_weight: float = 1.0,
        cross_identity_weight: float = 1.0,
        inpainting_weight: float = 1.0,
        flow_weight: float = 1.0,
        au_codes: list[int] | None = None,
        au_weight: float = 0.0,
        online_probe: bool = True,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["temporal", "cross_identity", "inpainting", "flow"])
        self.backbone = Backbone(
            backbone, levels=tuple(backbone_levels or (-1,)), img_size=img_size
        )
        slots = {
            "temporal": (temporal, temporal_weight),
            "cross_identity": (cross_identity, cross_identity_weight),
            "inpainting": (inpainting, inpainting_weight),
            "flow": (flow, flow_weight),
        }
        self.heads = nn.ModuleDict({k: head for k, (head, _) in slots.items() if head is not None})
        self.head_weights = {k: float(w) for k, (head, w) in slots.items() if head is not None}
        for head in self.heads.values():
            head.attach(self.backbone)
        self.au_codes = [int(code) for code in au_codes or []]
        num_aus = len(self.au_codes)
        self.au_head = (
            AUClassifier(self.backbone.num_features, num_aus) if au_weight > 0 and num_aus else None
        )
        self.probe = (
            AUClassifier(self.backbone.num_features, num_aus) if online_probe and num_aus else None
        )
        self.probe_scores = nn.ModuleDict(
            {
                f"{stage}_scores": AUDetectionMetrics(self.au_codes, auc=False)
                for stage in (("train", "val") if self.probe is not None else ())
            }
        )
        self.register_buffer("au_pos_weight", torch.ones(num_aus), persistent=False)
        if not self.heads and self.au_head is None:
            raise ValueError("PretrainTask: every head is off and au_weight is 0: nothing to train")
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        if isinstance(datamodule, ClipDataModule):
            self._check_data(datamodule)
        pos_weight = getattr(datamodule, "pos_weight", None)
        if pos_weight is not None and len(pos_weight) == len(self.au_codes):
            self.au_pos_weight.copy_(torch.as_tensor(pos_weight, dtype=torch.float32))

    def _check_data(self, datamodule: ClipDataModule) -> None:
        """Refuse data the enabled heads cannot use, before the first step (one-line errors)."""
        root = datamodule.dataset.root
        needs_flow = [name for name, head in self.heads.items() if head.needs_flow]
        if needs_flow and not datamodule.use_flow:
            raise DatasetError(
                f"head(s) {needs_flow} need flow targets but {root} has none: "
                f"run `aurep prepare flow {root}` (or set data.init_args.require_flow=true)"
            )
        views = max((head.min_views for head in self.heads.values()), default=1)
        if datamodule.hparams.num_views < views:
            raise DatasetError(
                f"the enabled heads need data.init_args.num_views >= {views}, "
                f"got {datamodule.hparams.num_views}"
            )
        for head in self.heads.values():
            if isinstance(head, RoIInpaintingHead) and head.num_rois != len(datamodule.roi_names):
                raise DatasetError(
                    f"the inpainting head has num_rois={head.num_rois} but the DataModule gives "
                    f"{len(datamodule.roi_names)} RoIs (2 per AU of data.init_args.roi_aus)"
                )
        if self.hparams.au_weight > 0 and not datamodule.au_codes:
            raise DatasetError(f"au_weight > 0 but {root} has no AU labels: set au_weight=0")

    def encode_clips(self, batch: ClipBatch) -> ClipFeatures:
        """Backbone features of view 0: maps (B, T, C, h, w) and pooled (B, T, C)."""
        b, t = batch.batch_size, batch.clip_length
        out = self.backbone(batch.frames[:, 0].flatten(0, 1))
        return ClipFeatures(
            maps=[fmap.unflatten(0, (b, t)) for fmap in out.feature_maps],
            pooled=out.pooled.unflatten(0, (b, t)),
        )

    def _check_finite(self, name: str, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the {name} loss is {loss.item()} at step {self.global_step}: "
                "lower the learning rate or that head's weight, or check the data"
            )

    def _shared_step(self, batch: ClipBatch, stage: str) -> torch.Tensor:
        features = self.encode_clips(batch)
        total = features.pooled.new_zeros(())
        logs: dict[str, torch.Tensor] = {}
        for name, head in self.heads.items():
            out = head(batch, features, self.backbone)
            self._check_finite(f"{name} head", out.loss)
            total = total + self.head_weights[name] * out.loss
            logs.update(out.logs)
        has_labels = batch.labels is not None and self.au_codes
        if has_labels:
            pooled = features.pooled.flatten(0, 1)
            labels = batch.labels.flatten(0, 1)
            mask = batch.label_mask.flatten(0, 1)
            if self.au_head is not None:
                au_loss = masked_bce(self.au_head(pooled), labels, mask, self.au_pos_weight)
                self._check_finite("AU", au_loss)
                total = total + self.hparams.au_weight * au_loss
                logs["au/loss"] = au_loss.detach()
            if self.probe is not None:
                probe_logits = self.probe(pooled.detach())
                probe_loss = masked_bce(probe_logits, labels, mask, self.au_pos_weight)
                total = total + probe_loss  # detached input: trains the probe only
                logs["probe/loss"] = probe_loss.detach()
                self.probe_scores[f"{stage}_scores"].update(
                    probe_logits.detach().sigmoid(), labels, mask
                )
        self.log_dict({f"{stage}/{k}": v for k, v in logs.items()}, batch_size=batch.batch_size)
        self.log(f"{stage}/loss", total.detach(), prog_bar=True, batch_size=batch.batch_size)
        return total

    def training_step(self, batch: ClipBatch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch: ClipBatch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Momentum/queue updates once per optimiser step (not per accumulated micro-batch)."""
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        if (batch_idx + 1) % accumulate:
            return
        for head in self.heads.values():
            head.on_train_batch_end(self.backbone)

    def _log_probe(self, stage: str) -> None:
        """Per-AU probe F1 (NaN for an AU without positives) and its mean over defined AUs."""
        if self.probe is None or not self.probe_scores[f"{stage}_scores"].num_updates:
            return
        metrics = self.probe_scores[f"{stage}_scores"]
        scores = metrics.compute(warn=False)  # undefined AUs are common on small val sets
        metrics.reset()
        # torchmetrics already reduced the counts over ranks: the sync averages equal values
        for code, value in zip(self.au_codes, scores.f1, strict=True):
            self.log(f"{stage}/probe_f1/{au_column(code)}", float(value), sync_dist=True)
        if scores.num_defined:
            self.log(
                f"{stage}/probe_f1_mean",
                scores.mean_f1,
                prog_bar=stage == "val",
                sync_dist=True,
            )

    def on_train_epoch_end(self) -> None:
        self._log_probe("train")

    def on_validation_epoch_end(self) -> None:
        self._log_probe("val")

    def configure_optimizers(self):
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
