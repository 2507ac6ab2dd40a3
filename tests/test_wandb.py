"""W&B logging from the YAML configs: an offline run whose config and metrics read back."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from conftest import TINY_FIT

from aurep.callbacks import LoggedConfigCallback
from aurep.sweeps.results import read_wandb_run, run_metrics, wandb_run_dirs

REPO = Path(__file__).resolve().parents[1]
TINY = [*TINY_FIT, "--data.init_args.clips_per_epoch=8", "--trainer.max_epochs=1"]


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline with every W&B directory in tmp; finishes the run the test leaves open."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    yield
    wandb.finish()


@pytest.mark.slow
def test_fit_with_wandb_logger_config(tiny_corpus, tmp_path, monkeypatch, offline_wandb):
    from aurep.lightning_cli import AurepCLI

    monkeypatch.chdir(tmp_path)
    args = [
        "fit",
        "--config", str(REPO / "configs" / "pretrain" / "base.yaml"),
        "--config", str(REPO / "configs" / "pretrain" / "clp.yaml"),
        "--config", str(REPO / "configs" / "loggers" / "wandb.yaml"),
        f"--data.init_args.root={tiny_corpus}",
        *TINY,
    ]  # fmt: skip
    AurepCLI(args=args, save_config_callback=LoggedConfigCallback)
    import wandb

    wandb.finish()

    [run_dir] = wandb_run_dirs(tmp_path / "runs" / "wandb")
    assert run_dir.name.startswith("offline-run-")
    run = read_wandb_run(run_dir)
    assert run["state"] == "finished" and run["project"] == "aurep"
    # the full resolved config, nested as in the YAML (defaults filled in)
    config = run["config"]
    assert config["model"]["init_args"]["backbone"] == "test_resnet"
    assert config["model"]["init_args"]["heads"]["temporal"]["init_args"]["margin"] == 0.1
    assert config["data"]["init_args"]["root"] == str(tiny_corpus)
    assert config["trainer"]["logger"]["class_path"].endswith("WandbLogger")
    saved = yaml.safe_load((run_dir / "files" / "lightning_config.yaml").read_text())
    assert saved["model"] == config["model"]
    # metrics: the last logged value of each, as in W&B's summary
    metrics = run_metrics(tmp_path / "runs" / "wandb")
    assert math.isfinite(metrics["train/loss"]) and math.isfinite(metrics["val/loss"])
    assert 0.0 <= metrics["val/probe_f1_mean"] <= 1.0
    # the checkpoint and LightningCLI's config.yaml are still written; no CSV logs
    assert (tmp_path / "runs" / "pretrain" / "clp" / "checkpoints" / "last.ckpt").exists()
    assert (tmp_path / "runs" / "wandb" / "config.yaml").exists()
    assert not list((tmp_path / "runs").glob("**/metrics.csv"))


def test_unreadable_wandb_run_is_a_clear_error(tmp_path):
    (tmp_path / "offline-run-x").mkdir()
    with pytest.raises(ValueError, match="offline-run-x: W&B cannot read this run"):
        read_wandb_run(tmp_path / "offline-run-x")


def test_csv_metrics_are_the_last_logged_values(tmp_path):
    (tmp_path / "version_0").mkdir()
    (tmp_path / "version_0" / "metrics.csv").write_text(
        "epoch,step,train/loss,val/probe_f1_mean\n0,1,2.0,\n0,1,,0.25\n0,3,1.5,\n1,3,,0.5\n"
    )
    assert run_metrics(tmp_path) == {
        "epoch": 1.0, "step": 3.0, "train/loss": 1.5, "val/probe_f1_mean": 0.5
    }  # fmt: skip
