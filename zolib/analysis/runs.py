"""Reading stored runs: per-seed metrics, combinations over variants, and one summary row per variant.

Runs come as ``{benchmark: {label: {seed: result}}}`` (:class:`zolib.nb.Session` returns them), a
result being what :func:`zolib.cl.trainer.run_experiment` stored. Everything here reads them; nothing
trains.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

from .dynamics import Runs, flips, moved, paired_gain
from .stats import mean_ci

AllRuns = Mapping[str, Mapping[str, Runs]]  # {benchmark: {label: {seed: result}}}
METRICS = ("last", "avg", "forgetting")


def metric(runs: Runs, name: str) -> dict[int, float]:
    """``{seed: value}`` of a result field (``last``, ``avg``, ...); a diverged run gives NaN."""
    return {s: (math.nan if r.get(name) is None else float(r[name])) for s, r in runs.items()}


def combine(runs: Mapping[str, Runs], labels: Sequence[str], field_: str,
            how: Callable[[list[float]], float]) -> dict[int, float]:
    """Per seed, ``how`` over the ``field_`` of several variants (e.g. the mean Last of the Hop runs)."""
    seeds = sorted(set.intersection(*(set(runs[l]) for l in labels)))
    return {s: how([metric(runs[l], field_)[s] for l in labels]) for s in seeds}


def mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def is_fewshot(result: Mapping[str, Any]) -> bool:
    """Whether a stored result is a few-shot prompt-tuning run (:func:`zolib.cl.fewshot.run_fewshot`)."""
    return "shots" in result


def _budget(cfg: Mapping[str, Any]) -> tuple[int, int]:
    return int(cfg.get("epochs", 1)), int(cfg.get("max_steps_per_task", 0))


def reference_runs(by_label: Mapping[str, Mapping[int, Mapping[str, Any]]], method: str = "frozen"
                   ) -> dict[tuple[int, int], Mapping[int, Mapping[str, Any]]]:
    """``{(epochs, max_steps_per_task): runs}`` of the runs of ``method`` in ``by_label``: the reference each
    run is compared with is the one trained on the same budget (the one with the most seeds where
    several labels share it). Few-shot results are never a reference: they have no accuracy matrix."""
    out: dict[tuple[int, int], Mapping[int, Mapping[str, Any]]] = {}
    for by_seed in by_label.values():
        first = next(iter(by_seed.values()))
        cfg = first["config"]
        if is_fewshot(first):
            continue
        if cfg.get("method") == method and len(by_seed) > len(out.get(_budget(cfg), {})):
            out[_budget(cfg)] = by_seed
    return out


def summary(runs: AllRuns, reference: str | None = "frozen"):
    """One row per benchmark and label: the number of seeds and of diverged seeds, Last, Avg and
    forgetting as means with 95% intervals over seeds (``_lo``/``_hi``), the gain in Last over the run
    of method ``reference`` at the same training budget (paired per seed; see :func:`reference_runs`; NaN
    where there is none, or no seed in common), the median share of test predictions the ZO units changed
    (``zo_flips``), the ZO step used, and the mean relative movement of the ZO and the FO units
    (``zo_moved``, ``fo_moved``). A label with a diverged seed gets NaN metrics (a mean over the
    survivors would flatter it). Few-shot results (:mod:`zolib.cl.fewshot`) are left out: they have no
    accuracy matrix."""
    import pandas as pd
    rows = []
    for bench, by_label in runs.items():
        refs = reference_runs(by_label, reference) if reference else {}
        for label, by_seed in by_label.items():
            results = list(by_seed.values())
            if is_fewshot(results[0]):
                continue
            cfg = results[0]["config"]
            ref = refs.get(_budget(cfg))
            row = {"benchmark": bench, "label": label, "method": cfg["method"], "seeds": len(results),
                   "diverged": sum(bool(r.get("diverged")) for r in results), "zo_lr": cfg["zo"]["zo_lr"]}
            for name in METRICS:
                row[name], row[f"{name}_lo"], row[f"{name}_hi"] = mean_ci(list(metric(by_seed, name).values()))
            row["gain_over_frozen"] = math.nan if ref is None else paired_gain(by_seed, ref)
            row["zo_flips"] = flips(by_seed)
            row["zo_moved"], row["fo_moved"] = (moved(by_seed, m, by_branch=False) for m in ("zo", "fo"))
            rows.append(row)
    return pd.DataFrame(rows)


def per_seed_records(runs: AllRuns, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Per-seed Last, Avg and forgetting, with the :func:`summary` columns, of every run: the ``runs``
    section of a notebook's results JSON."""
    table = summary(runs)
    out = {}
    for _, row in table.iterrows():
        by_seed = runs[row.benchmark][row.label]
        out[f"{prefix}{row.benchmark}/{row.label}"] = {
            "per_seed": {m: {str(s): v for s, v in metric(by_seed, m).items()} for m in METRICS},
            **{k: row[k] for k in ("seeds", "diverged", "zo_lr", "last", "last_lo", "last_hi", "avg", "avg_lo",
                                   "avg_hi", "forgetting", "gain_over_frozen", "zo_flips", "zo_moved", "fo_moved")}}
    return out
