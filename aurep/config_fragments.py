"""Heads that a later ``--config`` drops: LightningCLI replaces a dict, it does not merge one.

``aurep fit --config base.yaml --config A.yaml --config B.yaml`` keeps only B's
``model.init_args.heads`` when both A and B name heads; :func:`dropped_heads` finds such heads
so the CLI can say so before training a model without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml


def config_paths(args: Sequence[str]) -> list[Path]:
    """The files of every ``--config FILE`` / ``--config=FILE`` in ``args``, in order."""
    paths = []
    for position, arg in enumerate(args):
        if arg.startswith("--config="):
            paths.append(Path(arg.partition("=")[2]))
        elif arg == "--config" and position + 1 < len(args):
            paths.append(Path(args[position + 1]))
    return paths


def _heads(path: Path) -> list[str] | None:
    """Head names of ``model.init_args.heads`` in the YAML ``path``; None when it sets no heads
    (or cannot be read: the CLI reports that itself)."""
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    heads = config
    for key in ("model", "init_args", "heads"):
        heads = heads.get(key) if isinstance(heads, dict) else None
    return list(heads) if isinstance(heads, dict) else None


def dropped_heads(paths: Sequence[Path]) -> list[str]:
    """One message per config file that replaces the heads of an earlier one and drops some."""
    messages = []
    earlier: tuple[Path, list[str]] | None = None
    for path in paths:
        heads = _heads(path)
        if heads is None:
            continue
        if earlier is not None:
            lost = [name for name in earlier[1] if name not in heads]
            if lost:
                messages.append(
                    f"{path} replaces the heads of {earlier[0]}, dropping {', '.join(lost)} "
                    "(a later --config replaces model.init_args.heads as a whole: list every "
                    "head in the last file that names heads)"
                )
        earlier = (path, heads)
    return messages
