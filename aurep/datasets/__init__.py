"""Adapters from raw datasets (unlabelled videos, BP4D, DISFA, GFT) to the prepared format."""

from __future__ import annotations

import argparse
import importlib

PREPARE_STEPS = {
    "videos": "aurep.preprocess.prepare_videos",
    "bp4d": "aurep.datasets.bp4d",
    "disfa": "aurep.datasets.disfa",
    "gft": "aurep.datasets.gft",
}


def add_prepare_steps(steps: argparse._SubParsersAction) -> None:
    """Register ``prepare videos|bp4d|disfa|gft``; each sets ``args.run_step`` to its run()."""
    for name, module_name in PREPARE_STEPS.items():
        module = importlib.import_module(module_name)
        parser = steps.add_parser(name, help=module.HELP, description=module.__doc__)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        module.add_arguments(parser)
        parser.set_defaults(run_step=module.run)
