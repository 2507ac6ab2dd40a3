"""``aurep prepare STEP``: one argparse subcommand per preparation step, all listed in
:data:`PREPARE_STEPS`.

Every step takes what it reads as its positional argument. ``videos``, ``bp4d``, ``disfa`` and
``gft`` read a raw corpus ``SRC`` and write a new prepared dataset to ``--out DIR``; ``flow``
completes the prepared dataset ``DIR`` in place. Each step module provides ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "build a prepared dataset from raw videos, BP4D, DISFA or GFT, or add flow targets to one"
PREPARE_STEPS = {
    "videos": "aurep.prepare.videos",
    "bp4d": "aurep.prepare.converters.bp4d",
    "disfa": "aurep.prepare.converters.disfa",
    "gft": "aurep.prepare.converters.gft",
    "flow": "aurep.prepare.flow",
}
STEPS_DESCRIPTION = (
    "videos|bp4d|disfa|gft SRC --out DIR: read the raw corpus SRC, write a prepared dataset to "
    "DIR; flow DIR: add optical-flow targets to the prepared dataset DIR. "
    "`aurep prepare STEP --help` shows a step's options and defaults."
)


class StepHelpFormatter(
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """A step's docstring as written, and every option's default (unless None: required or
    derived from another option)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    steps = parser.add_subparsers(
        dest="step", required=True, metavar="STEP", title="steps", description=STEPS_DESCRIPTION
    )
    for name, module_name in PREPARE_STEPS.items():
        module = importlib.import_module(module_name)
        step = steps.add_parser(
            name, help=module.HELP, description=module.__doc__, formatter_class=StepHelpFormatter
        )
        module.add_arguments(step)
        step.set_defaults(run_step=module.run)


def run(args: argparse.Namespace) -> int:
    return args.run_step(args)
