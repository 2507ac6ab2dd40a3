"""Many independent tasks in worker processes, surviving a worker that dies.

``multiprocessing.Pool.imap_unordered`` waits forever for a task whose worker was killed (out of
memory, a signal, ``os._exit``). :func:`run_in_workers` uses
:class:`concurrent.futures.ProcessPoolExecutor`, which notices the death
(:class:`~concurrent.futures.process.BrokenProcessPool`), and keeps at most ``workers`` tasks in
flight, so the suspects of a death are few: they are retried one at a time, and only a task that
kills its worker when running alone is reported, as :class:`WorkerDied`.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

WORKER_DIED = (
    "its worker process died while working on it (killed by a signal, out of memory, or it "
    "exited); nothing of it was kept"
)


@dataclass(frozen=True)
class WorkerDied:
    """The result of a task whose worker process died with the task running alone."""

    message: str = WORKER_DIED


def run_in_workers(
    function: Callable[[Any], Any],
    items: Iterable[Any],
    workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
    preload: Sequence[str] = (),
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(item, function(item))`` as tasks finish, in ``workers`` forkserver processes
    (``preload``: modules the fork server imports once). A task whose worker dies yields
    ``(item, WorkerDied())``; exceptions raised by ``function`` propagate."""
    context = multiprocessing.get_context("forkserver")  # fork is unsafe with threads
    if preload:
        context.set_forkserver_preload(list(preload))
    queue = deque(items)
    pool = dict(mp_context=context, initializer=initializer, initargs=initargs)
    while queue:
        suspects = yield from _one_pool(function, queue, workers, pool)
        for item in suspects:  # alone, a death is the task's own
            yield from _one_pool(function, deque([item]), 1, pool, blame=True)


def _one_pool(
    function: Callable[[Any], Any], queue: deque, workers: int, pool: dict, blame: bool = False
) -> Iterator[tuple[Any, Any]]:
    """Run tasks from ``queue`` (consumed) in one pool, at most ``workers`` in flight. When a
    worker dies (noticed by a task or by ``submit``), stop, leave unstarted tasks in ``queue``
    and return the tasks in flight (``blame``: yield them as WorkerDied)."""
    lost: list = []
    with ProcessPoolExecutor(workers, **pool) as executor:
        running: dict = {}
        broken = False
        while (queue or running) and not lost:
            while queue and len(running) < workers:
                item = queue.popleft()
                try:
                    running[executor.submit(function, item)] = item
                except BrokenProcessPool:  # a worker died while results were being yielded
                    queue.appendleft(item)
                    broken = True
                    break
            if broken:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                item = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(item)
                    continue
                yield item, result
        lost += running.values()
    if blame:
        for item in lost:
            yield item, WorkerDied()
        return []
    return lost
