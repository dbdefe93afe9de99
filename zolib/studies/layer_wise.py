"""Notebook 03 (layer-wise): which layers can go forward-only, over the claim map?"""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims
from ..analysis import dynamics
from ..analysis.runs import AllRuns, Runs, combine, mean
from ..analysis.stats import mean_ci
from ..cl.profiles import Profile
from ..optim.methods import layerwise, parse
from . import FO, FROZEN, Notebook, Params, Study, at, control_label, mapped, on_the_map, per_budget, points, register

GROUPS = {"interleaved (Hop)": "interleaved", "consecutive (Prefix/Suffix)": "consecutive"}
GPU_GRID = {"patterns": ["hop-odd", "hop-even", "prefix6", "suffix6"], "sides": ["vision", "language", "both"],
            "eval_mode_methods": ["hop-odd-vision"]}
"""The layer grid on a GPU: the paper's four patterns on each branch and on both."""


@register
class LayerWise(Notebook):
    stem = "03_layer_wise"
    allow_divergence = True  # a step of the map may diverge: that run is a result (it collapses)
    grids = on_the_map(smoke={"patterns": ["hop-odd", "prefix6"], "sides": ["vision"]},
                       cpu={"patterns": ["hop-odd", "prefix6"], "sides": ["vision", "language"],
                            "eval_mode_methods": []},
                       workshop=GPU_GRID,
                       paper={**GPU_GRID, "eval_mode_methods": ["hop-odd-vision", "hop-even-vision"]})

    def study(self, params: Params) -> Study:
        """FO, frozen and every configuration's control at each budget; every pattern x side at every point of
        the claim map; the methods of ``eval_mode_methods`` (and FO) once more with FO units in eval mode (at
        the first budget, at the harness lr)."""
        study: Study = {}
        for ref, method in ((FO, "fo"), (FROZEN, "frozen")):
            study.update(per_budget(ref, {"method": method}, params))
        for name in self.names(params):
            study.update(per_budget(control_label(name), {"method": name, "zo_lr": 0.0}, params))
            study.update(mapped(name, {"method": name}, params))
        eval_mode = list(params["eval_mode_methods"])
        first = {**params, "budgets": params["budgets"][:1]}
        if eval_mode:
            study.update(per_budget("FO, eval mode", {"method": "fo", "fo_train_mode": False}, first))
        for name in eval_mode:
            study.update(per_budget(f"{name}, FO units in eval mode", {"method": name, "fo_train_mode": False}, first))
            study.update(per_budget(name, {"method": name}, first))
        return study

    @staticmethod
    def names(params: Params) -> list[str]:
        """The layer-wise method names of the grid (``patterns`` x ``sides``)."""
        return layerwise(params["patterns"], params["sides"])

    def states(self, by_label: Mapping[str, Runs], params: Params) -> dict[str, str]:
        """The map state of every layer-wise run (against the frozen model and its control)."""
        return {at(n, pt): dynamics.state(by_label[at(n, pt)], by_label[at(FROZEN, pt.epochs)],
                                          by_label[at(control_label(n), pt.epochs)])[0]
                for n in self.names(params) for pt in points(params)}

    def heatmaps(self, table, params: Params) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
        """Per benchmark, point (and each budget's controls) and metric: the accuracy grid (patterns x sides),
        its 95% half-widths and FO's value at that budget, from :func:`zolib.analysis.runs.summary`'s ``table``."""
        import pandas as pd
        kinds = [(pt.label, pt, lambda n, pt=pt: at(n, pt)) for pt in points(params)] + \
            [(f"control, {b} epoch{'s' * (b != 1)}", b, lambda n, b=b: at(control_label(n), b))
             for b in params["budgets"]]
        out: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for bench in table.benchmark.unique():
            t = table[table.benchmark == bench].set_index("label")
            for kind, where, label_of in kinds:
                epochs = where if isinstance(where, int) else where.epochs
                for m in ("last", "avg"):
                    cell = {s: [t.loc[label_of(f"{p}-{s}")] for p in params["patterns"]] for s in params["sides"]}
                    acc = pd.DataFrame({s: [r[m] for r in rows] for s, rows in cell.items()}, index=params["patterns"])
                    half = pd.DataFrame({s: [(r[f"{m}_hi"] - r[f"{m}_lo"]) / 2 for r in rows] for s, rows in cell.items()},
                                        index=params["patterns"])
                    out.setdefault(bench, {})[(kind, m)] = {"accuracy": acc, "half_width": half,
                                                             "fo": t.loc[at(FO, epochs), m]}
        return out

    def groups(self, runs: AllRuns, params: Params):
        """Per benchmark and point: the mean Last of the Hop configurations and of the Prefix/Suffix ones, per
        seed, summarised as a mean with its 95% interval over seeds."""
        import pandas as pd
        names = self.names(params)
        members = {group: [n for n in names if getattr(parse(n), attr)] for group, attr in GROUPS.items()}
        rows = []
        for bench, by_label in runs.items():
            for pt in points(params):
                for group, group_names in members.items():
                    if group_names:
                        per_seed = combine(by_label, [at(n, pt) for n in group_names], "last", mean)
                        m, lo, hi = mean_ci(list(per_seed.values()))
                        rows.append({"benchmark": bench, "point": pt.label, "layers": group, "last": m, "last_lo": lo,
                                     "last_hi": hi, "seeds": len(per_seed)})
        return pd.DataFrame(rows)

    @staticmethod
    def eval_mode_labels(params: Params) -> list[str]:
        """FO and each ``eval_mode_methods`` entry, in train then eval mode (the rows of the mode table)."""
        b = params["budgets"][0]
        return [at(FO, b), at("FO, eval mode", b)] + [at(x, b) for n in params["eval_mode_methods"]
                                                      for x in (n, f"{n}, FO units in eval mode")]

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        names = self.names(params)
        verdicts = []
        for by_label in runs.values():
            states = self.states(by_label, params)
            for pt in points(params):
                named = {"fo": by_label[at(FO, pt.epochs)], **{n: by_label[at(n, pt)] for n in names},
                         **{f"{n}-control": by_label[at(control_label(n), pt.epochs)] for n in names}}
                verdicts += claims.layer_wise(named, {n: parse(n) for n in names}, pt.label,
                                              controls={n: f"{n}-control" for n in names},
                                              states={n: states[at(n, pt)] for n in names})
        return verdicts
