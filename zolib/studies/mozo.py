"""Notebook 05 (MoZO): the ablation on Dual, one ingredient at a time, and MoZO on its Hop-even base."""
from __future__ import annotations

from typing import Any

from .. import claims
from ..analysis.runs import AllRuns
from ..cl.profiles import Profile
from . import FO, Notebook, Params, Study, references, regime_label, regimes, register

ABLATION = ("1. ZO*", "2. + conservative", "3. + sign", "4. + modality eps (MoZO on Dual)")
BASE, MOZO = "Hop-even both (base)", "MoZO (Hop-even both)"


@register
class MoZO(Notebook):
    stem = "05_mozo"

    def study(self, params: Params) -> Study:
        """The ablation on Dual (ZO* -> conservative -> + sign -> + modality eps, all with ``q`` directions so
        each step adds one ingredient) and MoZO against its Hop-even base, in each regime."""
        eps = {"eps_vision": params["eps_vision"], "eps_text": params["eps_text"]}
        sign = params["sign"]
        steps = [{"rule": "aggressive"}, {"rule": "conservative"}, {"rule": "conservative", "sign": sign},
                 {"rule": "conservative", "sign": sign, **eps}]
        study = references()
        for label, step in zip(ABLATION, steps):
            study.update(regimes(label, {"method": "dual", "q": params["q"], **step}, params["regimes"]))
        base = {"method": "hop-even-both", "rule": "conservative", "q": params["q"]}
        study.update(regimes(BASE, base, params["regimes"]))
        study.update(regimes(MOZO, {**base, "sign": sign, **eps}, params["regimes"]))
        return study

    def ablation(self, table, params: Params):
        """The ablation's rows of :func:`zolib.analysis.runs.summary`'s ``table``, one per (regime, step)."""
        import pandas as pd
        rows = []
        for bench in table.benchmark.unique():
            t = table[table.benchmark == bench].set_index("label")
            for regime in params["regimes"]:
                for step in ABLATION:
                    r = t.loc[regime_label(step, regime)]
                    rows.append({"benchmark": bench, "regime": regime, "step": step,
                                 **{k: r[k] for k in ("last", "last_lo", "last_hi", "avg", "avg_lo", "avg_hi")}})
        return pd.DataFrame(rows)

    @staticmethod
    def final_labels(params: Params) -> list[str]:
        """FO, then the base and MoZO in each regime: the bars of the final comparison."""
        return [FO] + [regime_label(l, r) for r in params["regimes"] for l in (BASE, MOZO)]

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        verdicts = []
        for by_label in runs.values():
            for regime in params["regimes"]:
                lab = lambda l: regime_label(l, regime)  # noqa: E731
                verdicts += claims.mozo(by_label, *[lab(s) for s in ABLATION], lab(BASE), lab(MOZO), regime)
        return verdicts
