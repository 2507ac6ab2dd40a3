"""Fault injection for the worker-process tests: a job that kills its own worker process.

``KillWorkerOn("package.module:function", "VIDEO")`` is a picklable stand-in for a module-level
job function: monkeypatched over it in the parent, it is sent to the worker processes, where it
exits the process abruptly (as an out-of-memory kill would) on the task named ``VIDEO`` and runs
the real function, imported afresh in the worker, on every other task; ``delay`` seconds pass
before the exit (so the parent can be between tasks when it happens).
"""

from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass
from pathlib import Path


def task_name(item) -> str:
    """The video a task works on: a job's ``video``, else the name of a video folder."""
    return getattr(item, "video", None) or Path(item).name


@dataclass(frozen=True)
class KillWorkerOn:
    target: str  # "module:function" of the real job
    video: str
    delay: float = 0.0

    def __call__(self, item, *args, **kwargs):
        if task_name(item) == self.video:
            time.sleep(self.delay)
            os._exit(137)
        module, name = self.target.split(":")
        return getattr(importlib.import_module(module), name)(item, *args, **kwargs)
