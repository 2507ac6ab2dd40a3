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
    config = Path(__file__).resolve().parents[1] / "configs" / "pretrain" / "temporal.yaml"
    code = main(
        [
            "fit",
            f"--config={config}",
            f"--data.init_args.root={tiny_corpus}",
            "--model.init_args.temporal.init_args.temperature=-1",
        ]
    )
    assert code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aurep fit: error: TemporalContrastiveHead needs temperature > 0")
