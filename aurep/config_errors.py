"""One-line messages for jsonargparse/LightningCLI config errors, with did-you-mean suggestions.

jsonargparse reports a typo'd key inside a ``class_path`` object as a nested "Union subtypes"
tree, and LightningCLI prints it after the whole usage text; :func:`config_error_line` reduces
either to one line that names the key and the closest valid names (:mod:`difflib`).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re
from collections.abc import Iterable

_UNKNOWN_OPTION = re.compile(r"does not accept option '([\w.-]+)'")
_UNRECOGNISED = re.compile(r"unrecognized arguments:(.*)")
_NOT_ACCEPTED = re.compile(r"class_path '([\w.]+)':\s*Option '([\w-]+)' is not accepted")
_PARSER_KEY = re.compile(r'Parser key "([\w.]+)"')
_NESTED_KEY = re.compile(r"NestedArg\(key='([\w.]+)'")
_NOISE = (
    "Does not validate against any of the Union subtypes",
    "Subtypes:",
    "Errors:",
    "Given value type:",
    "Expected a <class 'NoneType'>",
    "tip: For details of accepted options",
)

_NO_CONFIG_HINT = (
    "give a config, e.g. --config configs/pretrain/base.yaml --config configs/pretrain/clp.yaml "
    "(or configs/eval/*.yaml for AU detection)"
)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """`` (did you mean a, b?)`` for the closest of ``candidates`` to ``name``, or ``""``."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _key_hint(key: str, known: list[str]) -> str:
    """A did-you-mean for a dotted ``key``: the closest known key, else ``key`` with its first
    part (``modle`` in ``modle.init_args.lr``) replaced by the closest top-level name."""
    hint = did_you_mean(key, known)
    head, _, rest = key.partition(".")
    if hint or not rest:
        return hint
    heads = difflib.get_close_matches(head, sorted({k.split(".")[0] for k in known}), n=1)
    return f" (did you mean {heads[0]}.{rest}?)" if heads and heads[0] != head else ""


def class_arguments(class_path: str) -> list[str]:
    """The constructor argument names of ``class_path`` and, where it takes ``**kwargs``, of its
    base classes; empty if it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for klass in inspect.getmro(cls):
        if klass is object or "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(klass.__init__).parameters.values()
        names += [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return [n for n in names if n != "self"]


def compact(message: str) -> str:
    """``message`` without jsonargparse's Union noise (and long given values), its remaining
    lines joined by ``: ``."""
    lines = [line.strip().lstrip("- ").strip() for line in message.splitlines()]
    kept = [line for line in lines if line and not line.startswith(_NOISE)]
    kept = [line for line in kept if not line.startswith("Given value:") or len(line) < 80]
    return ": ".join(kept).replace(":: ", ": ")


def config_error_line(message: str, known_keys: Iterable[str] = ()) -> str:
    """One line for a jsonargparse error ``message``; ``known_keys``: the parser's own keys
    (``trainer.max_epochs`` ...) for suggestions on unknown top-level keys."""
    nested = _NOT_ACCEPTED.findall(message)
    if nested:
        class_path, option = nested[-1]  # the innermost object
        parents = _PARSER_KEY.findall(message)
        suffixes = _NESTED_KEY.findall(message)  # the outermost is printed last
        if parents and suffixes:
            key = f"{parents[0]}.init_args.{suffixes[-1]}"
        elif len(parents) == 1:
            key = f"{parents[0]}.init_args.{option}"
        else:
            key = f"{'.'.join(parents)} ... {option}" if parents else option
        hint = did_you_mean(option, class_arguments(class_path))
        name = class_path.rpartition(".")[2]
        return f"unknown key {key}: {name} has no argument {option!r}{hint}"
    keys = _UNKNOWN_OPTION.findall(message)
    unrecognised = _UNRECOGNISED.search(message)
    if unrecognised:
        keys += re.findall(r"--([\w.-]+)", unrecognised.group(1))
    if keys:
        known = list(known_keys)
        parts = [f"{key}{_key_hint(key, known)}" for key in keys]
        return f"unknown key {', '.join(parts)}"
    if "the following arguments are required" in message:
        return f"{compact(message)}: {_NO_CONFIG_HINT}"
    return compact(message)
