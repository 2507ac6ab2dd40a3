"""Multitask self-supervised pretraining: the Lightning wiring around :class:`PretrainModel`.

The model (plain PyTorch, aurep/heads/multitask.py) encodes view 0 of every clip once, runs
every head on the shared features and sums the weighted losses. This module only wires it:
the data contract before the first step, optimisers, logging, the per-optimiser-step hooks
(EMA encoders, queues) and an online linear AU probe on detached pooled features that reports
per-AU F1 whenever batches carry labels (it never changes the backbone).
"""

from __future__ import annotations

import sys

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from aurep.au import au_column
from aurep.data.batch import ClipBatch, ClipSpec
from aurep.data.prepared import DatasetError
from aurep.heads import AUClassifier, PretrainModel, SSLHead, masked_bce
from aurep.heads.multitask import pooled_parameters, stages_without_gradient
from aurep.metrics import AUDetectionMetrics
from aurep.models.backbone import Backbone

CHECKPOINT_FORMAT = 2
"""2: weights under ``model.`` (``model.backbone.*``, ``model.heads.<name>.*``). 1 (no
``aurep_format`` key): ``backbone.*``, ``heads.*``, ``au_head.*`` at the top level."""
OLD_PREFIXES = ("backbone.", "heads.", "au_head.")


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)


class PretrainTask(pl.LightningModule):
    """Self-supervised pretraining with any set of heads.

    Args:
        heads: name -> :class:`~aurep.heads.base.SSLHead` (any subclass, by ``class_path``);
            the name is used in logs (``train/<name>/loss``), errors, sweeps and tables; each
            head's loss weight is its own ``weight`` argument (0 = off).
        backbone: timm model name (``pretrained=False``: nothing is downloaded).
        backbone_levels: backbone stages returned as feature maps (heads pick one by
            ``feature_level``); the last is pooled.
        img_size: fixed input size for ViT backbones, pixels (None for CNNs).
        au_codes: the dataset's AU codes (linked from the DataModule by the CLI).
        au_weight: weight of the supervised AU loss on labelled frames (0 = self-supervised only).
        online_probe: train a linear AU probe on detached features and log its per-AU F1.
        bn_from_real_frames: only real frames update the backbone's BatchNorm running
            statistics (see :class:`~aurep.heads.multitask.PretrainModel`).
        optimizer / lr_scheduler: callables from the config (LightningCLI injects them).
    """

    def __init__(
        self,
        heads: dict[str, SSLHead] | None = None,
        backbone: str = "resnet18",
        backbone_levels: list[int] | None = None,
        img_size: int | None = None,
        au_codes: list[int] | None = None,
        au_weight: float = 0.0,
        online_probe: bool = True,
        bn_from_real_frames: bool = True,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["heads"])
        encoder = Backbone(backbone, levels=tuple(backbone_levels or (-2, -1)), img_size=img_size)
        self.model = PretrainModel(encoder, heads or {}, au_weight, bn_from_real_frames)
        self.au_codes = [int(code) for code in au_codes or []]
        num_aus = len(self.au_codes)
        self.probe = (
            AUClassifier(encoder.num_features, num_aus) if online_probe and num_aus else None
        )
        self.probe_scores = nn.ModuleDict(
            {
                f"{stage}_scores": AUDetectionMetrics(self.au_codes, auc=False)
                for stage in (("train", "val") if self.probe is not None else ())
            }
        )
        self.register_buffer("au_pos_weight", torch.ones(num_aus), persistent=False)
        self._stepped_at = -1
        self._pooled_parameters: list[str] | None = None  # checked after the first backward
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler

    @property
    def backbone(self) -> Backbone:
        return self.model.backbone

    def setup(self, stage: str) -> None:
        """Agree with the DataModule before the first step: it learns what to load, the heads
        learn the data's shapes (ValueError naming the head and the missing input)."""
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "provide"):
            raise DatasetError(
                "PretrainTask needs a clip DataModule with provide() "
                "(e.g. aurep.data.datamodules.ClipDataModule)"
            )
        self.attach(datamodule.provide(self.model.needs()))
        pos_weight = getattr(datamodule, "pos_weight", None)
        if pos_weight is not None and len(pos_weight) == len(self.au_codes):
            weights = torch.as_tensor(pos_weight, dtype=torch.float32)
            self.au_pos_weight.copy_(weights)
            if self.model.au_head is not None:
                self.model.au_pos_weight.copy_(weights)

    def attach(self, spec: ClipSpec) -> None:
        """Build the heads for the data (:meth:`PretrainModel.attach`) and note which backbone
        parameters the pooled feature depends on, checked after the first backward pass."""
        self.model.attach(spec)
        if self._pooled_parameters is None:
            self._pooled_parameters = pooled_parameters(self.backbone, spec.image_size)

    def _shared_step(self, batch: ClipBatch, stage: str) -> torch.Tensor:
        try:
            out = self.model(batch)
        except FloatingPointError as error:
            raise FloatingPointError(f"step {self.global_step}: {error}") from None
        total, logs = out.loss, dict(out.logs)
        if self.probe is not None and batch.labels is not None:
            labels = batch.labels.flatten(0, 1)
            mask = batch.label_mask.flatten(0, 1)
            probe_logits = self.probe(out.features.pooled.flatten(0, 1).detach())
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

    def on_train_start(self) -> None:
        self._stepped_at = self.global_step

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """EMA/queue updates once per optimiser step: when ``global_step`` has moved (so no
        update is skipped or doubled under gradient accumulation, even on an epoch's last
        batch)."""
        if self.global_step != self._stepped_at:
            self._stepped_at = self.global_step
            self.model.after_optimizer_step()

    def on_after_backward(self) -> None:
        """After the first backward pass, warn once when no loss reaches some backbone stages
        the pooled feature passes through (e.g. a decoder on a shallower map): the features AU
        probes read would keep those stages at their random initialisation."""
        if not self._pooled_parameters:
            return
        untrained = stages_without_gradient(self.backbone, self._pooled_parameters)
        self._pooled_parameters = []
        if untrained:
            warn_untrained_stages(untrained)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["aurep_format"] = CHECKPOINT_FORMAT

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Load format-1 checkpoints (before heads were a mapping) by moving their weights
        under ``model.``; their head names (temporal, cross_identity, inpainting, flow) are
        the shipped configs' names."""
        if checkpoint.get("aurep_format", 1) >= CHECKPOINT_FORMAT:
            return
        state = checkpoint["state_dict"]
        for key in list(state):
            if key.startswith(OLD_PREFIXES):
                state[f"model.{key}"] = state.pop(key)

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


@rank_zero_only
def warn_untrained_stages(stages: list[str]) -> None:
    print(
        f"aurep: warning: no head sends a gradient to backbone stage(s) {', '.join(stages)}: "
        "the pooled feature AU probes read passes through them at their random "
        "initialisation. Add a head that reads the pooled feature or the deepest map "
        "(e.g. OpticalFlowHead decoder=pooled, or feature_level=-1)",
        file=sys.stderr,
    )
