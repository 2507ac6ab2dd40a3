"""AurepCLI: LightningCLI configured for aurep's tasks and DataModules (subclass mode)."""

from __future__ import annotations

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from aurep.callbacks import LoggedConfigCallback


class AurepCLI(LightningCLI):
    """LightningCLI with ``class_path`` models and DataModules and overwritable saved configs.

    The DataModule decides the AU set: its ``au_codes`` attribute is linked into the model's
    ``au_codes`` argument when both are instantiated (so it is never set by hand or swept).

    Configs are read in jsonargparse's ``omegaconf+`` mode: interpolations such as
    ``${...default_root_dir}`` (relative: each extra dot is one level up) are resolved after every
    ``--config`` file and override is merged, so the base pretraining config puts logs and
    checkpoints under whatever run directory a later fragment or ``--trainer.default_root_dir``
    names.
    """

    def __init__(self, args=None, **kwargs):
        kwargs.setdefault("parser_kwargs", {"parser_mode": "omegaconf+"})
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("save_config_callback", LoggedConfigCallback)
        super().__init__(LightningModule, LightningDataModule, args=args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.au_codes", "model.init_args.au_codes", apply_on="instantiate")
