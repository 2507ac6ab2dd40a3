"""W&B sweep files (``configs/sweeps/*.yaml``): loading, grid expansion, random sampling, commands.

The files are in W&B's own sweep format, so ``wandb sweep FILE`` + ``wandb agent`` run them on
the W&B server; this module reproduces the ``grid`` and ``random`` methods locally. A run's
parameters become LightningCLI overrides exactly as the agent's ``${args}`` macro writes them:
``--{name}={value}`` with Python's ``str(value)`` (so a head is switched off with the string
value ``"null"``, never YAML ``null``, which would become ``None``).
"""

from __future__ import annotations

import itertools
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

METHODS = ("grid", "random")
GOALS = ("minimize", "maximize")


@dataclass(frozen=True)
class Sweep:
    """One sweep file.

    name: the file's ``name`` (default: its stem). method: ``grid`` or ``random``.
    metric / goal: the sweep's ``metric.name`` and ``metric.goal``.
    parameters: name -> W&B parameter spec (``value``, ``values``, or a ``distribution``).
    command: the command template with W&B macros (``${env}``, ``${program}``, ``${args}`` ...).
    run_cap: the file's ``run_cap`` (None = unlimited).
    """

    path: Path
    name: str
    method: str
    metric: str
    goal: str
    parameters: dict[str, dict[str, Any]]
    command: list[str]
    program: str | None
    run_cap: int | None


def load_sweep(path: str | Path) -> Sweep:
    """Read and check a sweep file; ValueError naming the file and the problem."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: a sweep file is a mapping with method, metric and parameters")
    method = spec.get("method")
    if method not in METHODS:
        hint = " (bayes needs the W&B server: `wandb sweep` + `wandb agent`)"
        raise ValueError(f"{path}: method must be one of {METHODS}, got {method!r}" + hint)
    metric = spec.get("metric") or {}
    if not metric.get("name") or metric.get("goal", "minimize") not in GOALS:
        raise ValueError(f"{path}: needs metric.name and metric.goal in {GOALS}")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise ValueError(f"{path}: needs a non-empty parameters mapping")
    for name, parameter in parameters.items():
        _check_parameter(path, name, parameter, method)
    command = [str(part) for part in spec.get("command") or []]
    if command and "${args}" not in command:
        raise ValueError(f"{path}: the command must contain ${{args}} (where overrides go)")
    run_cap = spec.get("run_cap")
    return Sweep(
        path=path,
        name=str(spec.get("name") or path.stem),
        method=method,
        metric=str(metric["name"]),
        goal=metric.get("goal", "minimize"),
        parameters=parameters,
        command=command or ["${env}", "${interpreter}", "${program}", "${args}"],
        program=spec.get("program"),
        run_cap=None if run_cap is None else int(run_cap),
    )


_DISTRIBUTIONS = {
    "constant": ("value",),
    "categorical": ("values",),
    "int_uniform": ("min", "max"),
    "uniform": ("min", "max"),
    "q_uniform": ("min", "max"),
    "log_uniform_values": ("min", "max"),
    "q_log_uniform_values": ("min", "max"),
    "normal": (),
    "log_normal": (),
}


def _distribution(parameter: dict[str, Any]) -> str:
    """The parameter's distribution, inferred as W&B does when it is not given."""
    if "distribution" in parameter:
        return parameter["distribution"]
    if "value" in parameter:
        return "constant"
    if "values" in parameter:
        return "categorical"
    if {"min", "max"} <= parameter.keys():
        ints = all(isinstance(parameter[k], int) for k in ("min", "max"))
        return "int_uniform" if ints else "uniform"
    return "missing"


def _check_parameter(path: Path, name: str, parameter: Any, method: str) -> None:
    where = f"{path}: parameter {name!r}"
    if not isinstance(parameter, dict):
        raise ValueError(f"{where}: must be a mapping (value, values or a distribution)")
    if "parameters" in parameter:
        raise ValueError(f"{where}: nested parameters are not supported; use dotted names")
    distribution = _distribution(parameter)
    if distribution not in _DISTRIBUTIONS:
        raise ValueError(
            f"{where}: distribution {distribution!r} is not one of {list(_DISTRIBUTIONS)}"
        )
    missing = [key for key in _DISTRIBUTIONS[distribution] if key not in parameter]
    if missing:
        raise ValueError(f"{where}: distribution {distribution} needs {missing}")
    if distribution == "categorical" and not parameter["values"]:
        raise ValueError(f"{where}: values is empty")
    if method == "grid" and distribution not in ("constant", "categorical"):
        raise ValueError(f"{where}: a grid sweep needs value or values, got {distribution}")


