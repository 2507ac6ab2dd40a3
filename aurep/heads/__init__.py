"""Self-supervised heads (TCL, CIR, RoI inpainting, optical flow), the AU head and their losses.
Plain PyTorch: no Lightning imports."""

from aurep.heads.au_classifier import AUClassifier
from aurep.heads.base import ClipFeatures, Encoder, HeadOutput, SSLHead
from aurep.heads.cross_identity import CrossIdentityReconstructionHead, FaceDecoder
from aurep.heads.losses import (
    end_point_error,
    margin_info_nce,
    masked_bce,
    pos_weight_from_labels,
    temporal_log_weights,
    temporal_ranking_loss,
)
from aurep.heads.memory_bank import KeyQueue, ema_update, gather, momentum_copy
from aurep.heads.optical_flow import OpticalFlowHead
from aurep.heads.roi_inpainting import RoIInpaintingHead, mask_rois, masked_patch_l1, roi_patches
from aurep.heads.temporal_contrastive import TemporalContrastiveHead

__all__ = [
    "AUClassifier",
    "ClipFeatures",
    "CrossIdentityReconstructionHead",
    "Encoder",
    "FaceDecoder",
    "HeadOutput",
    "KeyQueue",
    "OpticalFlowHead",
    "RoIInpaintingHead",
    "SSLHead",
    "TemporalContrastiveHead",
    "ema_update",
    "end_point_error",
    "gather",
    "margin_info_nce",
    "mask_rois",
    "masked_bce",
    "masked_patch_l1",
    "momentum_copy",
    "pos_weight_from_labels",
    "roi_patches",
    "temporal_log_weights",
    "temporal_ranking_loss",
]
