"""Notebook 05 (MoZO): the ablation on Dual, one ingredient at a time, and MoZO on its Hop-even base, over
the claim map."""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims
from ..analysis import dynamics
from ..analysis.runs import AllRuns, Runs
from ..cl.profiles import Profile
from . import FO, FROZEN, Notebook, Params, Study, at, mapped, on_the_map, per_budget, points, register

ABLATION = ("1. ZO*", "2. + conservative", "3. + sign", "4. + modality eps (MoZO on Dual)")
BASE, MOZO = "Hop-even both (base)", "MoZO (Hop-even both)"


@register
class MoZO(Notebook):
    stem = "05_mozo"
    allow_divergence = True  # a step of the map may diverge: that run is a result (it collapses)
    grids = on_the_map(smoke={"zo_lrs": []})  # smoke: the calibrated point only

    def study(self, params: Params) -> Study:
        """FO and frozen at each budget; the ablation on Dual (ZO* -> conservative -> + sign -> + modality eps,
        all with ``q`` directions so each step adds one ingredient) and MoZO against its Hop-even base (also
        with ``q``) at every point of the claim map."""
        eps = {"eps_vision": params["eps_vision"], "eps_text": params["eps_text"]}
        sign, q = params["sign"], params["q"]
        steps = [{"rule": "aggressive"}, {"rule": "conservative"}, {"rule": "conservative", "sign": sign},
                 {"rule": "conservative", "sign": sign, **eps}]
        study: Study = {}
        for ref, method in ((FO, "fo"), (FROZEN, "frozen")):
            study.update(per_budget(ref, {"method": method}, params))
        for label, step in zip(ABLATION, steps):
            study.update(mapped(label, {"method": "dual", "q": q, **step}, params))
        base = {"method": "hop-even-both", "rule": "conservative", "q": q}
        study.update(mapped(BASE, base, params))
        study.update(mapped(MOZO, {**base, "sign": sign, **eps}, params))
        return study

    def states(self, by_label: Mapping[str, Runs], params: Params) -> dict[str, str]:
        """The map state of every run (against the frozen model)."""
        return {at(l, pt): dynamics.state(by_label[at(l, pt)], by_label[at(FROZEN, pt.epochs)])[0]
                for l in (*ABLATION, BASE, MOZO) for pt in points(params)}

    def ablation(self, table, params: Params):
        """The ablation's rows of :func:`zolib.analysis.runs.summary`'s ``table``, one per (point, step)."""
        import pandas as pd
        rows = []
        for bench in table.benchmark.unique():
            t = table[table.benchmark == bench].set_index("label")
            for pt in points(params):
                for step in ABLATION:
                    r = t.loc[at(step, pt)]
                    rows.append({"benchmark": bench, "point": pt.label, "epochs": pt.epochs, "step": step,
                                 **{k: r[k] for k in ("last", "last_lo", "last_hi", "avg", "avg_lo", "avg_hi")}})
        return pd.DataFrame(rows)

    @staticmethod
    def final_labels(params: Params, epochs: int) -> list[str]:
        """FO, then the base and MoZO at each point of budget ``epochs``: the bars of the final comparison."""
        return [at(FO, epochs)] + [at(l, pt) for pt in points(params) if pt.epochs == epochs for l in (BASE, MOZO)]

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        verdicts = []
        for by_label in runs.values():
            states = self.states(by_label, params)
            for pt in points(params):
                lab = lambda l: at(l, pt)  # noqa: E731
                verdicts += claims.mozo(by_label, *[lab(s) for s in ABLATION], lab(BASE), lab(MOZO), pt.label, states)
        return verdicts
