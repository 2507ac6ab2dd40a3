"""Self-supervised heads (TCL, CIR, RoI inpainting, optical flow), the AU head, their losses and
the multitask model that combines them. Plain PyTorch: no Lightning imports.

A head is any :class:`SSLHead` subclass, in this package or outside it: LightningCLI finds it by
``class_path`` and the tests find every subclass in ``aurep.heads.*`` by walking the package, so
a new head file needs no edit here.
"""

from aurep.data.batch import BatchNeeds, ClipSpec, check_needs
from aurep.heads.au_classifier import AUClassifier
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.cross_identity import CrossIdentityReconstructionHead, FaceDecoder
from aurep.heads.losses import (
    end_point_error,
    margin_info_nce,
    masked_bce,
    temporal_log_weights,
    temporal_ranking_loss,
)
from aurep.heads.memory_bank import KeyQueue, ema_update, gather, momentum_copy
from aurep.heads.multitask import PretrainModel, PretrainOutput
from aurep.heads.optical_flow import OpticalFlowHead
from aurep.heads.roi_inpainting import RoIInpaintingHead, mask_rois, masked_patch_l1, roi_patches
from aurep.heads.temporal_contrastive import TemporalContrastiveHead

__all__ = [
    "AUClassifier",
    "BatchNeeds",
    "ClipFeatures",
    "ClipSpec",
    "CrossIdentityReconstructionHead",
    "Encoder",
    "FaceDecoder",
    "HeadOutput",
    "KeyQueue",
    "OpticalFlowHead",
    "PretrainModel",
    "PretrainOutput",
    "RoIInpaintingHead",
    "SSLHead",
    "TemporalContrastiveHead",
    "check_needs",
    "ema_update",
    "end_point_error",
    "gather",
    "margin_info_nce",
    "mask_rois",
    "masked_bce",
    "masked_patch_l1",
    "momentum_copy",
    "roi_patches",
    "temporal_log_weights",
    "temporal_ranking_loss",
]
