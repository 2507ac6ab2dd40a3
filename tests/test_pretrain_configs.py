"""Every shipped pretraining config runs through the real CLI (tiny backbone, tiny corpus): the
base config plus each fragment (one per head, and the combinations clp, rtatl, all)."""

from pathlib import Path

import pytest
import torch
import yaml
from conftest import TINY_FIT

from aurep.cli import main

REPO = Path(__file__).resolve().parents[1]
PRETRAIN = REPO / "configs" / "pretrain"
BASE = PRETRAIN / "base.yaml"
FRAGMENTS = sorted(PRETRAIN.glob("heads/*.yaml")) + sorted(
    path for path in PRETRAIN.glob("*.yaml") if path != BASE
)
TINY = [*TINY_FIT, "--data.init_args.clips_per_epoch=8"]


def fit(fragment: Path, corpus: Path, *extra: str) -> int:
    return main(
        [
            "fit",
            f"--config={BASE}",
            f"--config={fragment}",
            f"--data.init_args.root={corpus}",
            *TINY,
            *extra,
        ]
    )


def test_every_head_and_combination_has_a_fragment():
    names = {path.stem for path in FRAGMENTS}
    assert names >= {"temporal", "cross_identity", "inpainting", "flow", "clp", "rtatl", "all"}


def test_no_fragment_repeats_what_the_data_knows():
    """num_rois, flow and view requirements come from the heads' contract, never from YAML."""
    for path in [BASE, *FRAGMENTS]:
        text = path.read_text()
        for key in ("num_rois", "require_flow", "num_views"):
            assert f"{key}:" not in text, (path.name, key)


@pytest.mark.slow
@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda path: path.stem)
def test_config_runs(fragment, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert fit(fragment, tiny_corpus, "--trainer.max_epochs=1") == 0
    run_dir = tmp_path / "runs" / "pretrain" / fragment.stem
    state = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False
    )
    assert state["global_step"] == 2
    heads = set(yaml.safe_load(fragment.read_text())["model"]["init_args"]["heads"])
    stored = {key.split(".")[2] for key in state["state_dict"] if key.startswith("model.heads.")}
    assert stored and stored <= heads  # heads without parameters store nothing
    header = next(run_dir.glob("version_*/metrics.csv")).read_text().splitlines()[0]
    assert all(f"train/{head}/loss" in header for head in heads), header  # every head ran


@pytest.mark.slow
def test_base_alone_says_to_add_heads(tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["fit", f"--config={BASE}", f"--data.init_args.root={tiny_corpus}", *TINY])
    assert code == 1
    assert "every head is off" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow
def test_run_directory_is_one_override(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    flow = PRETRAIN / "heads" / "flow.yaml"
    assert fit(flow, tiny_corpus, "--trainer.max_epochs=1", "--trainer.default_root_dir=x/y") == 0
    assert (tmp_path / "x" / "y" / "checkpoints" / "last.ckpt").exists()
    assert next((tmp_path / "x" / "y").glob("version_*/metrics.csv")).exists()


@pytest.mark.slow
def test_heads_can_be_added_and_switched_off_from_the_command_line(
    tiny_corpus, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    extra = [
        "--trainer.max_epochs=1",
        "--model.init_args.heads.flow=aurep.heads.OpticalFlowHead",  # added to clp's two
        "--model.init_args.heads.temporal.init_args.weight=0",  # off: not built
    ]
    assert fit(PRETRAIN / "clp.yaml", tiny_corpus, *extra) == 0
    last = tmp_path / "runs" / "pretrain" / "clp" / "checkpoints" / "last.ckpt"
    state = torch.load(last, map_location="cpu", weights_only=False)["state_dict"]
    heads = {key.split(".")[2] for key in state if key.startswith("model.heads.")}
    assert heads == {"cross_identity", "flow"}


@pytest.mark.slow
def test_resume_from_last(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = PRETRAIN / "all.yaml"
    assert fit(config, tiny_corpus, "--trainer.max_epochs=1") == 0
    last = tmp_path / "runs" / "pretrain" / "all" / "checkpoints" / "last.ckpt"
    first = torch.load(last, map_location="cpu", weights_only=False)
    assert fit(config, tiny_corpus, "--trainer.max_epochs=2", "--ckpt_path=last") == 0
    second = torch.load(last, map_location="cpu", weights_only=False)
    assert first["global_step"] == 2
    assert (second["epoch"], second["global_step"]) == (first["epoch"] + 1, 4)  # continued
    queue = "model.heads.temporal.queue"
    assert any(k.startswith(queue) for k in second["state_dict"]), "the queue is checkpointed"


@pytest.mark.slow
def test_missing_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert (
        fit(PRETRAIN / "heads" / "flow.yaml", tmp_path / "nowhere", "--trainer.max_epochs=1") == 1
    )
    assert "nowhere: no such dataset directory" in capsys.readouterr().err.splitlines()[-1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fragment", "override", "message"),
    [
        ("temporal", "--data.init_args.num_views=1", "the temporal head needs 2 views per clip"),
        ("inpainting", "--data.init_args.roi_aus=[]", "roi AU list is empty"),
        (
            "inpainting",
            "--model.init_args.heads.inpainting.init_args.num_rois=5",
            "num_rois=5 but the data gives 24",
        ),
    ],
)
def test_data_the_heads_cannot_use_is_refused_in_one_line(
    fragment, override, message, tiny_corpus, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    path = PRETRAIN / "heads" / f"{fragment}.yaml"
    assert fit(path, tiny_corpus, "--trainer.max_epochs=1", override) == 1
    assert message in capsys.readouterr().err.splitlines()[-1]
