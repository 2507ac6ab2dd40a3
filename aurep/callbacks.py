"""Lightning callbacks of the ``aurep`` command."""

from __future__ import annotations

from pathlib import Path

import yaml
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.cli import SaveConfigCallback
from pytorch_lightning.loggers import WandbLogger


class LoggedConfigCallback(SaveConfigCallback):
    """LightningCLI's config saver that also puts the resolved config into every W&B run.

    As the parent it writes ``config.yaml`` (every default filled in) to ``trainer.log_dir``.
    For each :class:`~pytorch_lightning.loggers.WandbLogger` it then (rank 0 only, via
    ``save_config``) merges the nested config (``trainer``, ``model``, ``data``, ...) into the run's
    config, so W&B shows columns such as ``model.init_args.heads.temporal.init_args.weight``
    (the names sweeps use), and saves the YAML as ``files/<wandb_filename>`` of the run (synced with the run; not
    ``config.yaml``, which W&B writes there itself).

    Args: those of :class:`~pytorch_lightning.cli.SaveConfigCallback`, plus ``wandb_filename``.
    """

    def __init__(self, *args, wandb_filename: str = "lightning_config.yaml", **kwargs):
        super().__init__(*args, **kwargs)
        self.wandb_filename = wandb_filename

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        runs = [lg.experiment for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if not runs:
            return
        text = self.parser.dump(self.config, skip_none=False)
        config = yaml.safe_load(text)
        for run in runs:
            run.config.update(config, allow_val_change=True)
            path = Path(run.dir) / self.wandb_filename
            path.write_text(text)
            run.save(str(path), base_path=run.dir, policy="now")
