"""Models shared by every task: the timm backbone wrapper and its loading from checkpoints."""

from aurep.models.backbone import Backbone, BackboneOutput
from aurep.models.checkpoints import load_backbone, read_checkpoint

__all__ = ["Backbone", "BackboneOutput", "load_backbone", "read_checkpoint"]
