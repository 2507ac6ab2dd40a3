"""The ``aurep`` command: LightningCLI's fit/validate/test/predict plus aurep's own subcommands.

Lightning subcommands take YAML configs (``aurep fit --config configs/pretrain/base.yaml
--config configs/pretrain/all.yaml``) with
``class_path``/``init_args`` for the model and the data; overrides follow the config
(``--model.init_args.optimizer.init_args.lr=1e-3``). aurep's own subcommands (``synth`` ...) are plain argparse
commands registered in :data:`COMMANDS`; each module provides ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from collections.abc import Sequence

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

LIGHTNING_COMMANDS = {
    "fit": "train a model (pretraining or AU detection) from a YAML config",
    "validate": "run one validation epoch",
    "test": "run one test epoch",
    "predict": "run prediction",
}
COMMANDS = {
    "synth": "aurep.synth.command",
    "contact-sheet": "aurep.synth.sheet_command",
    "prepare": "aurep.prepare.command",
    "cv": "aurep.evaluation.command",
    "infer": "aurep.infer.command",
    "plot": "aurep.plot.command",
    "sweep": "aurep.sweeps.command",
}


def _overview() -> str:
    lines = [
        "usage: aurep COMMAND [options]   (aurep COMMAND --help for the options of one command)",
        "",
        "Lightning commands (YAML configs, see configs/):",
    ]
    lines += [f"  {name:<14} {text}" for name, text in LIGHTNING_COMMANDS.items()]
    lines += ["", "aurep commands:"]
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        lines.append(f"  {name:<14} {module.HELP}")
        steps = getattr(module, "STEPS_DESCRIPTION", None)  # prepare: its steps and inputs
        if steps:
            lines += textwrap.wrap(
                f"{name} {steps}", 100, initial_indent=" " * 17, subsequent_indent=" " * 17
            )
    return "\n".join(lines)


def run_command(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` for aurep subcommand ``name`` and run it; errors become one line, exit 2."""
    module = importlib.import_module(COMMANDS[name])
    parser = argparse.ArgumentParser(prog=f"aurep {name}", description=module.HELP)
    module.add_arguments(parser)
    args = parser.parse_args(list(argv))
    try:
        return int(module.run(args) or 0)
    except (ValueError, OSError) as error:  # unwrapped from jsonargparse's wrappers (cv)
        parser.exit(2, f"aurep {name}: error: {_user_error(error) or error}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"aurep {name}: interrupted\n")


def run_lightning(argv: Sequence[str]) -> int:
    """Run LightningCLI (fit/validate/test/predict) on ``argv``; aurep's own errors (bad data,
    bad config values, non-finite losses) are printed as one line with exit status 1."""
    from aurep.lightning_cli import AurepCLI

    from_command_line = list(argv) == sys.argv[1:]  # LightningCLI warns when given both
    try:
        AurepCLI(args=None if from_command_line else list(argv))
    except Exception as error:
        cause = _user_error(error)
        if cause is None:
            raise
        print(f"aurep {argv[0]}: error: {cause}", file=sys.stderr)
        return 1
    return 0


def _raised_by_aurep(error: BaseException) -> bool:
    """Whether ``error`` was raised in aurep's own code (its messages are meant for users)."""
    frame = error.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    return frame is not None and frame.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def _user_error(error: BaseException) -> BaseException | None:
    """The first user-facing error in ``error``'s cause/context chain (jsonargparse wraps errors
    raised while instantiating classes): a ValueError (DatasetError included) or
    FloatingPointError raised by aurep itself. None for anything else (a real traceback)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, (ValueError, FloatingPointError)) and _raised_by_aurep(error):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_overview())
        return 0
    if argv[0] in COMMANDS:
        return run_command(argv[0], argv[1:])
    if argv[0] in LIGHTNING_COMMANDS or argv[0].startswith("-"):
        return run_lightning(argv)
    print(f"aurep: unknown command {argv[0]!r}\n\n{_overview()}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
