"""Notebook 02 (branch-wise): which encoder can go forward-only?"""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims, paper
from ..analysis.runs import AllRuns, Runs, metric
from ..analysis.stats import paired
from ..cl.profiles import Profile
from . import (FO, FROZEN, REGIMES, Notebook, Params, Study, control_label, references, regime_label, regimes,
               register)

BRANCHES = {"Dual": "dual", "Vision": "vision", "Language": "language"}
"""Label -> method of the three branch-wise assignments."""
WITH_CONTROL = ("Vision", "Language")  # Dual's control is the frozen model


@register
class BranchWise(Notebook):
    stem = "02_branch_wise"

    def study(self, params: Params) -> Study:
        """FO, frozen, Dual/Vision/Language in each regime, and the controls of Vision and Language."""
        study = references()
        for label, method in BRANCHES.items():
            study.update(regimes(label, {"method": method}, REGIMES))
        for label in WITH_CONTROL:
            study[control_label(label)] = {"method": BRANCHES[label], "zo_lr": 0.0}
        return study

    def deltas(self, runs: AllRuns):
        """Each assignment minus FO (mean paired difference with its 95% interval) per regime, beside the mean
        of the paper's reported rows (``source`` says which is which; reported numbers are never computed)."""
        import pandas as pd
        reported = paper.frame(paper.branch_rows())
        reported = reported[reported.method.isin(list(BRANCHES.values()))]
        rows = []
        for bench, by_label in runs.items():
            for regime in REGIMES:
                for label, method in BRANCHES.items():
                    run = by_label[regime_label(label, regime)]
                    for m in ("last", "avg"):
                        p = paired(metric(run, m), metric(by_label[FO], m))
                        rows.append({"benchmark": bench, "source": f"ours, {regime}", "method": method, "metric": m,
                                     "delta": p.mean_diff, "delta_lo": p.ci_low, "delta_hi": p.ci_high})
        mean = reported.groupby(["metric", "method"]).delta_vs_fo.mean().reset_index()
        rows += [{"benchmark": "paper", "source": "reported (mean of 4 rows)", "method": r.method, "metric": r.metric,
                  "delta": r.delta_vs_fo, "delta_lo": float("nan"), "delta_hi": float("nan")} for r in mean.itertuples()]
        return pd.DataFrame(rows)

    @staticmethod
    def control_order() -> list[str]:
        """The bars of the controls figure: frozen, FO, then each single branch's control, literal, calibrated."""
        order = [FROZEN, FO]
        for label in WITH_CONTROL:
            order += [control_label(label), label, regime_label(label, "calibrated")]
        return order

    @staticmethod
    def curves(by_label: Mapping[str, Runs], regime: str = "calibrated") -> dict[str, Runs]:
        """FO, frozen and the three assignments in ``regime``: the accuracy curves of the controls figure."""
        return {FO: by_label[FO], FROZEN: by_label[FROZEN], **{l: by_label[regime_label(l, regime)] for l in BRANCHES}}

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        verdicts = []
        for by_label in runs.values():
            for regime in REGIMES:
                named = {"fo": by_label[FO], **{m: by_label[regime_label(l, regime)] for l, m in BRANCHES.items()}}
                named.update({f"{BRANCHES[l]}-control": by_label[control_label(l)] for l in WITH_CONTROL})
                verdicts += claims.branch_wise(named, regime, controls={BRANCHES[l]: f"{BRANCHES[l]}-control"
                                                                        for l in WITH_CONTROL})
        return verdicts
