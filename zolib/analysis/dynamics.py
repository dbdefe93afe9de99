"""What a run's ZO units did: how far they moved, which conservative candidates won, how much the
training loss jumps from step to step, and a plain reading of a step-size sweep (notebook 01).

All of it is read from stored results (:func:`zolib.cl.trainer.run_experiment` records
``movement``, ``picks``, ``losses`` and ``zo_effect``), per seed, then summarised over seeds.
"""
from __future__ import annotations

import math
from statistics import median
from typing import Any, Mapping

import numpy as np

from ..cl.diagnostics import ZO_ACTED, acted

OSCILLATES = 1.5  # loss jumps this many times the frozen model's own batch-to-batch jumps: "oscillates"
Runs = Mapping[int, Mapping[str, Any]]  # {seed: result} of one variant on one benchmark (the one definition)


def loss_jumps(result: Mapping[str, Any]) -> float:
    """Standard deviation of the step-to-step change of the training loss, within tasks."""
    steps = [np.diff(task) for task in result["losses"] if len(task) > 1]
    return float(np.concatenate(steps).std()) if steps else math.nan


def oscillation(runs: Runs, frozen: Runs) -> float:
    """Median over seeds of :func:`loss_jumps` relative to the frozen model's on the same batches
    (the frozen model's loss varies from batch to batch too; a ratio near 1 adds nothing to it)."""
    ratios = [loss_jumps(r) / loss_jumps(frozen[s]) for s, r in runs.items() if s in frozen and r["losses"]]
    return median(ratios) if ratios else math.nan


def pick_shares(runs: Runs) -> dict[str, float]:
    """Share of steps at which the conservative rule kept theta (``0``), the descent step (``-1``) or
    the opposite step (``1``), over all tasks and seeds; empty for other rules."""
    total: dict[str, int] = {}
    for r in runs.values():
        for task in r.get("picks") or []:
            for k, n in task.items():
                total[k] = total.get(k, 0) + n
    n = sum(total.values())
    return {k: total[k] / n for k in sorted(total, key=int)} if n else {}


def moved(runs: Runs, mode: str = "zo", by_branch: bool = True) -> dict[str, float] | float:
    """``|theta_T - theta_0| / |theta_0|`` after the final task for the units of ``mode`` (``zo``, ``fo`` or
    ``frozen``), averaged over seeds: per branch (``{"vision": ..., "text": ...}``), or with ``by_branch=False``
    over seeds and branches together (NaN where the run has no such unit)."""
    values = [(branch, by_mode[mode]) for r in runs.values() if r.get("movement")
              for branch, by_mode in r["movement"][-1].items() if mode in by_mode]
    if not by_branch:
        return float(np.mean([v for _, v in values])) if values else math.nan
    out: dict[str, list[float]] = {}
    for branch, v in values:
        out.setdefault(branch, []).append(v)
    return {b: float(np.mean(v)) for b, v in out.items()}


def paired_gain(runs: Runs, reference: Runs) -> float:
    """The gain in Last over ``reference`` (the frozen model, or a control): the mean over the seeds both have
    of the per-seed difference. The one gain statistic of zolib (tables, claim map, collapse test); a
    diverged seed (no Last) makes it NaN, as a mean over the survivors would flatter the run; NaN without a
    seed in common."""
    def last(r: Mapping[str, Any]) -> float:
        return math.nan if r.get("last") is None else float(r["last"])
    diffs = [last(r) - last(reference[s]) for s, r in runs.items() if s in reference]
    return float(np.mean(diffs)) if diffs else math.nan


def flips(runs: Runs) -> float:
    """Median over seeds of the share of test predictions the ZO units changed (NaN without ZO units)."""
    rates = [r["zo_effect"]["flip_rate"] for r in runs.values() if r.get("zo_effect")]
    return median(rates) if rates else math.nan


INERT, HOLDS, COLLAPSES = "inert", "acts and holds", "collapses"
STATES = (INERT, HOLDS, COLLAPSES)
COLLAPSE_MARGIN = 1.0  # points of Last below the frozen model's (paired_gain) that count as a collapse
UNDONE = 0.5  # share of its control's gain over the frozen model a hybrid's ZO units may undo before it collapsed


def state(runs: Runs, frozen: Runs, control: Runs | None = None) -> tuple[str, str]:
    """Where a ZO configuration sits at one point of the claim map, and why:

    - *collapses*: a seed diverged (NaN loss); or its Last is below the frozen model's by more than
      :data:`COLLAPSE_MARGIN` (:func:`paired_gain`: the model ended worse than not
      training at all); or, with ``control`` (the same mask, ZO units held fixed), its ZO units undid more
      than :data:`UNDONE` of what the FO units alone gained over the frozen model;
    - *inert*: otherwise, if putting its ZO units back changes fewer than :data:`ZO_ACTED` of the test
      predictions (median over seeds): whatever the accuracies say, they say nothing about ZO;
    - *acts and holds*: otherwise.
    """
    diverged = sum(1 for r in runs.values() if r.get("diverged"))
    if diverged:
        return COLLAPSES, f"diverged (NaN loss) in {diverged} of {len(runs)} seeds"
    below = paired_gain(runs, frozen)
    if below < -COLLAPSE_MARGIN:
        return COLLAPSES, f"Last {below:+.2f} points against the frozen model (mean over seeds, paired)"
    if control is not None:
        gain = paired_gain({s: control[s] for s in runs if s in control}, frozen)
        lost = paired_gain({s: control[s] for s in runs if s in control}, runs)
        if gain > 0 and lost > UNDONE * gain:
            return COLLAPSES, f"its ZO units undid {lost:.2f} of the {gain:.2f} points its FO units gained alone"
    rate = flips(runs)
    if not acted(rate):
        return INERT, f"reverting its ZO units changes {rate:.2%} of test predictions (< {ZO_ACTED:.0%})"
    return HOLDS, f"its ZO units change {rate:.1%} of test predictions; Last {below:+.2f} against frozen"
