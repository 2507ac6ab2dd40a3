"""aurep checkpoint files -> backbones: read a checkpoint once, check and load its backbone.

A checkpoint is Lightning's dict: ``state_dict``, ``hyper_parameters`` (``backbone``: timm name,
``img_size``: ViT input side in px or None), ``datamodule_hyper_parameters`` and, for an
AUDetector, :data:`TRAINING_DATA_KEY`. The backbone
weights sit under ``model.backbone.`` (PretrainTask) or ``backbone.`` (AUDetector and older
PretrainTask checkpoints); the first prefix present wins. Checkpoints are pickles: load only your
own. Plain torch: nothing here imports Lightning.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aurep.models.backbone import Backbone

BACKBONE_PREFIXES = ("model.backbone.", "backbone.")
"""state_dict prefixes of backbone weights, in order of preference."""

TRAINING_DATA_KEY = "aurep_training_data"
"""Checkpoint entry of an AUDetector: the training dataset's meta.json entries that inference
needs (:data:`TRAINING_DATA_ENTRIES`), so ``aurep infer`` does not depend on finding the dataset."""
TRAINING_DATA_ENTRIES = ("source", "preprocess", "image_size")


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict of ``path``, tensors on the CPU.

    ValueError naming the file when it is missing, not a torch file, or holds no ``state_dict``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # unpickling arbitrary bytes can raise almost anything
        raise ValueError(
            f"{path}: not a torch checkpoint ({type(error).__name__}: {error})"
        ) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise ValueError(f"{path}: not an aurep checkpoint (no state_dict)")
    return checkpoint


def check_backbone_settings(
    checkpoint: dict, path: str | Path, backbone: str, img_size: int | None
) -> None:
    """ValueError naming ``path`` when the checkpoint's ``backbone`` / ``img_size``
    hyper-parameters differ from the given ones (absent hyper-parameters are not checked)."""
    hparams = checkpoint.get("hyper_parameters", {})
    for key, wanted in (("backbone", backbone), ("img_size", img_size)):
        if key in hparams and hparams[key] != wanted:
            raise ValueError(
                f"{path} was trained with {key}={hparams[key]!r} but the model has "
                f"{key}={wanted!r}: set the model's {key} to {hparams[key]!r}"
            )


def backbone_state(checkpoint: dict, path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone weights of a checkpoint, keys without their prefix (see
    :data:`BACKBONE_PREFIXES`). ValueError naming ``path`` and the prefixes when there are none."""
    state = checkpoint["state_dict"]
    for prefix in BACKBONE_PREFIXES:
        weights = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
        if weights:
            return weights
    looked_for = " or ".join(f"'{prefix}*'" for prefix in BACKBONE_PREFIXES)
    raise ValueError(f"{path}: no backbone weights (no state_dict key matches {looked_for})")


def load_backbone_weights(backbone: Backbone, checkpoint: dict, path: str | Path) -> None:
    """Copy the checkpoint's backbone weights into ``backbone``; ValueError naming ``path`` when
    they are missing or their keys or shapes do not fit."""
    weights = backbone_state(checkpoint, path)
    own = backbone.state_dict()
    problems = sorted(set(own) ^ set(weights)) + [
        f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}"
        for k, v in weights.items()
        if k in own and v.shape != own[k].shape
    ]
    if problems:
        raise ValueError(
            f"{path}: its backbone weights do not fit {backbone.name!r} "
            f"({len(problems)} mismatched keys, e.g. {problems[:3]})"
        )
    backbone.load_state_dict(weights)


def load_backbone(path: str | Path) -> tuple[Backbone, dict]:
    """The backbone of a PretrainTask or AUDetector checkpoint, built from its hyper-parameters
    (eval mode, deepest stage pooled; the weights do not depend on ``backbone_levels``), and the
    checkpoint's DataModule hyper-parameters (``{}`` if none). ValueError naming the file when
    it holds no usable backbone."""
    checkpoint = read_checkpoint(path)
    hparams = checkpoint.get("hyper_parameters", {})
    if "backbone" not in hparams:
        raise ValueError(f"{path}: no 'backbone' hyper-parameter; not an aurep model checkpoint")
    backbone = Backbone(hparams["backbone"], img_size=hparams.get("img_size"))
    load_backbone_weights(backbone, checkpoint, path)
    return backbone.eval(), dict(checkpoint.get("datamodule_hyper_parameters", {}))
