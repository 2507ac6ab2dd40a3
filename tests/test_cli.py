"""The aurep command: overview help, Lightning help, subcommand dispatch and one-line errors."""

import subprocess
import sys

import pytest

from aurep.cli import COMMANDS, LIGHTNING_COMMANDS, main


def test_overview_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in [*LIGHTNING_COMMANDS, *COMMANDS]:
        assert f"  {name} " in out


def test_overview_lists_the_prepare_steps(capsys):
    assert main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "prepare videos|bp4d|disfa|gft SRC --out DIR" in out
    assert "flow DIR: add optical-flow targets" in out


def test_unknown_command_is_an_error(capsys):
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_fit_help_comes_from_lightning(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.max_epochs" in out and "--model" in out and "--data" in out


@pytest.mark.slow
def test_python_dash_m_and_console_script_agree():
    module = subprocess.run(
        [sys.executable, "-m", "aurep", "--help"], capture_output=True, text=True, check=True
    )
    assert "synth" in module.stdout and "fit" in module.stdout


def test_bad_config_value_is_one_line(capsys, tiny_corpus, tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.chdir(tmp_path)
    configs = Path(__file__).resolve().parents[1] / "configs" / "pretrain"
    code = main(
        [
            "fit",
            f"--config={configs / 'base.yaml'}",
            f"--config={configs / 'heads' / 'temporal.yaml'}",
            f"--data.init_args.root={tiny_corpus}",
            "--model.init_args.heads.temporal.init_args.temperature=-1",
        ]
    )
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aurep fit: error: TemporalContrastiveHead needs temperature > 0")


def test_prepare_help_lists_every_step(capsys):
    from aurep.prepare.command import PREPARE_STEPS

    assert list(PREPARE_STEPS) == ["videos", "bp4d", "disfa", "gft", "flow"]
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = capsys.readouterr().out
    assert all(f"    {step} " in out for step in PREPARE_STEPS)


@pytest.mark.parametrize(
    ("step", "source"),
    [("videos", "SRC"), ("bp4d", "SRC"), ("disfa", "SRC"), ("gft", "SRC"), ("flow", "DIR")],
)
def test_prepare_step_help_shows_its_input_and_defaults(step, source, capsys):
    with pytest.raises(SystemExit):
        main(["prepare", step, "--help"])
    out = capsys.readouterr().out
    assert f"\n  {source} " in out  # the positional input
    assert "(default: dis)" in out and "(default: True)" in out
    assert ("--out DIR" in out) == (step != "flow")


def test_prepare_steps_take_their_input_as_the_positional_argument(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "bp4d", "--root", str(tmp_path), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --root" in capsys.readouterr().err  # the old flag
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "bp4d", str(tmp_path), "--out", str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert f"aurep prepare: error: {tmp_path}: no BP4D frame folders" in capsys.readouterr().err
