"""Running independent simulation jobs in worker processes.

Workers are spawned, not forked: MuJoCo, its OpenGL contexts and torch's thread pools are not
fork-safe. Each worker sets MUJOCO_GL=egl (headless) unless the caller chose another backend.
"""
from __future__ import annotations

from typing import Callable, Sequence


def _setup_worker() -> None:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")


def spawn_map(function: Callable, items: Sequence, workers: int = 1, chunk: int = 4,
              progress: Callable[[int, int], None] | None = None) -> list:
    """[function(item) for item in items], in `workers` spawned processes when workers > 1 (function
    must be importable: a module-level function), results in the items' order. progress(done, total)
    after each finished item (in this process)."""
    items = list(items)
    results: list = []
    if workers <= 1 or len(items) <= 1:
        for item in items:
            results.append(function(item))
            if progress:
                progress(len(results), len(items))
        return results
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers, initializer=_setup_worker) as pool:
        for result in pool.imap(function, items, chunksize=max(1, chunk)):
            results.append(result)
            if progress:
                progress(len(results), len(items))
    return results
