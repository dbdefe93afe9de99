"""Notebook 03 (layer-wise): which layers can go forward-only?"""
from __future__ import annotations

from typing import Any, Callable

from .. import claims
from ..analysis.runs import AllRuns, combine, mean
from ..analysis.stats import mean_ci
from ..cl.profiles import Profile
from ..optim.methods import layerwise, parse
from . import FO, Notebook, Params, Study, control_label, references, regime_label, regimes, register

GROUPS = {"interleaved (Hop)": "interleaved", "consecutive (Prefix/Suffix)": "consecutive"}


@register
class LayerWise(Notebook):
    stem = "03_layer_wise"

    def study(self, params: Params) -> Study:
        """FO, frozen, every pattern x side in each regime and each one's control; the methods of
        ``eval_mode_methods`` (and FO) once more with FO units in eval mode (literal regime)."""
        study = references()
        for name in self.names(params):
            study.update(regimes(name, {"method": name}, params["regimes"]))
            study[control_label(name)] = {"method": name, "zo_lr": 0.0}
        eval_mode = list(params["eval_mode_methods"])
        if eval_mode:
            study["FO, eval mode"] = {"method": "fo", "fo_train_mode": False}
        for name in eval_mode:
            study[f"{name}, FO units in eval mode"] = {"method": name, "fo_train_mode": False}
        return study

    @staticmethod
    def names(params: Params) -> list[str]:
        """The layer-wise method names of the grid (``patterns`` x ``sides``)."""
        return layerwise(params["patterns"], params["sides"])

    @staticmethod
    def kinds(params: Params) -> list[tuple[str, Callable[[str], str]]]:
        """``(kind, label of a method's run of that kind)``: each regime, then the controls."""
        return [(r, lambda n, r=r: regime_label(n, r)) for r in params["regimes"]] + [("control", control_label)]

    def heatmaps(self, table, params: Params) -> dict[str, dict[str, Any]]:
        """Per benchmark, kind and metric: the accuracy grid (patterns x sides), its 95% half-widths and FO's
        value, from :func:`zolib.analysis.runs.summary`'s ``table``: ``{bench: {(kind, metric): {...}}}``."""
        import pandas as pd
        out: dict[str, dict[str, Any]] = {}
        for bench in table.benchmark.unique():
            t = table[table.benchmark == bench].set_index("label")
            for kind, label_of in self.kinds(params):
                for m in ("last", "avg"):
                    cell = {s: [t.loc[label_of(f"{p}-{s}")] for p in params["patterns"]] for s in params["sides"]}
                    acc = pd.DataFrame({s: [r[m] for r in rows] for s, rows in cell.items()}, index=params["patterns"])
                    half = pd.DataFrame({s: [(r[f"{m}_hi"] - r[f"{m}_lo"]) / 2 for r in rows] for s, rows in cell.items()},
                                        index=params["patterns"])
                    out.setdefault(bench, {})[(kind, m)] = {"accuracy": acc, "half_width": half, "fo": t.loc[FO, m]}
        return out

    def groups(self, runs: AllRuns, params: Params):
        """Per benchmark and kind: the mean Last of the Hop configurations and of the Prefix/Suffix ones, per
        seed, summarised as a mean with its 95% interval over seeds."""
        import pandas as pd
        names = self.names(params)
        members = {group: [n for n in names if getattr(parse(n), attr)] for group, attr in GROUPS.items()}
        rows = []
        for bench, by_label in runs.items():
            for kind, label_of in self.kinds(params):
                for group, group_names in members.items():
                    if group_names:
                        per_seed = combine(by_label, [label_of(n) for n in group_names], "last", mean)
                        m, lo, hi = mean_ci(list(per_seed.values()))
                        rows.append({"benchmark": bench, "runs": kind, "layers": group, "last": m, "last_lo": lo,
                                     "last_hi": hi})
        return pd.DataFrame(rows)

    @staticmethod
    def eval_mode_labels(params: Params) -> list[str]:
        """FO and each ``eval_mode_methods`` entry, in train then eval mode (the rows of the mode table)."""
        return [FO, "FO, eval mode"] + [x for n in params["eval_mode_methods"] for x in (n, f"{n}, FO units in eval mode")]

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        names = self.names(params)
        verdicts = []
        for by_label in runs.values():
            for regime in params["regimes"]:
                named = {"fo": by_label[FO], **{n: by_label[regime_label(n, regime)] for n in names},
                         **{f"{n}-control": by_label[control_label(n)] for n in names}}
                verdicts += claims.layer_wise(named, {n: parse(n) for n in names}, regime,
                                              controls={n: f"{n}-control" for n in names})
        return verdicts
