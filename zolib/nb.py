"""What every notebook calls: one ``setup`` (profile check, seeds, plot style), the runs of a study
(from the run store; anything missing is computed first by the parallel local sweep), tables with
95% intervals over seeds, figures, verdicts, and a results file per notebook.

Notebooks stay thin: a parameters cell, the story in markdown, calls into this module and into
zolib, figures. The runs themselves are declared in :mod:`zolib.studies` (which the sweep reads
too) and stored by :class:`zolib.cl.store.Store`, keyed by their resolved config and the zolib
code, so rerunning a notebook to restyle a figure costs seconds, and a code change never serves a
stale number.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import claims, studies
from .analysis.stats import mean_ci
from .cl.config import ExperimentConfig
from .cl.profiles import Profile, get_profile
from .cl.store import Store
from .cl.sweep import default_jobs, run_sweep
from .errors import NanLossError, ZolibError
from .plotting import FIGURES, savefig, setup_style, title
from .runtime import atomic_write_json, provenance, seed_everything

Runs = dict[str, dict[str, dict[int, dict[str, Any]]]]  # {benchmark: {label: {seed: result}}}


@dataclass
class Session:
    """A notebook's context: its profile, its store, where its figures go, and what it records."""

    notebook: str
    profile: Profile
    params: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    store: Store = field(default_factory=Store)

    @property
    def benchmarks(self) -> tuple[str, ...]:
        return self.profile.benchmarks

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.profile.seeds

    @property
    def synthetic(self) -> bool:
        return self.benchmarks == ("synthetic",)

    @property
    def figures(self) -> Path:
        return FIGURES / self.profile.name

    def config(self, **overrides: Any) -> ExperimentConfig:
        """The profile's resolved experiment config with ``overrides``."""
        return self.profile.experiment(overrides.pop("benchmark", None), **overrides)

    def compare(self, study: Mapping[str, Mapping[str, Any]], seeds: tuple[int, ...] | None = None,
                allow_divergence: bool = False) -> Runs:
        """Every run of ``study`` (:mod:`zolib.studies`) on the profile's benchmarks and seeds:
        ``{benchmark: {label: {seed: result}}}``. Missing runs are computed first, in parallel
        (:func:`zolib.cl.sweep.run_sweep`, local executor). A diverged run (NaN loss) is a result
        only with ``allow_divergence``; otherwise it stops the notebook with its one-line message."""
        reqs = studies.requests(self.profile.name, study, seeds=seeds)
        if any(self.store.result(r) is None for r in reqs.values()):
            report = run_sweep(reqs.values(), self.store, "local", jobs=default_jobs(), threads=1)
            if report.failed:
                f = report.failed[0]
                raise ZolibError(f"{len(report.failed)} run(s) failed, e.g. {f['what']}: {f['error']} (log: {f['log']})")
        runs: Runs = {}
        for (label, bench, seed), req in reqs.items():
            result = self.store.result(req)
            if result.get("diverged") and not allow_divergence:
                raise NanLossError(f"{label} (seed {seed}): {result['diverged']}")
            runs.setdefault(bench, {}).setdefault(label, {})[seed] = result
        return runs

    def calibrations(self, study: Mapping[str, Mapping[str, Any]]):
        """The calibrated labels of ``study``: the chosen ZO step and the grid's validation accuracies."""
        import pandas as pd
        rows = []
        for (label, bench, seed), req in studies.requests(self.profile.name, study, seeds=self.seeds[:1]).items():
            if req.calibration is None:
                continue
            cal = self.store.calibrate(req)
            rows.append({"benchmark": bench, "label": label, "chosen zo_lr": cal["zo_lr"],
                         **{f"val acc @ {r['zo_lr']:g}": (r["accuracy"] if r["diverged"] is None else math.nan)
                            for r in cal["table"]}})
        return pd.DataFrame(rows)

    @staticmethod
    def summary(runs: Runs, reference: str | None = studies.FROZEN):
        """One row per benchmark and label: the number of seeds and of diverged seeds, Last, Avg and
        forgetting as means with 95% bootstrap intervals over seeds (``_lo``/``_hi``), the gain in Last
        over ``reference`` (paired per seed), the median share of test predictions the ZO units
        changed (``zo_flips``), the ZO step used, and the mean relative movement of the ZO units.
        A label with a diverged seed gets NaN metrics (a mean over the survivors would flatter it)."""
        import pandas as pd
        rows = []
        for bench, by_label in runs.items():
            ref = by_label.get(reference) if reference else None
            for label, by_seed in by_label.items():
                results = list(by_seed.values())
                cfg = results[0]["config"]
                row = {"benchmark": bench, "label": label, "method": cfg["method"], "seeds": len(results),
                       "diverged": sum(bool(r.get("diverged")) for r in results), "zo_lr": cfg["zo"]["zo_lr"]}
                for metric in ("last", "avg", "forgetting"):
                    values = claims.metric(by_seed, metric)
                    row[metric], row[f"{metric}_lo"], row[f"{metric}_hi"] = mean_ci(list(values.values()))
                row["gain_over_frozen"] = math.nan
                if ref is not None:
                    last, ref_last = claims.metric(by_seed, "last"), claims.metric(ref, "last")
                    common = sorted(set(last) & set(ref_last))
                    row["gain_over_frozen"] = sum(last[s] - ref_last[s] for s in common) / len(common)
                flips = [r["zo_effect"]["flip_rate"] for r in results if r.get("zo_effect")]
                row["zo_flips"] = float(pd.Series(flips).median()) if flips else math.nan
                moved = [m[b]["zo"] for r in results if r.get("movement") for m in r["movement"][-1:]
                         for b in m if "zo" in m[b]]
                row["zo_moved"] = float(pd.Series(moved).mean()) if moved else math.nan
                rows.append(row)
        return pd.DataFrame(rows)

    def title(self, text: str) -> str:
        return title(text, self.profile.name, self.synthetic)

    def savefig(self, fig, name: str) -> list[Path]:
        return savefig(fig, f"{self.notebook[:2]}_{name}", self.profile.name, self.synthetic)

    def record(self, **values: Any) -> None:
        """Record values for the notebook's results file (asserted by the tests)."""
        self.results.update(values)
        self.save()

    def record_runs(self, runs: Runs, prefix: str = "") -> None:
        """Record per-seed Last, Avg and forgetting, with intervals, of every run (results JSON)."""
        table = self.summary(runs)
        out = {}
        for _, row in table.iterrows():
            by_seed = runs[row.benchmark][row.label]
            out[f"{prefix}{row.benchmark}/{row.label}"] = {
                "per_seed": {m: {str(s): v for s, v in claims.metric(by_seed, m).items()}
                             for m in ("last", "avg", "forgetting")},
                **{k: row[k] for k in ("seeds", "diverged", "zo_lr", "last", "last_lo", "last_hi", "avg", "avg_lo",
                                       "avg_hi", "forgetting", "gain_over_frozen", "zo_flips", "zo_moved")}}
        self.record(runs={**self.results.get("runs", {}), **out})

    def check(self, verdicts: list[claims.Verdict]):
        """Record the paper's claims checked on this notebook's runs (:mod:`zolib.claims`), print one
        line per claim, and return them as a table."""
        key = lambda c: (c["claim"], c.get("regime", ""))  # noqa: E731
        recorded = {key(c): c for c in self.results.get("claims", []) + claims.as_records(verdicts)}
        self.record(claims=list(recorded.values()))  # a rerun of the cell replaces, not repeats
        for v in verdicts:
            print(v.line())
        return claims.frame(verdicts)

    def save(self) -> Path:
        """Write ``figures/<profile>/<notebook>.json`` atomically, with versions and git commit."""
        path = self.figures / f"{self.notebook}.json"
        atomic_write_json(path, _finite({"notebook": self.notebook, "profile": self.profile.name,
                                         "params": self.params, "results": self.results, **provenance()}))
        return path


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return _finite(obj.item())
    return obj


def setup(notebook: str, profile: str, **params: Any) -> Session:
    """Check the profile, fix seeds and plot style, and return the notebook's :class:`Session`."""
    p = get_profile(profile)
    for name, value in params.items():
        if value is None:
            raise ZolibError(f"parameter {name} of {notebook} is unset; give it a value in the parameters cell")
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    seed_everything(0)
    setup_style()
    return Session(notebook, p, {"profile": profile, **params})
