"""AurepCLI: LightningCLI configured for aurep's tasks and DataModules (subclass mode)."""

from __future__ import annotations

import sys
import warnings
from argparse import ArgumentError

from pytorch_lightning import LightningDataModule, LightningModule
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from aurep.callbacks import LoggedConfigCallback, check_checkpoint_folders
from aurep.config_errors import config_error_line
from aurep.config_fragments import config_paths, dropped_heads
from aurep.models.backbone import Backbone


class ConfigError(ValueError):
    """A config or command-line error, as one line (aurep prints it without a traceback)."""


class AurepCLI(LightningCLI):
    """LightningCLI with ``class_path`` models and DataModules and overwritable saved configs.

    The DataModule decides the AU set: its ``au_codes`` attribute is linked into the model's
    ``au_codes`` argument when both are instantiated (so it is never set by hand or swept).

    Configs are read in jsonargparse's ``omegaconf+`` mode: interpolations such as
    ``${...default_root_dir}`` (relative: each extra dot is one level up) are resolved after every
    ``--config`` file and override is merged, so the base pretraining config puts logs and
    checkpoints under whatever run directory a later fragment or ``--trainer.default_root_dir``
    names.

    Checks before anything is written: a warning for every ``--config`` that drops heads an
    earlier one named (:func:`~aurep.config_fragments.dropped_heads`); config errors (a typo'd key gets a did-you-mean) raise
    :class:`ConfigError`; a fixed-size backbone (ViT) must match the data's ``image_size``;
    ``fit`` refuses ``--ckpt_path last`` without a checkpoint and a fresh run beside an earlier
    run's checkpoints (:func:`~aurep.callbacks.check_checkpoint_folders`). ``fit`` ends by
    printing the checkpoint and the next command.
    """

    def __init__(self, args=None, **kwargs):
        kwargs.setdefault("parser_kwargs", {"parser_mode": "omegaconf+", "exit_on_error": False})
        kwargs.setdefault("subclass_mode_model", True)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault("save_config_callback", LoggedConfigCallback)
        super().__init__(LightningModule, LightningDataModule, args=args, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.link_arguments("data.au_codes", "model.init_args.au_codes", apply_on="instantiate")

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        for message in dropped_heads(config_paths(sys.argv[1:] if args is None else args)):
            print(f"aurep: warning: {message}", file=sys.stderr)
        try:
            with warnings.catch_warnings():  # aurep passes args only when not from sys.argv
                warnings.filterwarnings("ignore", message="LightningCLI's args parameter")
                super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise ConfigError(config_error_line(str(error), _parser_keys(parser))) from None

    def after_instantiate_classes(self) -> None:
        size = getattr(self.datamodule, "image_size", None)
        if size is None or self.model is None:
            return
        for backbone in self.model.modules():
            if isinstance(backbone, Backbone):
                backbone.check_input_size(size, "data.init_args.image_size")

    def before_fit(self) -> None:
        check_checkpoint_folders(self.trainer, self.config_init[self.subcommand].get("ckpt_path"))

    def after_fit(self) -> None:
        if self.trainer.is_global_zero:
            print(fit_summary(self.trainer, self.model))


def _parser_keys(parser: LightningArgumentParser) -> list[str]:
    """Every option name of ``parser`` and its subcommands (``trainer.max_epochs`` ...)."""
    keys = [action.dest for action in parser._actions]
    subcommands = getattr(parser, "_subcommands_action", None)
    for sub in getattr(subcommands, "_name_parser_map", {}).values():
        keys += [action.dest for action in sub._actions]
    return keys


def fit_summary(trainer, model: LightningModule) -> str:
    """Two lines after ``fit``: where the final checkpoint is, and the command to run next."""
    callback = trainer.checkpoint_callback
    path = callback and (callback.last_model_path or callback.best_model_path)
    if not path:
        return "no checkpoint was written (no ModelCheckpoint with save_last in trainer.callbacks)"
    final = f" (step {trainer.global_step})" if path == callback.last_model_path else ""
    if trainer.interrupted:
        step = "resume: the same command with --ckpt_path last"
    elif hasattr(model, "test_scores"):  # an AU detector
        step = f"next: aurep infer VIDEO --ckpt {path} --out VIDEO_aus.csv"
    else:
        step = (
            "next: aurep cv --config configs/eval/synth_linear.yaml "
            f"-- --model.init_args.pretrained_ckpt={path}   (real data: configs/eval/bp4d.yaml ...)"
        )
    return f"checkpoint: {path}{final}\n{step}"
