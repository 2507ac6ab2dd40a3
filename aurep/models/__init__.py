"""Models shared by every task: the timm backbone wrapper."""

from aurep.models.backbone import Backbone, BackboneOutput

__all__ = ["Backbone", "BackboneOutput"]
