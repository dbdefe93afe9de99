"""Notebook 01 (naive full ZO): FO, frozen, and Dual ZO under each update rule, over the claim map."""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims
from ..analysis import dynamics
from ..analysis.runs import AllRuns, Runs, metric
from ..analysis.stats import paired
from ..cl.profiles import Profile
from ..errors import ZolibError
from . import (CALIBRATED, FO, FROZEN, Notebook, Params, Point, Study, at, mapped, on_the_map, per_budget, points,
               register)

FAMILIES: dict[str, dict[str, Any]] = {
    "ZO*": {"rule": "aggressive", "sign": "none"},
    "ZO* + sign": {"rule": "aggressive", "sign": "elementwise"},
    "conservative": {"rule": "conservative", "sign": "none"},
    "conservative + sign": {"rule": "conservative", "sign": "elementwise"},
}
"""Notebook 01's Dual ZO update rules, by name; every one runs with the notebook's ``q`` directions, so
rules are compared like with like (a sign rule needs q >= 2 to use its estimate: ZOConfig.degeneracy)."""
SIGN_PAIRS = (("ZO*", "ZO* + sign"), ("conservative", "conservative + sign"))
BOTH = ["ZO*", "conservative"]  # the aggressive rule and the conservative one, without sign


def dual(family: str) -> str:
    return f"Dual {family}"


@register
class NaiveFullZO(Notebook):
    stem = "01_naive_full_zo"
    allow_divergence = True  # a run whose loss turns NaN is a result here: the map looks for divergence
    grids = on_the_map(cpu={"budgets": [1, 2], "families": BOTH}, workshop={"families": BOTH},
                       paper={"families": list(FAMILIES), "q": 2})

    def study(self, params: Params) -> Study:
        """FO and frozen at each budget, and Dual ZO with each rule of ``families`` (:data:`FAMILIES`, all with
        ``q`` directions) at every point of the claim map (:func:`zolib.studies.points`)."""
        study: Study = {}
        for ref, method in ((FO, "fo"), (FROZEN, "frozen")):
            study.update(per_budget(ref, {"method": method}, params))
        for family in params["families"]:
            if family not in FAMILIES:
                raise ZolibError(f"unknown rule family {family!r}; valid: {', '.join(FAMILIES)}")
            study.update(mapped(dual(family), {"method": "dual", **FAMILIES[family], "q": params["q"]}, params))
        return study

    def panels(self, by_label: Mapping[str, Runs], params: Params, epochs: int) -> dict[str, dict[str, Runs]]:
        """Per step of the map at budget ``epochs``: FO, frozen and Dual under each rule (``{step: {line: runs}}``)."""
        return {_step(pt): {FO: by_label[at(FO, epochs)], FROZEN: by_label[at(FROZEN, epochs)],
                            **{dual(f): by_label[at(dual(f), pt)] for f in params["families"]}}
                for pt in points(params) if pt.epochs == epochs}

    @staticmethod
    def lines(params: Params, epochs: int) -> dict[str, list[str]]:
        """``{line: [run label at each fixed step]}`` of "Last against the ZO step" at budget ``epochs``."""
        return {dual(f): [at(dual(f), Point(float(s), epochs)) for s in params["zo_lrs"]] for f in params["families"]}

    def readings(self, runs: AllRuns, params: Params):
        """Where each rule sits at each point (:func:`zolib.analysis.dynamics.state`: inert, acts and holds,
        collapses), with its oscillation, the ZO step it used and how far its ZO units moved per branch."""
        import pandas as pd
        rows = []
        for bench, by_label in runs.items():
            for pt in points(params):
                frozen = by_label[at(FROZEN, pt.epochs)]
                for f in params["families"]:
                    label = at(dual(f), pt)
                    run = by_label[label]
                    state, why = dynamics.state(run, frozen)
                    ok = {s: r for s, r in run.items() if not r.get("diverged")}
                    rows.append({"benchmark": bench, "label": label, "rule": f, "point": pt.label, "epochs": pt.epochs,
                                 "zo_lr": pt.step, "zo_lr used": next(iter(run.values()))["config"]["zo"]["zo_lr"],
                                 "seeds": len(run), "state": state, "why": why,
                                 "gain_over_frozen": dynamics.paired_gain(run, frozen), "zo_flips": dynamics.flips(run),
                                 "oscillation": dynamics.oscillation(ok, frozen),
                                 "kept_theta": dynamics.pick_shares(run).get("0", float("nan")),
                                 "moved (vision, text)": tuple(round(v, 4) for v in dynamics.moved(run).values())})
        return pd.DataFrame(rows)

    def sign_help(self, runs: AllRuns, params: Params):
        """Sign normalisation against the same rule without it (both with ``q`` directions), at each point:
        the paired difference in Last, where both the rule and its + sign variant ran."""
        import pandas as pd
        rows = []
        for bench, by_label in runs.items():
            for base, signed in SIGN_PAIRS:
                if base in params["families"] and signed in params["families"]:
                    for pt in points(params):
                        a, b = by_label[at(dual(signed), pt)], by_label[at(dual(base), pt)]
                        p = paired(metric(a, "last"), metric(b, "last"))
                        rows.append({"benchmark": bench, "rule": base, "point": pt.label,
                                     "sign minus no sign (Last)": p.mean_diff, "ci_low": p.ci_low, "ci_high": p.ci_high,
                                     "p": p.p_value, "seeds": p.n, "sign acted": dynamics.flips(a) >= dynamics.ZO_ACTED})
        return pd.DataFrame(rows)

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """At every point: conservative Dual against FO and against the frozen model; per budget, over the
        fixed steps: ZO* less stable than conservative (needs both rules)."""
        verdicts = []
        fams = params["families"]
        for by_label in runs.values():
            for pt in points(params):
                fo, frozen = at(FO, pt.epochs), at(FROZEN, pt.epochs)
                if "conservative" in fams:
                    verdicts += claims.naive_full_zo(by_label, fo, frozen, at(dual("conservative"), pt), pt.label,
                                                     states=self.states(by_label, params))
            if {"ZO*", "conservative"} <= set(fams):
                for epochs in params["budgets"]:
                    sweep = {s: {"aggressive": at(dual("ZO*"), Point(float(s), epochs)),
                                 "conservative": at(dual("conservative"), Point(float(s), epochs))}
                             for s in params["zo_lrs"]}
                    verdicts += claims.stability(by_label, sweep, f"fixed steps, {epochs} epoch" + "s" * (epochs != 1))
        return verdicts

    def states(self, by_label: Mapping[str, Runs], params: Params) -> dict[str, str]:
        """The map state of every Dual run (:func:`zolib.analysis.dynamics.state`)."""
        return {at(dual(f), pt): dynamics.state(by_label[at(dual(f), pt)], by_label[at(FROZEN, pt.epochs)])[0]
                for f in params["families"] for pt in points(params)}


def _step(pt: Point) -> str:
    return CALIBRATED if pt.calibrated else f"{pt.step:g}"
