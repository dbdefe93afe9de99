"""Continual-learning metrics from the task-by-task accuracy matrix.

``acc[t][j]`` is the accuracy (%) on the test classes of task ``j`` after training on
task ``t`` (``j <= t``; predictions are the argmax over all classes seen so far).
``pooled[t]`` is the accuracy over all test samples of tasks ``0..t`` together, which is
what MoE-Adapters and the paper report (paper.md section 2.1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def last_accuracy(pooled: Sequence[float]) -> float:
    """**Last**: pooled accuracy after the final task."""
    return float(pooled[-1])


def average_accuracy(pooled: Sequence[float]) -> float:
    """**Avg**: mean over tasks of the pooled accuracy after each task."""
    return float(np.mean(pooled))


def forgetting(acc: Sequence[Sequence[float]]) -> float:
    """Average forgetting (Chaudhry et al. 2018) after the final task T.

    ``f_j = max_{l < T} acc[l][j] - acc[T][j]`` averaged over tasks ``j < T``;
    0 for a single task.
    """
    T = len(acc) - 1
    if T == 0:
        return 0.0
    return float(np.mean([max(acc[l][j] for l in range(j, T)) - acc[T][j] for j in range(T)]))


def backward_transfer(acc: Sequence[Sequence[float]]) -> float:
    """Backward transfer (Lopez-Paz and Ranzato 2017): mean of ``acc[T][j] - acc[j][j]``, j < T."""
    T = len(acc) - 1
    if T == 0:
        return 0.0
    return float(np.mean([acc[T][j] - acc[j][j] for j in range(T)]))


def summarise(acc: Sequence[Sequence[float]], pooled: Sequence[float]) -> dict[str, float]:
    """All four metrics at once: last, avg, forgetting, bwt (percentages / points)."""
    return {"last": last_accuracy(pooled), "avg": average_accuracy(pooled),
            "forgetting": forgetting(acc), "bwt": backward_transfer(acc)}

