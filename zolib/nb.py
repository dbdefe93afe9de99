"""What every notebook calls: one ``setup`` (profile check, seeds, plot style) that returns the
notebook's :class:`Session`, its runs (from the run store), its verdicts, figures, and a results file.

Notebooks stay thin: a parameters cell, the story in markdown, calls into this module and into
zolib, figures. ``S = nb.setup("<stem>", globals())`` reads the parameters cell's values, once. A
notebook's runs, seeds and claims are declared once, in its object of :mod:`zolib.studies` (which
the sweep reads too), and stored by :class:`zolib.cl.store.Store`, keyed by their resolved config
and the zolib code; so ``S.runs()`` after ``zolib sweep`` reads the store and computes nothing.
Opened in JupyterLab without a sweep first, a notebook computes what the store lacks itself (in
parallel worker processes, a progress bar), records how many pieces it computed
(``computed_in_notebook`` in its results JSON), and a rerun only redraws.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import claims, studies
from .analysis.runs import AllRuns, is_fewshot, per_seed_records, summary
from .cl.config import ExperimentConfig
from .cl.profiles import Profile, get_profile
from .cl.store import Store
from .cl.sweep import default_jobs, run_sweep
from .errors import NanLossError, ZolibError
from .notebooks import declared, notebooks
from .plotting import FIGURES, claim_map, savefig, setup_style, title
from .runtime import atomic_write_json, provenance, seed_everything



@dataclass
class Session:
    """A notebook's context: its profile, parameters, :mod:`zolib.studies` object, store, figures folder,
    and what it records."""

    notebook: str
    profile: Profile
    params: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    store: Store = field(default_factory=Store)
    spec: studies.Notebook = field(init=False)
    verdicts: list = field(default_factory=list, init=False, repr=False)
    _runs: AllRuns | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.spec = studies.notebook(self.notebook)

    @property
    def benchmarks(self) -> tuple[str, ...]:
        return self.profile.benchmarks

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seeds this notebook runs (its :mod:`zolib.studies` object's, from the profile and parameters)."""
        return self.spec.seeds(self.profile, self.params)

    @property
    def synthetic(self) -> bool:
        return self.benchmarks == ("synthetic",)

    @property
    def figures(self) -> Path:
        return FIGURES / self.profile.name

    def config(self, **overrides: Any) -> ExperimentConfig:
        """The profile's resolved experiment config with ``overrides``."""
        return self.profile.experiment(overrides.pop("benchmark", None), **overrides)

    # ------------------------------------------------------------------ runs
    def runs(self) -> AllRuns:
        """Every run of this notebook's study, on its benchmarks and seeds: ``{benchmark: {label: {seed:
        result}}}``. Missing runs are computed first (see the module docstring); the class-incremental ones
        are recorded per seed in the results JSON."""
        if self._runs is None:
            self._runs = self.compare(self.spec.study(self.params), self.seeds, self.spec.allow_divergence,
                                      count=True)
            ci = {b: {l: r for l, r in by_label.items() if not is_fewshot(next(iter(r.values())))}
                  for b, by_label in self._runs.items()}
            self.record(runs={**self.results.get("runs", {}), **per_seed_records(ci)})
        return self._runs

    @property
    def table(self):
        """:func:`zolib.analysis.runs.summary` of :meth:`runs` (one row per benchmark and label)."""
        return summary(self.runs())

    def compare(self, study: Mapping[str, Mapping[str, Any]], seeds: tuple[int, ...] | None = None,
                allow_divergence: bool = False, count: bool = False) -> AllRuns:
        """Every run of ``study`` (:mod:`zolib.studies`) on the profile's benchmarks and ``seeds``, computing
        what the store lacks first (:func:`zolib.cl.sweep.run_sweep`, local executor). A diverged run (NaN
        loss) is a result only with ``allow_divergence``; otherwise it stops the notebook with its one-line
        message. With ``count``, the number of pieces computed here is recorded (``computed_in_notebook``)."""
        reqs = studies.requests(self.profile, study, seeds=seeds)
        computed = 0
        if any(self.store.result(r) is None for r in reqs.values()):
            print(f"{self.notebook}: computing what the run store lacks ({self.store.root}); `zolib sweep --profile "
                  f"{self.profile.name} --only {self.notebook[:2]}` does it ahead of time", flush=True)
            report = run_sweep(reqs.values(), self.store, "local", jobs=default_jobs(), threads=1)
            if report.failed:
                f = report.failed[0]
                raise ZolibError(f"{len(report.failed)} run(s) failed, e.g. {f['what']}: {f['error']} (log: {f['log']})")
            computed = report.finished
        if count:
            self.record(computed_in_notebook=self.results.get("computed_in_notebook", 0) + computed)
        runs: AllRuns = {}
        for (label, bench, seed), req in reqs.items():
            result = self.store.result(req)
            if result.get("diverged") and not allow_divergence:
                raise NanLossError(f"{label} (seed {seed}): {result['diverged']}")
            runs.setdefault(bench, {}).setdefault(label, {})[seed] = result
        return runs

    def calibrations(self):
        """The calibrated runs of this notebook's study: the chosen ZO step per configuration and budget,
        whether it qualified (:mod:`zolib.cl.calibration`) and why not, the control's held-out Avg, and each
        grid step's held-out Avg and the share of held-out predictions its ZO units changed."""
        import pandas as pd
        rows, seen = [], set()
        for (label, bench, seed), req in studies.requests(self.profile, self.spec.study(self.params)).items():
            if req.calibration is None or req.fewshot is not None or (label, bench) in seen:
                continue
            seen.add((label, bench))
            cal = self.store.calibrate(req)
            rows.append({"benchmark": bench, "label": label, "chosen zo_lr": cal["zo_lr"], "qualified": cal["qualified"],
                         "control Avg": cal["control"]["avg"],
                         **{f"Avg @ {r['zo_lr']:g}": (r["avg"] if r["diverged"] is None else math.nan) for r in cal["table"]},
                         **{f"flips @ {r['zo_lr']:g}": r["flip_rate"] for r in cal["table"]}, "why not": cal["reason"]})
        table = pd.DataFrame(rows)
        self.record(calibration=table.to_dict("records"))
        return table

    # ------------------------------------------------------------------ figures and records
    def title(self, text: str) -> str:
        return title(text, self.profile.name, self.synthetic)

    def savefig(self, fig, name: str) -> list[Path]:
        return savefig(fig, f"{self.notebook[:2]}_{name}", self.profile.name, self.synthetic)

    def record(self, **values: Any) -> None:
        """Record values for the notebook's results file (asserted by the tests)."""
        self.results.update(values)
        self.save()

    def check(self, **measured: Any):
        """Check the paper's claims on this notebook's runs (and on what it ``measured``: notebooks 04, 06, 07)
        with its :mod:`zolib.studies` object, record them, print one line per claim with its full reason,
        and return them as a table."""
        runs = self.runs() if self.spec.study(self.params) else {}
        verdicts = self.spec.claims(runs, self.params, self.profile, **measured)
        self.verdicts = verdicts
        key = lambda c: (c["claim"], c.get("regime", ""))  # noqa: E731
        recorded = {key(c): c for c in self.results.get("claims", []) + claims.as_records(verdicts)}
        self.record(claims=list(recorded.values()))  # a rerun of the cell replaces, not repeats
        for v in verdicts:
            print(v.line())
        return claims.frame(verdicts)

    def claim_map(self):
        """The notebook's claim map (:func:`zolib.plotting.claim_map` of its last :meth:`check`), saved as
        ``NN_claim_map``; returns the figure."""
        fig = claim_map(claims.as_records(self.verdicts))
        fig.suptitle(self.title(f"{self.notebook}: every claim at every point of the map"), fontsize=9)
        self.savefig(fig, "claim_map")
        return fig

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


def setup(notebook: str, namespace: Mapping[str, Any]) -> Session:
    """Check the profile, fix seeds and plot style, and return the notebook's :class:`Session`. Its parameters
    are the names its parameters cell declares (:func:`zolib.notebooks.declared`, as the sweep planner reads
    them), with their values in ``namespace``: a notebook calls ``nb.setup("<stem>", globals())``."""
    params = {name: namespace.get(name) for name in declared(notebooks([notebook])[0])}
    for name, value in params.items():
        if value is None:
            raise ZolibError(f"parameter {name} of {notebook} is unset; run its parameters cell, giving it a value")
    p = get_profile(params["profile"])
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    seed_everything(0)
    setup_style()
    import pandas as pd
    pd.set_option("display.max_colwidth", None)  # a verdict table shows its whole text, reasons included
    return Session(notebook, p, params)
