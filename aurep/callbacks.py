"""Lightning callbacks of the ``aurep`` command and the checks of its checkpoint folders."""

from __future__ import annotations

from pathlib import Path

import yaml
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
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


class RunCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose ``last.ckpt`` is always the state at the end of the run.

    Lightning writes ``last`` at the end of training only if no ``last`` was saved during the run,
    so with ``every_n_train_steps: 20`` a run stopping at step 45 would keep step 40; this one
    saves ``last`` again whenever steps were taken since the previous save (``save_last=True``;
    ``"link"`` would still point at the older file). The version counter
    is off by default: a resumed run (``--ckpt_path last``) rewrites ``last.ckpt`` instead of
    adding ``last-v1.ckpt`` (``aurep fit`` refuses a fresh run into a folder holding older
    checkpoints, see :func:`check_checkpoint_folders`).

    Args: those of :class:`~pytorch_lightning.callbacks.ModelCheckpoint`.
    """

    def __init__(self, *args, enable_version_counter: bool = False, **kwargs):
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """A resumed run starts at the restored step, which ``last.ckpt`` already holds: without
        this, a finished run resumed again would rewrite it at the same step."""
        super().on_train_start(trainer, pl_module)
        self._last_global_step_saved = trainer.global_step

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))


def check_checkpoint_folders(trainer: Trainer, ckpt_path: str | None) -> None:
    """Before ``fit``: ValueError naming the folder when ``ckpt_path="last"`` finds no last
    checkpoint (Lightning would train from scratch), when a checkpoint file does not exist, or
    when a fresh run (no ``ckpt_path``) would write beside an earlier run's checkpoints."""
    folders = [Path(cb.dirpath) for cb in trainer.checkpoint_callbacks if cb.dirpath]
    if ckpt_path == "last":
        found = [
            p for cb in trainer.checkpoint_callbacks for p in cb._find_last_checkpoints(trainer)
        ]
        if not found:
            where = ", ".join(map(str, folders)) or trainer.default_root_dir
            raise ValueError(
                f"--ckpt_path last: no last checkpoint in {where}: nothing to resume "
                "(leave out --ckpt_path to start a fresh run)"
            )
    elif ckpt_path is None:
        for folder in folders:
            older = sorted(path.name for path in folder.glob("*.ckpt"))
            if older:
                raise ValueError(
                    f"{folder}: holds checkpoints of an earlier run ({', '.join(older)}): resume "
                    "it with --ckpt_path last, or write this run elsewhere with "
                    "--trainer.default_root_dir=DIR (or delete that folder)"
                )
    elif (
        ckpt_path not in ("best", "hpc")
        and "://" not in ckpt_path
        and not Path(ckpt_path).is_file()
    ):
        raise ValueError(f"--ckpt_path {ckpt_path}: no such checkpoint file")
