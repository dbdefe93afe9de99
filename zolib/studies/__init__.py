"""One object per notebook: its runs, its seeds, its claims and its tables, declared once.

A notebook's :class:`Notebook` object is the only place that says which runs the notebook compares
(:meth:`Notebook.study`), on which seeds (:meth:`Notebook.seeds`), and how its labels become the
paper's claims (:meth:`Notebook.claims`), and with which parameters each profile runs it
(:attr:`Notebook.grids`). ``nb.setup`` looks it up by the notebook's name and the sweep planner
(:func:`zolib.notebooks.plan`) reads the same object with the same parameters, so what ``zolib sweep``
computes is exactly what the notebook reads: a notebook cell says ``runs = S.runs()`` and ends with
``S.check()``. Every module of this package is imported (:func:`discover`): a notebook's object is
found by its ``@register`` alone.

A study is ``{label: overrides}``: the runs a notebook compares, each as experiment/ZO fields on top
of the profile (run on every benchmark and seed of the profile). ``zo_lr="calibrated"`` asks for
the calibrated regime: the step size is picked before the runs (:class:`zolib.cl.profiles.Calibration`);
``fewshot=(shots, queries)`` asks for a few-shot prompt-tuning run instead of a class-incremental one
(notebook 07).

Two regimes of the ZO step size, side by side wherever a notebook checks a ZO claim:

- **literal**: the paper's setting as far as it is given: the ZO step is the harness lr (1e-3);
- **calibrated**: the step picked from the profile's grid without test images, then fixed.

Each hybrid configuration also has a **control**: the same mask with its ZO units held fixed
(``zo_lr=0``), which tells whether ZO's updates help or only half the adapters stop changing.
Dual's control is the frozen model.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..analysis.runs import AllRuns
from ..cl.profiles import Profile, get_profile
from ..cl.store import Request
from ..errors import ZolibError, check_choice

Study = dict[str, dict[str, Any]]
Params = Mapping[str, Any]
CALIBRATED = "calibrated"
REGIMES = ("literal", "calibrated")
FO, FROZEN = "FO", "frozen"


def regime_label(label: str, regime: str) -> str:
    """``"Dual"`` -> ``"Dual"`` (literal) or ``"Dual, calibrated"``."""
    return label if regime == "literal" else f"{label}, {regime}"


def control_label(label: str) -> str:
    return f"{label}, control (ZO held fixed)"


def regimes(label: str, overrides: Mapping[str, Any], which: Iterable[str]) -> Study:
    """``label`` in each regime of ``which``: the literal one as given, the calibrated one with its step to pick."""
    return {regime_label(label, r): {**overrides, **({"zo_lr": CALIBRATED} if r == "calibrated" else {})}
            for r in which}


def references() -> Study:
    """FO and the frozen model: the two references of every comparison."""
    return {FO: {"method": "fo"}, FROZEN: {"method": "frozen"}}


@dataclass(frozen=True)
class Point:
    """One point of the claim map: a ZO step (a number, or the calibrated one) and a training budget
    (``epochs`` per task). The literal regime is the point (harness lr, the profile's epochs)."""

    step: float | str
    epochs: int

    @property
    def label(self) -> str:
        """``"zo_lr 0.01, 1 epoch"`` or ``"calibrated, 4 epochs"``."""
        step = CALIBRATED if self.step == CALIBRATED else f"zo_lr {self.step:g}"
        return f"{step}, {budget_label(self.epochs)}"

    @property
    def calibrated(self) -> bool:
        return self.step == CALIBRATED


def budget_label(epochs: int) -> str:
    return f"{epochs} epoch" + ("s" if epochs != 1 else "")


def at(label: str, where: "Point | int") -> str:
    """A run label at a point (``"Dual @ zo_lr 0.01, 1 epoch"``) or, for a reference, at a budget
    (``"FO @ 4 epochs"``)."""
    return f"{label} @ {where.label if isinstance(where, Point) else budget_label(where)}"


def points(params: Params) -> list[Point]:
    """The claim map of a notebook: each step of ``zo_lrs`` and the calibrated one, at each budget of ``budgets``."""
    return [Point(float(s) if s != CALIBRATED else s, int(b)) for b in params["budgets"]
            for s in [*params["zo_lrs"], CALIBRATED]]


MAP_STEPS = [0.001, 0.003, 0.01, 0.03]
CLAIM_MAP: dict[str, dict[str, Any]] = {
    "smoke": {"zo_lrs": [0.001], "budgets": [1]},
    "cpu": {"zo_lrs": MAP_STEPS, "budgets": [1]},
    "workshop": {"zo_lrs": MAP_STEPS, "budgets": [1, 4]},
    "paper": {"zo_lrs": MAP_STEPS, "budgets": [1, 4]},
}
"""The claim map of each profile (the parameters of :func:`points`): the fixed ZO steps every ZO claim is
checked at (the first is the harness lr, the literal setting) and the training budgets (epochs per task:
MoE-Adapters4CL trains 1, DMNSP 4). Smoke runs every code path, not a result: the literal step only, where a
test checks that it is inert (01, 02) and where 03's layer explorer shows it, and the calibrated point."""


def on_the_map(**additions: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The :attr:`Notebook.grids` of a notebook of the claim map: :data:`CLAIM_MAP` with each profile's
    ``additions`` (``cpu={"budgets": [1, 2]}``)."""
    return {name: {**CLAIM_MAP.get(name, {}), **additions.get(name, {})} for name in {**CLAIM_MAP, **additions}}


def mapped(label: str, overrides: Mapping[str, Any], params: Params) -> Study:
    """``label`` at every point of :func:`points`: the fixed steps on the profile's seeds (the coarse map),
    the calibrated step on its decisive seeds (where the claims are judged)."""
    p = get_profile(params["profile"])
    return {at(label, pt): {**overrides, "zo_lr": pt.step, "epochs": pt.epochs,
                            "seeds": p.judged_seeds if pt.calibrated else p.seeds} for pt in points(params)}


def per_budget(label: str, overrides: Mapping[str, Any], params: Params) -> Study:
    """A reference (FO, frozen, a control) at each budget of ``budgets``, on the decisive seeds: every
    point of that budget is compared with it."""
    seeds = get_profile(params["profile"]).judged_seeds
    return {at(label, int(b)): {**overrides, "epochs": int(b), "seeds": seeds} for b in params["budgets"]}


def requests(profile: str | Profile, study: Mapping[str, Mapping[str, Any]], benchmarks: Iterable[str] | None = None,
             seeds: Iterable[int] | None = None) -> dict[tuple[str, str, int], Request]:
    """``{(label, benchmark, seed): Request}`` of ``study`` on the profile's benchmarks and seeds (a
    label with ``fewshot`` = ``(shots, queries)`` asks for few-shot runs; one with ``seeds`` runs on those)."""
    p = get_profile(profile)
    out = {}
    for label, overrides in study.items():
        values = dict(overrides)
        shots_queries = values.pop("fewshot", None)
        own_seeds = values.pop("seeds", None)
        calibrated = values.get("zo_lr") == CALIBRATED
        if calibrated:
            values.pop("zo_lr")
        elif isinstance(values.get("zo_lr"), str):
            raise ZolibError(f"{label}: zo_lr must be a number or {CALIBRATED!r}, got {values['zo_lr']!r}")
        for benchmark in benchmarks or p.benchmarks:
            for seed in own_seeds if own_seeds is not None else seeds if seeds is not None else p.seeds:
                cfg = p.experiment(benchmark, seed=seed, **values)
                out[(label, benchmark, seed)] = Request(cfg, p.calibration if calibrated else None,
                                                        tuple(shots_queries) if shots_queries else None)
    return out


class Notebook:
    """A notebook's runs, seeds, claims and grids (see the module docstring). Subclasses set :attr:`stem`
    and override what their notebook has; a notebook without runs (04, 06) keeps the empty study and gets
    its claims from what it measured (``S.check(**measured)``)."""

    stem: str = ""
    allow_divergence: bool = False  # a run whose loss turns NaN is a result (notebook 01, 07), not an error
    grids: Mapping[str, Params] = {}
    """Per profile name, the notebook parameters it runs with (``zolib notebooks`` and ``zolib sweep`` inject
    them). The parameters cell holds smoke's values, so Run All in JupyterLab reads what ``zolib sweep
    --profile smoke`` computed; a larger profile sets every parameter it runs at full size
    (tests/test_notebooks.py holds cpu to what figures/cpu records)."""

    def study(self, params: Params) -> Study:
        """``{label: overrides}`` of the runs the notebook compares, from its parameters."""
        return {}

    def seeds(self, profile: Profile, params: Params) -> tuple[int, ...]:
        """The seeds it runs: its own ``seeds`` parameter where it has one (notebook 07), else the profile's."""
        return tuple(params.get("seeds") or ()) or profile.seeds

    def requests(self, profile: str | Profile, params: Params) -> dict[tuple[str, str, int], Request]:
        """Every run of :meth:`study` as a request: what the sweep computes and the notebook reads."""
        p = get_profile(profile)
        return requests(p, self.study(params), seeds=self.seeds(p, params))

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """The paper's claims checked on ``runs`` (and on what the notebook ``measured``), as
        :class:`zolib.claims.Verdict` s."""
        return []


NOTEBOOKS: dict[str, Notebook] = {}


def register(cls: type[Notebook]) -> type[Notebook]:
    """Class decorator: one instance of ``cls`` under its stem in :data:`NOTEBOOKS`."""
    NOTEBOOKS[cls.stem] = cls()
    return cls


def notebook(stem: str) -> Notebook:
    """The :class:`Notebook` object of ``stem`` (a one-line error lists the known ones)."""
    check_choice("notebook", stem, sorted(NOTEBOOKS))
    return NOTEBOOKS[stem]


def discover() -> None:
    """Import every module of this package (each registers its notebook's object)."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


discover()
