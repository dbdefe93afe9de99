"""One statistic for "how many forwards does a step cost": the median of paired time ratios.

:func:`paired_ratio` times ``fn`` and ``reference`` back to back, ``repeats`` times, after
``warmup`` untimed calls of each, and returns the median over repeats of ``time(fn) /
time(reference)``. Pairing makes both timings of a ratio see the same machine load (a busy
2-core laptop, a shared cluster node), and the median drops the repeats a neighbour disturbed;
the warm-up keeps one-time costs (allocator growth, lazy initialisation, the first step's
optimizer state) out. The same statistic under the same name everywhere: notebook 07's
``step_over_forward`` (:func:`zolib.analysis.footprint.run_footprint`), benchmarks/zo_step.py and
benchmarks/partial_probes.py.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable


def paired_ratio(fn: Callable[[], Any], reference: Callable[[], Any], repeats: int = 5, warmup: int = 1,
                 clock: Callable[[], float] | None = None) -> float:
    """Median over ``repeats`` of ``time(fn) / time(reference)``, timed back to back (module docstring).
    ``clock`` defaults to wall time (``time.perf_counter``); ``time.thread_time`` counts the calling thread's
    CPU time only, which other processes on a busy machine do not inflate (single-threaded torch)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    clock = clock or time.perf_counter
    for _ in range(warmup):
        fn()
        reference()
    ratios = []
    for _ in range(repeats):
        start = clock()
        fn()
        mid = clock()
        reference()
        ratios.append((mid - start) / (clock() - mid))
    return statistics.median(ratios)


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after ``warmup`` untimed ones (for absolute times
    printed beside the ratios; the ratios themselves come from :func:`paired_ratio`)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
