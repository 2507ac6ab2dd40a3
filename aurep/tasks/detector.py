"""AU detection on single frames: linear evaluation or fine-tuning of a (pretrained) backbone.

The backbone is any timm model, randomly initialised or loaded from a :class:`PretrainTask`
checkpoint (``pretrained_ckpt``). ``mode="linear"`` freezes it (eval mode, no gradients) and
trains BatchNorm1d + Linear on its pooled features; ``mode="finetune"`` trains every weight,
optionally with a smaller backbone learning rate. The loss is BCE with per-AU positive weights
from the DataModule's training labels; unknown labels are masked. Validation logs
``val/mean_f1`` (pooled over the validation subjects) for checkpoint selection; test logs the
same metrics on the test fold and keeps the full :class:`~aurep.metrics.AUScores` in
``test_scores``. The AU set is saved with the hyper-parameters and checked against the data and
against any checkpoint loaded into the model.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.cli import LRSchedulerCallable, OptimizerCallable

from aurep.data.labelled import FrameBatch
from aurep.heads import AUClassifier, masked_bce
from aurep.metrics import AUDetectionMetrics, AUScores
from aurep.models.backbone import Backbone
from aurep.models.checkpoints import (
    TRAINING_DATA_ENTRIES,
    TRAINING_DATA_KEY,
    check_backbone_settings,
    load_backbone_weights,
    read_checkpoint,
)

MODES = ("linear", "finetune")


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


class AUDetector(pl.LightningModule):
    """Multi-label AU detector: backbone -> pooled features -> :class:`AUClassifier` logits.

    Args:
        backbone: timm model name; must match the pretraining checkpoint's when one is given.
        img_size: fixed input size for ViT backbones, pixels (None for CNNs).
        pretrained_ckpt: PretrainTask checkpoint whose backbone weights are loaded when
            fitting starts (None = random init, or timm weights with ``timm_pretrained``).
            Checkpoints are pickles: load only your own.
        timm_pretrained: start from timm's ImageNet weights (needs them in timm's local cache;
            nothing is downloaded by aurep's tests).
        mode: ``"linear"`` (frozen backbone in eval mode, only the head trains) or
            ``"finetune"`` (all weights train).
        backbone_lr_scale: fine-tuning only: backbone learning rate = optimizer lr x this.
        head_hidden / head_batchnorm / head_dropout: the :class:`AUClassifier` (0 hidden =
            BatchNorm1d + Linear, the linear-evaluation probe).
        pos_weight: weight positive labels by the DataModule's ``pos_weight`` (negatives /
            positives per AU of the training labels); False = plain BCE.
        tune_thresholds: after every validation epoch set per-AU probability thresholds that
            maximise each AU's F1 on the validation subjects; the test uses them (saved in the
            checkpoint). False = threshold 0.5 for every AU.
        threshold_bins: number of evenly spaced candidate thresholds in [0, 1] for tuning.
        au_codes: the AU set (linked from the DataModule by the CLI; needed to build the head).
        optimizer / lr_scheduler: callables from the config (LightningCLI injects them); the
            scheduler steps every optimizer step.
    """

    def __init__(
        self,
        backbone: str = "resnet18",
        img_size: int | None = None,
        pretrained_ckpt: str | None = None,
        timm_pretrained: bool = False,
        mode: str = "linear",
        backbone_lr_scale: float = 1.0,
        head_hidden: int = 0,
        head_batchnorm: bool = True,
        head_dropout: float = 0.0,
        pos_weight: bool = True,
        tune_thresholds: bool = False,
        threshold_bins: int = 101,
        au_codes: list[int] | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"AUDetector mode must be one of {MODES}, got {mode!r}")
        if backbone_lr_scale <= 0:
            raise ValueError(f"backbone_lr_scale must be > 0, got {backbone_lr_scale}")
        if not au_codes:
            raise ValueError(
                "AUDetector needs au_codes: `aurep fit` links them from the DataModule; "
                "pass au_codes=[...] when building the model by hand"
            )
        self.save_hyperparameters(ignore=["optimizer", "lr_scheduler"])
        self.au_codes = [int(code) for code in au_codes]
        num_aus = len(self.au_codes)
        self.backbone = Backbone(backbone, pretrained=timm_pretrained, img_size=img_size)
        self.head = AUClassifier(
            self.backbone.num_features, num_aus, head_hidden, head_batchnorm, head_dropout
        )
        if mode == "linear":
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.register_buffer("pos_weight", torch.ones(num_aus), persistent=False)
        self.register_buffer("thresholds", torch.full((num_aus,), 0.5))
        self.val_metrics = AUDetectionMetrics(
            self.au_codes, threshold_bins=threshold_bins if tune_thresholds else 0
        )
        self.test_metrics = AUDetectionMetrics(self.au_codes)
        self.test_scores: AUScores | None = None
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler

    @property
    def frozen_backbone(self) -> bool:
        return self.hparams.mode == "linear"

    def train(self, mode: bool = True) -> AUDetector:
        """Keep a frozen backbone in eval mode (BatchNorm statistics and dropout fixed)."""
        super().train(mode)
        if self.frozen_backbone:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) normalised -> logits (B, A)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen_backbone):
            pooled = self.backbone(images).pooled
        return self.head(pooled)

    def load_pretrained_backbone(self, path: str | Path) -> None:
        """Copy the backbone weights of a PretrainTask (or AUDetector) checkpoint into the backbone.

        Raises ValueError naming the file when its backbone name, input size or weight shapes
        differ from this model's."""
        checkpoint = read_checkpoint(path)
        check_backbone_settings(checkpoint, path, self.hparams.backbone, self.hparams.img_size)
        load_backbone_weights(self.backbone, checkpoint, path)

    @classmethod
    def from_checkpoint(cls, checkpoint: dict, path: str | Path) -> AUDetector:
        """The detector saved in ``checkpoint`` (a dict from
        :func:`~aurep.models.checkpoints.read_checkpoint` of ``path``), in eval mode, on the CPU.

        Built from the saved hyper-parameters without timm or pretraining weights (the saved
        weights replace them). ValueError naming ``path`` when it is not an AUDetector checkpoint.
        """
        saved = checkpoint.get("hyper_parameters", {})
        names = inspect.signature(cls).parameters
        kwargs = {key: value for key, value in saved.items() if key in names}
        kwargs.update(timm_pretrained=False, pretrained_ckpt=None)
        try:
            model = cls(**kwargs)
            model.load_state_dict(checkpoint["state_dict"])
        except (TypeError, ValueError, RuntimeError) as error:
            first = str(error).strip().splitlines()[0]
            raise ValueError(f"{path}: not an AUDetector checkpoint ({first})") from None
        return model.eval()

    def setup(self, stage: str) -> None:
        datamodule = self.trainer.datamodule
        data_aus = getattr(datamodule, "au_codes", None)
        if data_aus is not None and [int(c) for c in data_aus] != self.au_codes:
            root = getattr(datamodule, "hparams", {}).get("root", "the DataModule")
            raise ValueError(
                f"the model detects AUs {self.au_codes} but {root} has AUs {list(data_aus)}: "
                "evaluate on a dataset with the model's AU set"
            )
        if stage == "fit":
            if self.hparams.pretrained_ckpt:
                self.load_pretrained_backbone(self.hparams.pretrained_ckpt)
            weights = getattr(datamodule, "pos_weight", None)
            if self.hparams.pos_weight and weights is not None:
                self.pos_weight.copy_(torch.as_tensor(weights, dtype=torch.float32))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the training dataset's source, crop settings and image side (from its
        meta.json) under :data:`TRAINING_DATA_KEY`, for ``aurep infer``."""
        dataset = getattr(getattr(self._trainer, "datamodule", None), "dataset", None)
        meta = getattr(dataset, "meta", None)
        if isinstance(meta, dict):
            checkpoint[TRAINING_DATA_KEY] = {
                key: meta[key] for key in TRAINING_DATA_ENTRIES if key in meta
            }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stored = checkpoint.get("hyper_parameters", {}).get("au_codes")
        if stored is not None and [int(c) for c in stored] != self.au_codes:
            raise ValueError(
                f"the checkpoint detects AUs {list(stored)} but this model was built for "
                f"{self.au_codes} (from the data): use data with the checkpoint's AU set"
            )

    def _loss(self, logits: torch.Tensor, batch: FrameBatch) -> torch.Tensor:
        pos_weight = self.pos_weight if self.hparams.pos_weight else None
        loss = masked_bce(logits, batch.labels, batch.label_mask, pos_weight)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"the AU loss is {loss.item()} at step {self.global_step}: lower the learning "
                "rate or check the data"
            )
        return loss

    def training_step(self, batch: FrameBatch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(self(batch.images), batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch.batch_size)
        return loss

    def validation_step(self, batch: FrameBatch, batch_idx: int) -> None:
        logits = self(batch.images)
        self.log("val/loss", self._loss(logits, batch), batch_size=batch.batch_size)
        self.val_metrics.update(logits.sigmoid(), batch.labels, batch.label_mask)

    def test_step(self, batch: FrameBatch, batch_idx: int) -> None:
        probs = self(batch.images).sigmoid()
        self.test_metrics.update(probs, batch.labels, batch.label_mask, self.thresholds)

    def predict_step(self, batch: FrameBatch, batch_idx: int) -> torch.Tensor:
        """(B, A) AU probabilities (compare with ``self.thresholds`` for 0/1 decisions)."""
        return self(batch.images).sigmoid()

    def _log_scores(self, stage: str, scores: AUScores) -> None:
        for column, f1, auc in zip(scores.columns, scores.f1, scores.auc, strict=True):
            self.log(f"{stage}/f1/{column}", float(f1))
            self.log(f"{stage}/auc/{column}", float(auc))
        self.log(f"{stage}/mean_f1", scores.mean_f1, prog_bar=True)
        self.log(f"{stage}/mean_auc", scores.mean_auc)
        self.log(f"{stage}/aus_in_mean", float(scores.num_defined))

    def on_validation_epoch_end(self) -> None:
        if not self.val_metrics.num_updates:
            return
        sanity = self.trainer.sanity_checking
        self._log_scores("val", self.val_metrics.compute(warn=not sanity))
        if self.hparams.tune_thresholds and not sanity:
            self.thresholds.copy_(self.val_metrics.best_thresholds())
        self.val_metrics.reset()

    def on_test_epoch_end(self) -> None:
        self.test_scores = self.test_metrics.compute(thresholds=self.thresholds)
        self._log_scores("test", self.test_scores)
        self.test_metrics.reset()

    def configure_optimizers(self):
        head = [p for p in self.head.parameters() if p.requires_grad]
        groups = [{"params": head, "lr_scale": 1.0}]
        if not self.frozen_backbone:
            backbone = [p for p in self.backbone.parameters() if p.requires_grad]
            groups.append({"params": backbone, "lr_scale": self.hparams.backbone_lr_scale})
        optimizer = self.optimizer_factory(groups)
        for group in optimizer.param_groups:
            group["lr"] *= group["lr_scale"]
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
