"""Notebook 02 (branch-wise): which encoder can go forward-only, over the claim map?"""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims, paper
from ..analysis import dynamics
from ..analysis.runs import AllRuns, Runs, metric
from ..analysis.stats import paired
from ..cl.profiles import Profile
from . import (FO, FROZEN, Notebook, Params, Study, at, control_label, mapped, on_the_map, per_budget, points,
               register)

BRANCHES = {"Dual": "dual", "Vision": "vision", "Language": "language"}
"""Label -> method of the three branch-wise assignments."""
WITH_CONTROL = ("Vision", "Language")  # Dual's control is the frozen model


@register
class BranchWise(Notebook):
    stem = "02_branch_wise"
    allow_divergence = True  # a step of the map may diverge: that run is a result (it collapses)
    grids = on_the_map()

    def study(self, params: Params) -> Study:
        """FO, frozen and the controls of Vision and Language at each budget; Dual, Vision and Language at
        every point of the claim map."""
        study: Study = {}
        for ref, method in ((FO, "fo"), (FROZEN, "frozen")):
            study.update(per_budget(ref, {"method": method}, params))
        for label in WITH_CONTROL:
            study.update(per_budget(control_label(label), {"method": BRANCHES[label], "zo_lr": 0.0}, params))
        for label, method in BRANCHES.items():
            study.update(mapped(label, {"method": method}, params))
        return study

    def states(self, by_label: Mapping[str, Runs], params: Params) -> dict[str, str]:
        """The map state of every branch-wise run (against the frozen model, and its control for Vision and
        Language)."""
        out = {}
        for pt in points(params):
            frozen = by_label[at(FROZEN, pt.epochs)]
            for label in BRANCHES:
                control = by_label[at(control_label(label), pt.epochs)] if label in WITH_CONTROL else None
                out[at(label, pt)] = dynamics.state(by_label[at(label, pt)], frozen, control)[0]
        return out

    def deltas(self, runs: AllRuns, params: Params):
        """Each assignment minus FO (mean paired difference with its 95% interval) at each point, beside the
        mean of the paper's reported rows (``source`` says which is which; reported numbers are never computed)."""
        import pandas as pd
        reported = paper.frame(paper.branch_rows())
        reported = reported[reported.method.isin(list(BRANCHES.values()))]
        rows = []
        for bench, by_label in runs.items():
            for pt in points(params):
                fo = by_label[at(FO, pt.epochs)]
                for label, method in BRANCHES.items():
                    run = by_label[at(label, pt)]
                    for m in ("last", "avg"):
                        p = paired(metric(run, m), metric(fo, m))
                        rows.append({"benchmark": bench, "point": pt.label, "epochs": pt.epochs, "step": pt.step,
                                     "source": f"ours, {pt.label}", "method": method, "metric": m,
                                     "delta": p.mean_diff, "delta_lo": p.ci_low, "delta_hi": p.ci_high, "seeds": p.n})
        mean = reported.groupby(["metric", "method"]).delta_vs_fo.mean().reset_index()
        rows += [{"benchmark": "paper", "point": "reported", "source": "reported (mean of 4 rows)", "method": r.method,
                  "metric": r.metric, "delta": r.delta_vs_fo, "delta_lo": float("nan"), "delta_hi": float("nan")}
                 for r in mean.itertuples()]
        return pd.DataFrame(rows)

    @staticmethod
    def control_order(params: Params, epochs: int) -> list[str]:
        """The bars of the controls figure at budget ``epochs``: frozen, FO, then each single branch's
        control and its runs at every point of that budget."""
        order = [at(FROZEN, epochs), at(FO, epochs)]
        for label in WITH_CONTROL:
            order += [at(control_label(label), epochs)] + [at(label, pt) for pt in points(params) if pt.epochs == epochs]
        return order

    @staticmethod
    def curves(by_label: Mapping[str, Runs], point) -> dict[str, Runs]:
        """FO, frozen and the three assignments at ``point``: the accuracy curves of the controls figure."""
        return {FO: by_label[at(FO, point.epochs)], FROZEN: by_label[at(FROZEN, point.epochs)],
                **{label: by_label[at(label, point)] for label in BRANCHES}}

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        verdicts = []
        for by_label in runs.values():
            states = self.states(by_label, params)
            for pt in points(params):
                named = {"fo": by_label[at(FO, pt.epochs)],
                         **{m: by_label[at(l, pt)] for l, m in BRANCHES.items()},
                         **{f"{BRANCHES[l]}-control": by_label[at(control_label(l), pt.epochs)] for l in WITH_CONTROL}}
                mine = {m: states[at(l, pt)] for l, m in BRANCHES.items()}
                verdicts += claims.branch_wise(named, pt.label, {BRANCHES[l]: f"{BRANCHES[l]}-control"
                                                                 for l in WITH_CONTROL}, mine)
        return verdicts
