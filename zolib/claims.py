"""The paper's claims, checked against what a notebook measured: one verdict per claim and point.

Every notebook from 01 on ends with a table of these verdicts, computed from its own runs, so a
disagreement is said plainly in whatever profile is run. The reported side of each claim comes
from :mod:`zolib.paper` (numbers as reported, never computed here). A claim about ZO is checked at
every point of the notebook's claim map (a ZO step and a training budget, :mod:`zolib.studies`), and
each verdict carries the map state of the ZO runs it rests on (:func:`zolib.analysis.dynamics.state`:
*inert*, *acts and holds*, *collapses*), so a reader sees whether it compares models that learned.

A claim says "``a`` is above ``b``". It is checked per seed, paired (:mod:`zolib.analysis.stats`):
the mean paired difference, its 95% paired t interval and the paired t-test (which agree: the
interval excludes 0 exactly when p < 0.05). The verdict is

- ``agrees``: the interval excludes 0 on the paper's side;
- ``disagrees``: the interval excludes 0 on the other side;
- ``inconclusive``: otherwise, with the smallest effect its seeds could have detected (80% power at
  the 5% level, from the observed spread of the paired differences);
- ``one seed: no interval``: a point that runs one seed cannot give an interval;
- ``not testable here``: the claim is about ZO, and a ZO run it rests on did not act. The
  criterion (:func:`zo_untestable`): put the run's ZO units back to their initial values after the
  final task; if that changes the predicted class of fewer than :data:`ZO_ACTED` (1%) of the test
  images (median over seeds), its ZO units did not measurably change its predictions against the
  frozen model (Dual) or against what its FO units learned alone (hybrids), and whatever the
  accuracies say, they say nothing about ZO. The reason is given with the verdict. A claim pooled
  over several configurations (layer-wise) is judged on those that acted and names those left out.

Deterministic measurements (bytes, notebook 06) get ``agrees``/``disagrees`` from the numbers
themselves: they do not vary with the seed.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import median
from typing import Any, Mapping, Sequence

from . import paper
from .cl.diagnostics import ZO_ACTED, acted
from .analysis.runs import Runs, combine, metric
from .analysis.runs import mean as _mean
from .analysis.stats import Paired, paired

VERDICTS = ("agrees", "disagrees", "inconclusive", "not testable here", "one seed: no interval")
CHANCE = 1.0  # Last (%) that a diverged run counts as in a worst-case comparison: uniform guessing over 100 classes


@dataclass(frozen=True)
class Verdict:
    """One claim at one point (``regime``), what the paper reports, what we measured, and the verdict."""

    claim: str
    reported: str
    measured: str
    verdict: str
    regime: str = ""
    mean_diff: float | None = None
    ci: tuple[float, float] | None = None
    p_value: float | None = None
    per_seed: dict[str, list[float]] = field(default_factory=dict)
    reason: str = ""
    detectable: float | None = None  # smallest effect the seeds could have detected (80% power, 5% level)
    seeds: int = 0
    states: dict[str, str] = field(default_factory=dict)  # map state of each ZO run the claim rests on

    def line(self) -> str:
        why = f" [{self.reason}]" if self.reason else ""
        regime = f"({self.regime}) " if self.regime else ""
        return f"{self.verdict.upper()}: {regime}{self.claim} | paper: {self.reported} | ours: {self.measured}{why}"


def zo_untestable(runs: Mapping[str, Runs]) -> str:
    """Why a claim resting on the ZO runs ``{label: {seed: result}}`` cannot be tested, or ``""``.

    A run without ``zo_effect`` (no ZO units, or held fixed) is skipped; a diverged run acted.
    """
    for label, by_seed in runs.items():
        rates = [r["zo_effect"]["flip_rate"] for r in by_seed.values() if r.get("zo_effect")]
        if not rates:
            if any(r.get("diverged") for r in by_seed.values()):
                continue
            return f"{label}: its ZO units never moved (held fixed, or no ZO units)"
        if not acted(median(rates)):
            return (f"{label}: reverting its ZO units changes {median(rates):.2%} of test predictions (median "
                    f"over {len(rates)} seeds), below the {ZO_ACTED:.0%} that counts as the ZO units having acted")
    return ""


def acting(runs: Mapping[str, Runs], labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """``labels`` split into the runs whose ZO units acted and those that did not (:func:`zo_untestable`)."""
    acted = [l for l in labels if not zo_untestable({l: runs[l]})]
    return acted, [l for l in labels if l not in acted]


def verdict(p: Paired, untestable: str = "") -> str:
    """The verdict on "a is above b" from a paired comparison (see the module docstring)."""
    if untestable:
        return "not testable here"
    if p.n < 2:
        return "one seed: no interval"
    if any(math.isnan(x) for x in (p.ci_low, p.ci_high, p.p_value)):
        return "inconclusive"  # a diverged seed; or a constant shift over the seeds, which no spread can test
    if p.ci_low > 0 or p.ci_high < 0:
        return "agrees" if p.mean_diff > 0 else "disagrees"
    return "inconclusive"


def fmt(x: float) -> str:
    """A signed number with enough digits to tell small values apart (0.0102 and 0.0077 are not both "0.01")."""
    if math.isnan(x):
        return "nan"
    return f"{x:+.2f}" if abs(x) >= 0.1 or x == 0 else f"{x:+.3g}"


def _value(x: float) -> str:
    return f"{x:.2f}" if abs(x) >= 0.1 or x == 0 or math.isnan(x) else f"{x:.3g}"


def above(claim: str, reported: str, a_name: str, a: Mapping[int, float], b_name: str, b: Mapping[int, float],
          zo_runs: Mapping[str, Runs] | None = None, regime: str = "", reason: str | None = None,
          states: Mapping[str, str] | None = None, note: str = "") -> Verdict:
    """The verdict on "``a`` is above ``b``" (``{seed: value}`` each), not testable when a run of
    ``zo_runs`` did not act (:func:`zo_untestable`) or when ``reason`` says why; ``states`` (label ->
    map state) says where the ZO runs sit; ``note`` is added to what was measured."""
    p = paired(a, b)
    reason = zo_untestable(zo_runs or {}) if reason is None else reason
    mean_a = sum(p.a) / p.n if p.n else math.nan
    mean_b = sum(p.b) / p.n if p.n else math.nan
    measured = f"{a_name} {_value(mean_a)} vs {b_name} {_value(mean_b)}: {fmt(p.mean_diff)}"
    if p.n >= 2:
        measured += f" [95% CI {fmt(p.ci_low)}, {fmt(p.ci_high)}], p = {p.p_value:.3g}, {p.n} seeds"
    else:
        measured += f", {p.n} seed"
    v = verdict(p, reason)
    shift = p.n >= 2 and math.isnan(p.p_value) and not any(math.isnan(x) for x in (*p.a, *p.b))
    if v == "inconclusive" and shift:
        measured += "; the same difference in every seed, so no spread to test it against"
    elif v == "inconclusive" and p.n >= 2 and p.p_value == 1.0 and p.detectable == 0:
        measured += "; the two are identical in every seed"
    elif v == "inconclusive" and math.isfinite(p.detectable):
        measured += f"; its seeds could detect a difference of {p.detectable:.3g} or more (80% power)"
    if note:
        measured += f"; {note}"
    mine = {l: (states or {}).get(l, "") for l in (zo_runs or {})}
    return Verdict(claim, reported, measured, v, regime, p.mean_diff, (p.ci_low, p.ci_high), p.p_value,
                   {"seeds": list(p.seeds), "a": list(p.a), "b": list(p.b)}, reason,
                   p.detectable if math.isfinite(p.detectable) else None, p.n, {l: st for l, st in mine.items() if st})


def _reported_delta(method: str, m: str) -> str:
    return f"{paper.mean_delta_vs_fo(method, m):+.1f} points vs FO (mean of the reported rows)"


# --------------------------------------------------------------------------- notebook 01


def naive_full_zo(runs: Mapping[str, Runs], fo: str, frozen: str, dual: str, regime: str = "",
                  states: Mapping[str, str] | None = None) -> list[Verdict]:
    """Notebook 01 at one point over ``runs`` ``{label: {seed: result}}``: conservative Dual (label ``dual``)
    below FO, and above the frozen model (both at the point's budget)."""
    out = [above(f"Dual ZO is below FO ({m.capitalize()})", _reported_delta("dual", m), "FO", metric(runs[fo], m),
                 "Dual", metric(runs[dual], m), {dual: runs[dual]}, regime, states=states) for m in ("last", "avg")]
    out.append(above("Conservative Dual ZO gains over the frozen model (Last)",
                     "+2.6 (Dual 69.29 vs Continual-CLIP's frozen 66.7 on CIFAR-100; paper.md 1.2)", "Dual",
                     metric(runs[dual], "last"), "frozen", metric(runs[frozen], "last"), {dual: runs[dual]}, regime,
                     states=states))
    return out


def worst_last(runs: Mapping[str, Runs], labels: Sequence[str]) -> dict[int, float]:
    """Per seed, the worst Last over ``labels``; a diverged run counts as :data:`CHANCE` (uniform guessing,
    where a collapsed model also ends), not as 0 below every collapse."""
    return combine(runs, labels, "last", lambda xs: min(CHANCE if math.isnan(x) else x for x in xs))


def stability(runs: Mapping[str, Runs], sweep: Mapping[float, Mapping[str, str]], regime: str = "") -> list[Verdict]:
    """Notebook 01, per budget over the fixed steps ``sweep`` (``{zo_lr: {"aggressive": label, "conservative":
    label}}``): "ZO* is less stable than conservative ZO", read as a lower worst Last over the steps, per seed
    (:func:`worst_last`). Not testable when no step made one of the two rules act."""
    reason = ""
    for rule in ("aggressive", "conservative"):
        if all(zo_untestable({sweep[lr][rule]: runs[sweep[lr][rule]]}) for lr in sweep):
            reason = f"no step of the sweep made {rule} ZO act"
    labels = {rule: [sweep[lr][rule] for lr in sweep] for rule in ("aggressive", "conservative")}
    return [above("Aggressive ZO* is less stable than conservative ZO: lower worst Last over the ZO steps (a "
                  f"divergence counts as {CHANCE:g}%, uniform guessing)",
                  f"ZO* oscillates and is the worst variant (Dual ZO* {paper.ABLATION['dual aggressive (ZO*)']} Last)",
                  "conservative, worst", worst_last(runs, labels["conservative"]), "ZO*, worst",
                  worst_last(runs, labels["aggressive"]), regime=regime, reason=reason)]


# --------------------------------------------------------------------------- notebook 02


def branch_wise(runs: Mapping[str, Runs], regime: str = "", controls: Mapping[str, str] | None = None,
                states: Mapping[str, str] | None = None) -> list[Verdict]:
    """Notebook 02 over ``runs`` with labels ``fo``, ``dual``, ``vision``, ``language`` (this point's),
    and ``controls`` ``{method: label of its control}`` (the same mask, ZO units held fixed).

    "About as good as FO" is read as: the better single-branch assignment (by mean Last) recovers at
    least half of what Dual loses against FO, per seed.
    """
    zo = {m: runs[m] for m in ("dual", "vision", "language")}
    last = {m: metric(runs[m], "last") for m in ("fo", "dual", "vision", "language")}
    seeds = sorted(set.intersection(*(set(v) for v in last.values())))
    others = {s: min(last[m][s] for m in ("fo", "vision", "language")) for s in seeds}
    best, tie = best_of(runs, ["vision", "language"])
    midpoint = {s: last["dual"][s] + 0.5 * (last["fo"][s] - last["dual"][s]) for s in seeds}
    out = [
        above("Dual is the worst of FO, Dual, Vision and Language (Last)", f"Dual {_reported_delta('dual', 'last')}",
              "the worst of the others", others, "Dual", last["dual"], zo, regime, states=states),
        above("Language-ZO beats Vision-ZO (Last)",
              f"Language {_reported_delta('language', 'last')}, Vision {_reported_delta('vision', 'last')}",
              "Language", last["language"], "Vision", last["vision"],
              {"vision": runs["vision"], "language": runs["language"]}, regime, states=states),
        above("Single-branch ZO is about as good as FO: the better one recovers at least half of Dual's loss (Last)",
              f"Language {_reported_delta('language', 'last')}", f"best single branch ({best})", last[best],
              "midpoint of Dual and FO", midpoint, {best: runs[best], "dual": runs["dual"]}, regime, states=states,
              note=tie),
    ]
    for method, control in (controls or {}).items():
        out.append(above(f"ZO updates help: {method.capitalize()}-ZO beats its control, ZO units held fixed (Last)",
                         "not reported (a question the paper leaves open)", method, metric(runs[method], "last"),
                         "control", metric(runs[control], "last"), {method: runs[method]}, regime, states=states))
    return out


def best_of(runs: Mapping[str, Runs], labels: Sequence[str], tolerance: float = 1e-6) -> tuple[str, str]:
    """The label of ``labels`` with the best mean Last, and a note when others tie with it within
    ``tolerance`` points (a float tie must not decide: among tied labels, one whose ZO units acted is
    preferred, then the first in order)."""
    means = {l: _mean(list(metric(runs[l], "last").values())) for l in labels}
    top = max(means.values())
    tied = [l for l in labels if means[l] >= top - tolerance]
    acted, _ = acting(runs, tied)
    best = (acted or tied)[0]
    return best, (f"tied within {tolerance:g} points with {', '.join(l for l in tied if l != best)}; "
                  f"{best} chosen ({'its ZO units acted' if acted else 'first in order'})") if len(tied) > 1 else ""


# --------------------------------------------------------------------------- notebook 03


def layer_wise(runs: Mapping[str, Runs], methods: Mapping[str, Any], regime: str = "",
               controls: Mapping[str, str] | None = None, states: Mapping[str, str] | None = None) -> list[Verdict]:
    """Notebook 03 over ``runs`` with ``fo`` and layer-wise labels; ``methods`` maps each layer-wise
    label to its parsed :class:`~zolib.optim.methods.Method` (for interleaved/consecutive);
    ``controls`` maps a layer-wise label to its control's label. Pooled claims are judged on the
    configurations whose ZO units acted; the others are named (:func:`acting`)."""
    layered = list(methods)
    acted, left_out = acting(runs, layered)
    why = f"judged on the configurations whose ZO units acted; left out: {', '.join(left_out)}" if left_out and acted \
        else ""
    none = "" if acted else f"no configuration's ZO units acted ({zo_untestable({l: runs[l] for l in layered})})"
    hop = [l for l in acted if methods[l].interleaved]
    block = [l for l in acted if methods[l].consecutive]
    out = []
    if any(m.interleaved for m in methods.values()) and any(m.consecutive for m in methods.values()):
        for m in ("last", "avg"):
            claim = f"Interleaved (Hop) beats consecutive (Prefix/Suffix) layers, mean {m.capitalize()}"
            if hop and block:
                out.append(above(claim, "interleaved better (text, no table)", "Hop mean", combine(runs, hop, m, _mean),
                                 "Prefix/Suffix mean", combine(runs, block, m, _mean), {l: runs[l] for l in hop + block},
                                 regime, states=states, note=why))
            else:
                reason = none or f"of the configurations that acted ({', '.join(acted)}), none is " + \
                    ("consecutive" if hop else "interleaved")
                out.append(above(claim, "interleaved better (text, no table)", "Hop mean", {}, "Prefix/Suffix mean", {},
                                 regime=regime, reason=reason))
    best, tie = best_of(runs, layered)
    rep = paper.BRANCH_WISE[("CIFAR Inc10", "last")]
    out.append(above("The best layer-wise configuration beats FO (Last; best chosen by mean Last, so the "
                     "comparison favours it)", f"CIFAR Inc10: {rep['best_layerwise_method']} {rep['best_layerwise']} "
                     f"vs FO {rep['fo']}", f"best ({best})", metric(runs[best], "last"), "FO",
                     metric(runs["fo"], "last"), {best: runs[best]}, regime, states=states, note=tie))
    if controls:
        claim = ("ZO updates help: layer-wise ZO beats its control, ZO units held fixed (mean over the configurations "
                 "that acted, Last)")
        judged = [l for l in controls if l in acted]
        if judged:
            out.append(above(claim, "not reported (a question the paper leaves open)", "ZO",
                             combine(runs, judged, "last", _mean), "controls",
                             combine(runs, [controls[l] for l in judged], "last", _mean),
                             {l: runs[l] for l in judged}, regime, states=states, note=why))
        else:
            out.append(above(claim, "not reported (a question the paper leaves open)", "ZO", {}, "controls", {},
                             regime=regime, reason=none))
    return out


# --------------------------------------------------------------------------- notebook 05


def mozo(runs: Mapping[str, Runs], aggressive: str, conservative: str, sign: str, modality: str, base: str,
         mozo_label: str, regime: str = "", states: Mapping[str, str] | None = None) -> list[Verdict]:
    """Notebook 05: the ablation order (ZO* < conservative < + sign < + modality eps, on Dual, all with the
    same q) and MoZO over its Hop-even base; arguments are labels in ``runs``."""
    def gains(m: str) -> str:
        g = [after - before for (_, mm), (before, after) in paper.MOZO.items() if mm == m]
        return f"{min(g):+.2f} to {max(g):+.2f} points over the Hop-even base (reported rows)"

    def step(claim, a, b):
        return above(claim, paper.ABLATION_ORDER, a, metric(runs[a], "last"), b, metric(runs[b], "last"),
                     {a: runs[a], b: runs[b]}, regime, states=states)
    return [
        step("Conservative ZO beats aggressive ZO* (Dual, Last)", conservative, aggressive),
        step("Sign normalisation improves conservative ZO (Dual, Last)", sign, conservative),
        step("Modality eps (eps_v < eps_l) improves sign-normalised ZO (Dual, Last)", modality, sign),
        *[above(f"MoZO beats its Hop-even base ({m.capitalize()})", gains(m), "MoZO", metric(runs[mozo_label], m),
                "Hop-even base", metric(runs[base], m), {mozo_label: runs[mozo_label], base: runs[base]}, regime,
                states=states)
          for m in ("last", "avg")],
    ]


# --------------------------------------------------------------------------- notebook 07


def zo_fc(runs: Mapping[str, Runs], zo_fc_label: str, fo: str, within: float = 2.0) -> list[Verdict]:
    """ZO-FC's headline (arXiv 2510.21019): ZO on the adapter plus an FO classifier forgets less than FO,
    at comparable accuracy, read as: its Last is at most ``within`` points below FO's."""
    z, f = runs[zo_fc_label], runs[fo]
    return [
        above("ZO-FC forgets less than FO", "ZO mitigates forgetting (ZO-FC's headline)", "FO's forgetting",
              metric(f, "forgetting"), "ZO-FC's forgetting", metric(z, "forgetting"), {zo_fc_label: z}),
        above(f"ZO-FC's Last is within {within:g} points of FO's (comparable accuracy)",
              "comparable accuracy (ZO-FC's headline)", f"ZO-FC + {within:g}",
              {s: v + within for s, v in metric(z, "last").items()}, "FO", metric(f, "last"), {zo_fc_label: z}),
    ]


def sharpzo(fewshot: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> list[Verdict]:
    """SharpZO's headline (arXiv 2506.20990), in its own few-shot setting: at the same query budget it
    beats ZO-SGD alone and CMA-ES alone. ``fewshot[method][seed]`` are :func:`zolib.cl.fewshot.run_fewshot`
    results (test accuracy; ``zo_effect``: the predictions the tuned prompt changed)."""
    acc = {m: {s: r["accuracy"] for s, r in by_seed.items()} for m, by_seed in fewshot.items()}
    return [above(f"SharpZO beats {other} at the same query budget (few-shot test accuracy)",
                  "SharpZO 75.64 vs BPT-VLM 72.42, ZIP 70.6-71.0 (16-shot, 11 datasets)", "SharpZO", acc["sharpzo"],
                  other, acc[method], {"sharpzo": fewshot["sharpzo"], method: fewshot[method]})
            for other, method in (("ZO-SGD alone", "prompt-zo-sgd"), ("CMA-ES alone", "prompt-cma-es"))]


def cross_check(ours: Runs, theirs: Runs) -> dict[str, Any]:
    """Do two implementations of one method (zolib's and infty's, same method, benchmark and seeds)
    give the same Last? ``agree``: "yes" when the 95% interval of the paired difference holds 0, "no"
    when it excludes it, "not testable here" when a run's ZO units did not act (equal Last would then
    only say both stayed at the frozen model), "one seed: no interval", or "inconclusive" (NaN)."""
    p = paired(metric(ours, "last"), metric(theirs, "last"))
    untestable = zo_untestable({"zolib": ours, "infty": theirs})
    if untestable:
        agree = "not testable here"
    elif p.n < 2:
        agree = "one seed: no interval"
    elif math.isnan(p.ci_low) or math.isnan(p.ci_high):
        agree = "inconclusive"
    else:
        agree = "yes" if p.ci_low <= 0 <= p.ci_high else "no"
    return {"zolib - infty": p.mean_diff, "ci low": p.ci_low, "ci high": p.ci_high, "seeds": p.n, "agree": agree,
            "reason": untestable}


def zeroflow_memory(ratio_to_fo: Mapping[str, float], reported: float = 2.41 / 12.08) -> list[Verdict]:
    """ZeroFlow's memory headline (12.08 GB FO vs 2.41 GB ZO): each member's step peak over FO's is at
    most the reported ratio. Deterministic (bytes)."""
    return [exact(f"ZeroFlow {m} needs at most {reported:.2f} of FO's memory, step peak / FO",
                  f"2.41 GB vs 12.08 GB FO ({reported:.2f})", "reported ratio", reported, m, r)
            for m, r in ratio_to_fo.items()]


# --------------------------------------------------------------------------- notebook 04


def gradient_variance(per_run: Sequence[Mapping[str, Mapping[str, float]]]) -> list[Verdict]:
    """Notebook 04 over the paper's 5-run design: ``per_run[i] = {"vision": stats, "language": stats}``
    with each branch's median ``rel_variance``, ``ratio`` (relative variance / (d + 1)) and ``cosine``.
    Runs are paired (same model, batch and warm-up within a run)."""
    def of(branch: str, key: str) -> dict[int, float]:
        return {i: float(r[branch][key]) for i, r in enumerate(per_run)}
    claim = "Vision ZO estimates are noisier than language ones"
    return [
        above(f"{claim}: relative variance per unit (median)", "vision variance higher (figure, 5 runs)",
              "vision", of("vision", "rel_variance"), "language", of("language", "rel_variance")),
        above(f"{claim}: cosine to the true gradient (lower is noisier)", "vision variance higher (5 runs)",
              "language", of("language", "cosine"), "vision", of("vision", "cosine")),
        above(f"{claim} beyond their dimension: relative variance / (d + 1)", "a rougher vision landscape (text)",
              "vision", of("vision", "ratio"), "language", of("language", "ratio")),
    ]


# --------------------------------------------------------------------------- notebook 06


def exact(claim: str, reported: str, a_name: str, a: float, b_name: str, b: float) -> Verdict:
    """A deterministic comparison "a is above b" (bytes): agrees or disagrees by the numbers."""
    return Verdict(claim, reported, f"{a_name} {a:.4g} vs {b_name} {b:.4g} (deterministic: bytes do not vary "
                   f"with the seed)", "agrees" if a > b else "disagrees", mean_diff=a - b)


def memory(ratio_to_fo: Mapping[str, float], adapter: str = "moe", context: str = "") -> list[Verdict]:
    """Notebook 06, over peak memory / FO's of ``dual``, ``vision`` and ``language`` with ``adapter``."""
    rep = paper.memory_ratios(adapter)
    r = ratio_to_fo
    where = f" ({adapter}{', ' + context if context else ''})"
    return [
        exact(f"Dual ZO needs the least memory, peak / FO{where}", f"Dual {rep['dual']:.3f} of FO",
              "the least of Vision and Language", min(r["vision"], r["language"]), "Dual", r["dual"]),
        exact(f"Vision-ZO needs less memory than Language-ZO, peak / FO{where}",
              f"Vision {rep['vision']:.3f}, Language {rep['language']:.3f} of FO", "Language", r["language"],
              "Vision", r["vision"]),
    ]


def frame(verdicts: Sequence[Verdict]):
    """The verdicts as a pandas DataFrame, one row per claim."""
    import pandas as pd
    return pd.DataFrame([{"verdict": v.verdict, "point": v.regime, "claim": v.claim,
                          "ZO runs": "; ".join(f"{l}: {st}" for l, st in v.states.items()), "reported": v.reported,
                          "measured": v.measured, "why not testable": v.reason} for v in verdicts])


def as_records(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """The verdicts as plain dicts, for a results JSON (per-seed values and intervals included)."""
    return [asdict(v) for v in verdicts]
