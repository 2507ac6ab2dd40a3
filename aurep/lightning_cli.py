"""AurepCLI: LightningCLI configured for aurep's tasks and DataModules (subclass mode)."""

from __future__ import annotations

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningCLI


class AurepCLI(LightningCLI):
    """LightningCLI with ``class_path`` models and DataModules and overwritable saved configs."""

    def __init__(self, args=None, **kwargs):
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(LightningModule, LightningDataModule, args=args, **kwargs)
