"""Checkpoints of `aurep fit` through the real CLI: last.ckpt is the run's final step, a fresh run
never writes beside an earlier run's checkpoints, and `--ckpt_path last` never silently starts
from scratch."""

from pathlib import Path

import pytest
import torch
from conftest import TINY_FIT

from aurep.cli import main

PRETRAIN = Path(__file__).resolve().parents[1] / "configs" / "pretrain"
EVERY_2_STEPS = """\
trainer:
  callbacks:
    - class_path: aurep.callbacks.RunCheckpoint
      init_args:
        dirpath: ${....default_root_dir}/checkpoints
        save_last: true
        every_n_train_steps: 2
"""


@pytest.fixture
def fit(tiny_corpus, tmp_path, monkeypatch):
    """``fit(*overrides)``: base + flow head, checkpoints every 2 steps, in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    every = tmp_path / "every2.yaml"
    every.write_text(EVERY_2_STEPS)

    def run(*overrides: str) -> int:
        return main(
            [
                "fit",
                f"--config={PRETRAIN / 'base.yaml'}",
                f"--config={PRETRAIN / 'heads' / 'flow.yaml'}",
                f"--config={every}",
                f"--data.init_args.root={tiny_corpus}",
                *TINY_FIT,
                "--data.init_args.clips_per_epoch=8",  # 2 steps per epoch
                "--trainer.max_epochs=10",
                *overrides,
            ]
        )

    return run


def _step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_last_is_the_final_step_and_a_second_run_is_refused(fit, tmp_path, capsys):
    folder = tmp_path / "runs" / "pretrain" / "flow" / "checkpoints"
    assert fit("--trainer.max_steps=5") == 0  # saves at 2 and 4; Lightning's last would be 4
    assert _step(folder / "last.ckpt") == 5
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == f"checkpoint: {folder / 'last.ckpt'} (step 5)"
    assert out[-1].startswith("next: aurep cv --config configs/eval/synth_linear.yaml")
    assert f"--model.init_args.pretrained_ckpt={folder / 'last.ckpt'}" in out[-1]

    before = sorted(p.name for p in folder.iterdir())
    assert fit("--trainer.max_steps=5") == 1  # a fresh run into the same folder
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"aurep fit: error: {folder}: holds checkpoints of an earlier run")
    assert "--ckpt_path last" in err
    assert sorted(p.name for p in folder.iterdir()) == before  # nothing written

    assert fit("--trainer.max_steps=7", "--ckpt_path=last") == 0  # resume still works
    assert _step(folder / "last.ckpt") == 7
    assert not list(folder.glob("last-v*.ckpt"))


@pytest.mark.slow
def test_resume_without_a_checkpoint_is_an_error(fit, tmp_path, capsys):
    assert fit("--trainer.max_steps=2", "--ckpt_path=last") == 1
    folder = tmp_path / "runs" / "pretrain" / "flow" / "checkpoints"
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"aurep fit: error: --ckpt_path last: no last checkpoint in {folder}: nothing to resume "
        "(leave out --ckpt_path to start a fresh run)"
    )
    assert not folder.exists()  # it did not train from scratch


@pytest.mark.slow
def test_missing_checkpoint_file_is_an_error(fit, tmp_path, capsys):
    assert fit("--trainer.max_steps=2", f"--ckpt_path={tmp_path / 'gone.ckpt'}") == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == f"aurep fit: error: --ckpt_path {tmp_path / 'gone.ckpt'}: no such checkpoint file"


def test_fit_summary_points_a_detector_to_infer_and_an_interrupted_run_to_resume():
    from types import SimpleNamespace

    from aurep.lightning_cli import fit_summary

    callback = SimpleNamespace(last_model_path="", best_model_path="run/best-epoch=003.ckpt")
    trainer = SimpleNamespace(checkpoint_callback=callback, interrupted=False, global_step=9)
    detector = SimpleNamespace(test_scores=None)
    assert fit_summary(trainer, detector).splitlines() == [
        "checkpoint: run/best-epoch=003.ckpt",  # not the final step: no step given
        "next: aurep infer VIDEO --ckpt run/best-epoch=003.ckpt --out VIDEO_aus.csv",
    ]
    callback.last_model_path = "run/last.ckpt"
    trainer.interrupted = True
    assert fit_summary(trainer, object()).splitlines() == [
        "checkpoint: run/last.ckpt (step 9)",
        "resume: the same command with --ckpt_path last",
    ]
    trainer.checkpoint_callback = None
    assert fit_summary(trainer, object()).startswith("no checkpoint was written")


@pytest.mark.slow
@pytest.mark.parametrize("limit", ["--trainer.max_steps=4", "--trainer.max_epochs=2"])
def test_resuming_a_finished_run_leaves_last_untouched(fit, tmp_path, limit):
    last = tmp_path / "runs" / "pretrain" / "flow" / "checkpoints" / "last.ckpt"
    assert fit(limit) == 0
    before = (last.read_bytes(), last.stat().st_mtime_ns)
    assert fit(limit, "--ckpt_path=last") == 0  # finished: nothing to train, nothing to save
    assert (last.read_bytes(), last.stat().st_mtime_ns) == before
