"""W&B sweep files: expansion as W&B does it, and every shipped sweep through the real CLI."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FIT
from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

from aurep.sweeps import command as sweep_command
from aurep.sweeps.spec import command, expand, load_sweep, sample, wandb_args

REPO = Path(__file__).resolve().parents[1]
SWEEPS = sorted((REPO / "configs" / "sweeps").glob("*.yaml"))
TINY = [*TINY_FIT, "--data.init_args.clips_per_epoch=4", "--trainer.max_epochs=1"]


def write_sweep(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    return path


def run_sweep(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sweep_command.add_arguments(parser)
    return sweep_command.run(parser.parse_args(list(argv)))


def test_shipped_sweeps():
    assert {p.stem for p in SWEEPS} >= {"heads", "loss_weights", "clip_margin"}
    sizes = {p.stem: len(expand(load_sweep(p))) for p in SWEEPS}
    assert sizes["heads"] == 16 and sizes["clip_margin"] == 12 and sizes["loss_weights"] == 20
    heads = expand(load_sweep(REPO / "configs" / "sweeps" / "heads.yaml"))
    assert set(heads[0].values()) == {1.0} and set(heads[-1].values()) == {0.0}


def test_args_match_the_wandb_agent():
    params = {"model.init_args.heads.flow.init_args.weight": 0.0, "data.init_args.clip_length": 4,
              "model.init_args.heads.temporal.init_args.weight": 0.123456789,
              "model.init_args.online_probe": True}  # fmt: skip
    agent = create_sweep_command_args({"args": {k: {"value": v} for k, v in params.items()}})
    assert wandb_args(params) == agent["args"]


def test_command_fills_the_macros(tmp_path):
    sweep = load_sweep(REPO / "configs" / "sweeps" / "clip_margin.yaml")
    argv = command(sweep, {"data.init_args.clip_length": 2}, ["--trainer.max_epochs=1"])
    assert argv[:4] == [sys.executable, "-m", "aurep", "fit"]
    assert argv[-2:] == ["--data.init_args.clip_length=2", "--trainer.max_epochs=1"]
    assert not any(part.startswith("${") for part in argv)


def test_random_sweep_is_seeded_and_capped(tmp_path):
    sweep = load_sweep(REPO / "configs" / "sweeps" / "loss_weights.yaml")
    first, again = expand(sweep, seed=3), expand(sweep, seed=3)
    assert first == again and first != expand(sweep, seed=4)
    values = np.array([list(run.values()) for run in first])
    assert values.shape == (20, 4) and values.min() >= 0.1 and values.max() <= 10.0
    assert len(expand(sweep, max_runs=5, seed=3)) == 5


def test_distributions():
    rng = np.random.default_rng(0)
    ints = {sample({"min": 1, "max": 3}, rng) for _ in range(200)}
    assert ints == {1, 2, 3}
    logs = np.array([sample({"distribution": "log_uniform_values", "min": 0.01, "max": 1.0}, rng)
                     for _ in range(2000)])  # fmt: skip
    assert logs.min() >= 0.01 and logs.max() <= 1.0
    assert abs(np.median(logs) - 0.1) < 0.02  # log-uniform: the median is the geometric mean
    draws = [sample({"values": ["a", "b"], "probabilities": [0.9, 0.1]}, rng) for _ in range(500)]
    assert 0.85 < draws.count("a") / 500 < 0.95


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("method: bayes\nmetric: {name: m}\nparameters: {a: {values: [1]}}", "bayes needs"),
        ("method: grid\nparameters: {a: {values: [1]}}", "metric.name"),
        ("method: grid\nmetric: {name: m}\nparameters: {a: {min: 0, max: 1}}", "grid sweep needs"),
        ("method: random\nmetric: {name: m}\nparameters: {a: {distribution: beta}}", "'beta'"),
        ("method: grid\nmetric: {name: m}\nparameters: {a: {value: 1}}\ncommand: [aurep]", "args"),
    ],
)
def test_bad_sweep_files_name_the_problem(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        load_sweep(write_sweep(tmp_path, text))


def test_random_sweep_needs_a_cap(tmp_path):
    path = write_sweep(
        tmp_path, "method: random\nmetric: {name: m}\nparameters: {a: {min: 0.0, max: 1.0}}"
    )
    with pytest.raises(ValueError, match="run_cap"):
        expand(load_sweep(path))


def test_summary_is_sorted_by_the_goal(tmp_path):
    path = write_sweep(
        tmp_path,
        "method: grid\nmetric: {name: acc, goal: maximize}\nparameters: {a: {values: [1]}}",
    )
    rows = [{"run": "r0", "acc": 0.2}, {"run": "r1", "acc": math.nan}, {"run": "r2", "acc": 0.7}]
    table = sweep_command.summary_table(load_sweep(path), rows)
    assert table["run"].tolist() == ["r2", "r0", "r1"]


@pytest.mark.slow
def test_every_expanded_command_parses(tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the sweep commands name configs relative to the repository
    for path in SWEEPS:
        out = tmp_path / path.stem
        assert (
            run_sweep(
                "--dry-run",
                "--out",
                str(out),
                str(path),
                "--",
                f"--data.init_args.root={tiny_corpus}",
            )
            == 0
        )
        lines = (out / "commands.txt").read_text().splitlines()
        assert len(lines) == len(expand(load_sweep(path)))
        assert all(
            f"--trainer.callbacks.init_args.dirpath={out.resolve()}/run" in line for line in lines
        )


@pytest.mark.slow
def test_bad_override_is_rejected_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    path = REPO / "configs" / "sweeps" / "clip_margin.yaml"
    with pytest.raises(ValueError, match=r"has no argument 'rooot' \(did you mean root\?\)"):
        run_sweep("--dry-run", "--out", str(tmp_path), str(path), "--", "--data.init_args.rooot=x")


@pytest.mark.slow
@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_sweep_runs_through_the_cli(path, tiny_corpus, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)  # the sweep commands name configs relative to the repository
    monkeypatch.setenv("WANDB_SILENT", "true")
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))
    logger = "csv" if path.stem == "loss_weights" else "wandb"
    out = tmp_path / "sweep"
    code = run_sweep("--max-runs", "1", "--logger", logger, "--out", str(out), str(path),
                     "--", f"--data.init_args.root={tiny_corpus}", *TINY)  # fmt: skip
    assert code == 0
    sweep = load_sweep(path)
    table = pd.read_csv(out / "summary.csv")
    assert table["status"].tolist() == ["ok"] and 0.0 <= table[sweep.metric][0] <= 1.0
    assert set(sweep.parameters) <= set(table.columns)
    assert sweep.metric in (out / "summary.md").read_text()
    run_dir = out / "run000"
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / "log.txt").exists()
    if logger == "wandb":
        assert len(list(run_dir.glob("wandb/offline-run-*"))) == 1
        assert (run_dir / "config.yaml").exists()
    else:
        assert (run_dir / "version_0" / "metrics.csv").exists()
        assert (run_dir / "version_0" / "config.yaml").exists()


@pytest.mark.parametrize("earlier", ["run000/checkpoints/last.ckpt", "summary.csv"])
def test_an_earlier_sweep_in_out_is_refused_up_front(tmp_path, capsys, earlier):
    from aurep.cli import main

    out = tmp_path / "sweep"
    (out / earlier).parent.mkdir(parents=True, exist_ok=True)
    (out / earlier).write_text("old")
    path = write_sweep(tmp_path, "method: grid\nmetric: {name: m}\nparameters: {a: {values: [1]}}")
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "--out", str(out), str(path)])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == (
        f"aurep sweep: error: --out {out} holds an earlier sweep: choose another --out or "
        "delete it\n"
    )
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == sorted(
        {earlier, *(str(p) for p in Path(earlier).parents if str(p) != ".")}
    )  # nothing written: no commands.txt, no run started
