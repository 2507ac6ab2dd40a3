"""Every shipped pretraining config runs through the real CLI (tiny backbone, tiny corpus)."""

from pathlib import Path

import pytest
import torch
from conftest import TINY_FIT

from aurep.cli import main

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted((REPO / "configs" / "pretrain").glob("*.yaml"))
TINY = [*TINY_FIT, "--data.init_args.clips_per_epoch=8"]


def fit(config: Path, corpus: Path, *extra: str) -> int:
    return main(["fit", "--config", str(config), f"--data.init_args.root={corpus}", *TINY, *extra])


def test_every_head_has_a_config():
    assert {c.stem for c in CONFIGS} >= {
        "temporal",
        "cross_identity",
        "inpainting",
        "flow",
        "clp",
        "rtatl",
        "all",
    }


@pytest.mark.slow
@pytest.mark.parametrize("config", CONFIGS, ids=lambda path: path.stem)
def test_config_runs(config, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fit(config, tiny_corpus, "--trainer.max_epochs=1") == 0
    checkpoint = tmp_path / "runs" / "pretrain" / config.stem / "checkpoints" / "last.ckpt"
    assert checkpoint.exists()
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    metrics = next((tmp_path / "runs" / "pretrain" / config.stem).glob("version_*/metrics.csv"))
    assert "train/loss" in metrics.read_text().splitlines()[0]


@pytest.mark.slow
def test_resume_from_last(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "pretrain" / "all.yaml"
    assert fit(config, tiny_corpus, "--trainer.max_epochs=1") == 0
    last = tmp_path / "runs" / "pretrain" / "all" / "checkpoints" / "last.ckpt"
    first = torch.load(last, map_location="cpu", weights_only=False)
    assert fit(config, tiny_corpus, "--trainer.max_epochs=2", "--ckpt_path=last") == 0
    second = torch.load(last, map_location="cpu", weights_only=False)
    assert first["global_step"] == 2
    assert (second["epoch"], second["global_step"]) == (first["epoch"] + 1, 4)  # continued
    queue = "heads.temporal.queue"
    keys = [k for k in second["state_dict"] if k.startswith(queue)]
    assert keys, "the contrastive queue is checkpointed"


@pytest.mark.slow
def test_missing_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = REPO / "configs" / "pretrain" / "flow.yaml"
    assert fit(config, tmp_path / "nowhere", "--trainer.max_epochs=1") == 1
    assert "nowhere: no such dataset directory" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("config", "override", "message"),
    [
        ("temporal", "--data.init_args.num_views=1", "num_views >= 2"),
        ("inpainting", "--data.init_args.roi_aus=[1,2]", "num_rois=24 but the DataModule gives 4"),
    ],
)
def test_data_the_heads_cannot_use_is_refused_in_one_line(
    config, override, message, tiny_corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    path = REPO / "configs" / "pretrain" / f"{config}.yaml"
    assert fit(path, tiny_corpus, "--trainer.max_epochs=1", override) == 1
    assert message in capsys.readouterr().err.splitlines()[-1]
