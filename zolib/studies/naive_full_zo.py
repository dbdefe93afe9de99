"""Notebook 01 (naive full ZO): FO, frozen, and Dual ZO under each update rule over a sweep of ZO steps."""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims
from ..analysis import dynamics
from ..analysis.runs import AllRuns, Runs, metric
from ..analysis.stats import paired
from ..cl.profiles import Profile, get_profile
from ..errors import ZolibError
from . import CALIBRATED, FO, FROZEN, Notebook, Params, Study, references, register

FAMILIES: dict[str, dict[str, Any]] = {
    "ZO*": {"rule": "aggressive", "sign": "none"},
    "ZO* + sign": {"rule": "aggressive", "sign": "elementwise"},
    "conservative": {"rule": "conservative", "sign": "none"},
    "conservative + sign": {"rule": "conservative", "sign": "elementwise"},  # q = q_sign (>= 2: see ZOConfig.degeneracy)
}
"""Notebook 01's Dual ZO update rules, by name."""
SIGN_PAIRS = (("ZO*", "ZO* + sign"), ("conservative", "conservative + sign"))


def sweep_label(family: str, lr: float | str) -> str:
    """Label of a Dual run of the sweep: ``"Dual ZO*, zo_lr 0.01"`` or ``"Dual ZO*, calibrated"``."""
    return f"Dual {family}, zo_lr {lr:g}" if not isinstance(lr, str) else f"Dual {family}, {lr}"


def step_name(step: float | str) -> str:
    """``0.01`` -> ``"0.01"``; the calibrated step -> ``"calibrated"``."""
    return step if isinstance(step, str) else f"{step:g}"


@register
class NaiveFullZO(Notebook):
    stem = "01_naive_full_zo"
    allow_divergence = True  # a run whose loss turns NaN is a result here: the sweep looks for divergence

    def study(self, params: Params) -> Study:
        """FO, frozen, and Dual ZO with each rule of ``families`` (:data:`FAMILIES`) over the ZO step sizes
        ``zo_lrs``, plus each at its calibrated step. Conservative + sign uses ``q_sign`` directions (with
        one, its candidates ignore the estimate). ``zo_lrs`` must hold the harness lr (the literal step)."""
        harness = get_profile(params["profile"]).experiment().lr
        if harness not in params["zo_lrs"]:
            raise ZolibError(f"zo_lrs must include the harness lr {harness:g} (the literal setting); "
                             f"got {params['zo_lrs']}")
        study = references()
        for family in params["families"]:
            if family not in FAMILIES:
                raise ZolibError(f"unknown rule family {family!r}; valid: {', '.join(FAMILIES)}")
            rule = {"method": "dual", **FAMILIES[family], "q": params["q_sign"] if family == "conservative + sign" else 1}
            for lr in params["zo_lrs"]:
                study[sweep_label(family, lr)] = {**rule, "zo_lr": float(lr)}
            study[sweep_label(family, CALIBRATED)] = {**rule, "zo_lr": CALIBRATED}
        return study

    @staticmethod
    def steps(params: Params) -> list[float | str]:
        """The sweep's steps, then the calibrated one."""
        return [*params["zo_lrs"], CALIBRATED]

    @staticmethod
    def lines(params: Params) -> dict[str, list[str]]:
        """``{line label: [run label at each step of zo_lrs]}``: the lines of "Last against the ZO step"."""
        return {f"Dual {f}": [sweep_label(f, lr) for lr in params["zo_lrs"]] for f in params["families"]}

    def panels(self, by_label: Mapping[str, Runs], params: Params) -> dict[str, dict[str, Runs]]:
        """Per step of the sweep: FO, frozen and Dual under each rule (``{step: {line label: runs}}``)."""
        return {step_name(step): {FO: by_label[FO], FROZEN: by_label[FROZEN],
                                  **{f"Dual {f}": by_label[sweep_label(f, step)] for f in params["families"]}}
                for step in self.steps(params)}

    def readings(self, by_label: Mapping[str, Runs], params: Params):
        """What the ZO units did at each (rule, step) (:func:`zolib.analysis.dynamics.sweep_map`): one row per
        run with its reading (diverged / collapsed / holds / inert), oscillation, the ZO step it used and the
        relative movement of its ZO units per branch."""
        import pandas as pd
        entries = {sweep_label(f, s): {"rule": f, "zo_lr": s} for f in params["families"] for s in self.steps(params)}
        table = pd.DataFrame(dynamics.sweep_map(by_label, FROZEN, entries))
        table["zo_lr used"] = [next(iter(by_label[l].values()))["config"]["zo"]["zo_lr"] for l in table.label]
        table["moved (vision, text)"] = [tuple(round(v, 4) for v in dynamics.moved(by_label[l]).values())
                                         for l in table.label]
        return table

    @staticmethod
    def describe(readings) -> list[str]:
        """One line per rule and reading: where it diverged, collapsed, held or stayed inert, and where it
        oscillates (loss jumps above :data:`zolib.analysis.dynamics.OSCILLATES` times the frozen model's)."""
        lines = []
        for rule, part in readings.groupby("rule", sort=False):
            for reading in ("diverged", "collapsed", "holds", "inert"):
                where = [step_name(r.zo_lr) for r in part.itertuples() if r.reading == reading]
                if where:
                    lines.append(f"Dual {rule} {reading} at zo_lr {', '.join(where)}")
            osc = [step_name(r.zo_lr) for r in part.itertuples() if r.oscillates]
            lines.append(f"Dual {rule} oscillates (loss jumps > {dynamics.OSCILLATES}x the frozen model's) at: "
                         f"{', '.join(osc) or 'no step size'}")
        return lines

    def sign_help(self, runs: AllRuns, params: Params):
        """Sign normalisation against the same rule without it, at each step: the paired difference in Last
        (a row per benchmark, rule and step, where both the rule and its + sign variant ran)."""
        import pandas as pd
        rows = []
        for bench, by_label in runs.items():
            for base, signed in SIGN_PAIRS:
                if base in params["families"] and signed in params["families"]:
                    for step in self.steps(params):
                        a, b = by_label[sweep_label(signed, step)], by_label[sweep_label(base, step)]
                        p = paired(metric(a, "last"), metric(b, "last"))
                        rows.append({"benchmark": bench, "rule": base, "zo_lr": step,
                                     "sign minus no sign (Last)": p.mean_diff, "ci_low": p.ci_low,
                                     "ci_high": p.ci_high, "p": p.p_value,
                                     "sign acted": dynamics.flips(a) >= dynamics.ZO_ACTED})
        return pd.DataFrame(rows)

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """Conservative Dual in each regime; the stability claim over the sweep's fixed steps (literal)."""
        harness = profile.experiment().lr
        verdicts = []
        for bench, by_label in runs.items():
            sweep = {lr: {"aggressive": sweep_label("ZO*", lr), "conservative": sweep_label("conservative", lr)}
                     for lr in params["zo_lrs"]}
            for regime, step in (("literal", harness), ("calibrated", CALIBRATED)):
                verdicts += claims.naive_full_zo(by_label, FO, FROZEN, sweep_label("conservative", step),
                                                 sweep if regime == "literal" else {}, regime)
        return verdicts