def _grid_values(parameter: dict[str, Any]) -> list[Any]:
    return [parameter["value"]] if "value" in parameter else list(parameter["values"])


def grid(sweep: Sweep) -> list[dict[str, Any]]:
    """Every combination of the parameters' values (the last parameter varies fastest)."""
    names = list(sweep.parameters)
    values = [_grid_values(sweep.parameters[name]) for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def sample(parameter: dict[str, Any], rng: np.random.Generator) -> Any:
    """One draw from a W&B parameter spec (see ``_DISTRIBUTIONS`` for the supported ones)."""
    kind = _distribution(parameter)
    low, high = parameter.get("min"), parameter.get("max")
    mu, sigma, q = parameter.get("mu", 0.0), parameter.get("sigma", 1.0), parameter.get("q", 1.0)
    if kind == "constant":
        return parameter["value"]
    if kind == "categorical":
        values = parameter["values"]
        return values[rng.choice(len(values), p=parameter.get("probabilities"))]
    if kind == "int_uniform":
        return int(rng.integers(low, high, endpoint=True))
    if kind == "uniform":
        return float(rng.uniform(low, high))
    if kind == "q_uniform":
        return float(np.round(rng.uniform(low, high) / q) * q)
    if kind in ("log_uniform_values", "q_log_uniform_values"):
        value = float(math.exp(rng.uniform(math.log(low), math.log(high))))
        return float(np.round(value / q) * q) if kind.startswith("q_") else value
    if kind == "normal":
        return float(rng.normal(mu, sigma))
    return float(math.exp(rng.normal(mu, sigma)))  # log_normal


def expand(sweep: Sweep, max_runs: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The runs' parameter sets: the whole grid (capped by run_cap / ``max_runs``), or
    ``min(run_cap, max_runs)`` random draws seeded by ``seed``."""
    caps = [cap for cap in (sweep.run_cap, max_runs) if cap is not None]
    cap = min(caps) if caps else None
    if cap is not None and cap < 1:
        raise ValueError(f"{sweep.path}: the run cap must be >= 1, got {cap}")
    if sweep.method == "grid":
        return grid(sweep)[:cap]
    if cap is None:
        raise ValueError(f"{sweep.path}: a random sweep needs run_cap in the file or --max-runs")
    rng = np.random.default_rng(seed)
    return [{n: sample(p, rng) for n, p in sweep.parameters.items()} for _ in range(cap)]


def wandb_args(params: dict[str, Any]) -> list[str]:
    """The ``${args}`` macro as the W&B agent expands it: ``--name=value`` per parameter."""
    return [f"--{name}={value}" for name, value in params.items()]


def command(sweep: Sweep, params: dict[str, Any], extra: list[str] = ()) -> list[str]:
    """The run's argv: the sweep's command with its macros filled in for local use.

    ``${env}`` is dropped, ``${interpreter}`` is this Python, ``${program}`` the file's program,
    ``${args}`` the overrides followed by ``extra``; the program ``aurep`` runs as
    ``python -m aurep`` so that the run uses this environment.
    """
    argv: list[str] = []
    for part in sweep.command:
        if part == "${env}":
            continue
        if part == "${interpreter}":
            argv.append(sys.executable)
        elif part == "${program}":
            if not sweep.program:
                raise ValueError(f"{sweep.path}: the command uses ${{program}} but has no program")
            argv.append(sweep.program)
        elif part == "${args}":
            argv += [*wandb_args(params), *extra]
        elif part.startswith("${"):
            raise ValueError(f"{sweep.path}: macro {part} is not supported locally")
        else:
            argv.append(part)
    if argv and argv[0] == "aurep":
        argv[:1] = [sys.executable, "-m", "aurep"]
    elif argv and shutil.which(argv[0]) is None and not Path(argv[0]).exists():
        raise ValueError(f"{sweep.path}: program {argv[0]!r} is not on PATH")
    return argv
