"""The paper's claims, checked against what a notebook measured: one verdict per claim.

Every notebook from 01 on ends with a table of these verdicts, so that where our runs disagree
with the paper the notebook says so plainly, computed from this run's numbers rather than from
prose written for one profile. The reported side of each claim comes from :mod:`zolib.paper`
(numbers as reported, never computed here).

A claim compares two measured numbers, "a is above b". Its verdict is

- ``agrees``: a is above b by more than ``tie``;
- ``disagrees``: a is below b by more than ``tie``;
- ``tie``: they differ by at most ``tie`` (default :data:`TIE` = 0.2 accuracy points, two test
  images in a thousand), so the run cannot tell;
- ``not significant``: for the statistical claims of notebook 04, the direction agrees but the
  test's p-value is not below 0.05.

With one seed a difference of a few tenths of a point is within seed-to-seed noise: the paper
profile runs 5 seeds (notebooks 02-05 show the standard deviation).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import mean
from typing import Any, Mapping

from . import paper

TIE = 0.2
VERDICTS = ("agrees", "disagrees", "tie", "not significant")
Scores = Mapping[str, float]  # {"last": ..., "avg": ...}


@dataclass(frozen=True)
class Verdict:
    """One claim of the paper, what it reports, what we measured, and whether they agree."""

    claim: str
    reported: str
    measured: str
    verdict: str

    def line(self) -> str:
        return f"{self.verdict.upper()}: {self.claim} | paper: {self.reported} | ours: {self.measured}"


def above(claim: str, reported: str, a_name: str, a: float, b_name: str, b: float, tie: float = TIE) -> Verdict:
    """The verdict on "``a`` is above ``b``" (see the module docstring)."""
    diff = a - b
    verdict = "tie" if abs(diff) <= tie + 1e-9 else ("agrees" if diff > 0 else "disagrees")
    return Verdict(claim, reported, f"{a_name} {a:.4g} vs {b_name} {b:.4g} ({diff:+.3g})", verdict)


def significant(verdict: Verdict, p_value: float, alpha: float = 0.05) -> Verdict:
    """``verdict`` with a test's p-value added: an agreement with ``p >= alpha`` is ``not significant``."""
    measured = f"{verdict.measured}, p = {p_value:.3g}"
    agrees = verdict.verdict == "agrees"
    return Verdict(verdict.claim, verdict.reported, measured,
                   "not significant" if agrees and p_value >= alpha else verdict.verdict)


def _reported_delta(method: str, metric: str) -> str:
    return f"{paper.mean_delta_vs_fo(method, metric):+.1f} points vs FO (mean of the reported rows)"


def naive_full_zo(fo: Scores, dual: Scores, sweep: Mapping[float, Mapping[str, Scores]]) -> list[Verdict]:
    """Notebook 01: Dual ZO falls below FO, and the aggressive rule (ZO*) is the unstable one.

    ``dual``: conservative Dual ZO at the harness's step size; ``sweep``: ``{zo_lr: {"aggressive":
    scores, "conservative": scores}}`` over ZO step sizes, a diverged run's Last being NaN.
    "Unstable" is read as: the worst Last of ZO* over the step sizes is below the worst Last of
    conservative ZO, a divergence (NaN loss) counting as the worst of all.
    """
    out = [above(f"Dual ZO is below FO in {m.capitalize()}", _reported_delta("dual", m),
                 "FO", fo[m], "Dual", dual[m]) for m in ("last", "avg")]
    claim = "Aggressive ZO* is less stable than conservative ZO: lower worst Last over the ZO step sizes"
    reported = f"ZO* oscillates and is the worst variant (Dual ZO* {paper.ABLATION['dual aggressive (ZO*)']} Last)"
    worst = {}
    for rule in ("aggressive", "conservative"):
        lr = min(sweep, key=lambda lr: -math.inf if math.isnan(sweep[lr][rule]["last"]) else sweep[lr][rule]["last"])
        worst[rule] = (lr, sweep[lr][rule]["last"])
    (lr_a, zo_star), (lr_c, cons) = worst["aggressive"], worst["conservative"]
    if math.isnan(zo_star) or math.isnan(cons):
        def say(name, lr, value):
            return f"{name} diverged (NaN loss) at zo_lr {lr:g}" if math.isnan(value) else \
                f"{name}'s worst Last {value:.4g} at zo_lr {lr:g}"
        verdict = "tie" if math.isnan(zo_star) and math.isnan(cons) else ("agrees" if math.isnan(zo_star) else "disagrees")
        out.append(Verdict(claim, reported, f"{say('ZO*', lr_a, zo_star)}; {say('conservative', lr_c, cons)}", verdict))
    else:
        out.append(above(claim, reported, f"conservative (worst at zo_lr {lr_c:g})", cons,
                         f"ZO* (worst at zo_lr {lr_a:g})", zo_star))
    return out


def branch_wise(scores: Mapping[str, Scores]) -> list[Verdict]:
    """Notebook 02, over ``scores`` of ``fo``, ``dual``, ``vision`` and ``language`` (Last).

    "About as good as FO" is read as: the better single-branch assignment recovers at least
    half of what Dual loses against FO.
    """
    last = {m: s["last"] for m, s in scores.items()}
    others = min(last["fo"], last["vision"], last["language"])
    best = max(("vision", "language"), key=last.get)
    midpoint = last["dual"] + 0.5 * (last["fo"] - last["dual"])
    return [
        above("Dual is the worst of FO, Dual, Vision and Language (Last)",
              f"Dual {_reported_delta('dual', 'last')}", "the worst of the others", others, "Dual", last["dual"]),
        above("Language-ZO beats Vision-ZO (Last)",
              f"Language {_reported_delta('language', 'last')}, Vision {_reported_delta('vision', 'last')}",
              "Language", last["language"], "Vision", last["vision"]),
        above("Single-branch ZO is about as good as FO: the better one recovers at least half of Dual's loss (Last)",
              f"Language {_reported_delta('language', 'last')}", f"best single branch ({best})", last[best],
              "midpoint of Dual and FO", midpoint),
    ]


def layer_wise(scores: Mapping[str, Scores]) -> list[Verdict]:
    """Notebook 03, over ``scores`` of ``fo`` and layer-wise methods (``hop-*``, ``prefix*``, ``suffix*``)."""
    hop = [s for m, s in scores.items() if m.startswith("hop")]
    block = [s for m, s in scores.items() if m.startswith(("prefix", "suffix"))]
    layered = {m: s for m, s in scores.items() if m != "fo"}
    best = max(layered, key=lambda m: layered[m]["last"])
    best_reported = paper.BRANCH_WISE[("CIFAR Inc10", "last")]
    out = [above(f"Interleaved (Hop) beats consecutive (Prefix/Suffix) layers, mean {m.capitalize()}",
                 "interleaved better (text, no table)", "Hop mean", mean(s[m] for s in hop),
                 "Prefix/Suffix mean", mean(s[m] for s in block)) for m in ("last", "avg")]
    out.append(above("The best layer-wise configuration beats FO (Last)",
                     f"CIFAR Inc10: {best_reported['best_layerwise_method']} {best_reported['best_layerwise']} "
                     f"vs FO {best_reported['fo']}", f"best ({best})", layered[best]["last"], "FO",
                     scores["fo"]["last"]))
    return out


def mozo(aggressive: Scores, conservative: Scores, sign: Scores, base: Scores, mozo: Scores) -> list[Verdict]:
    """Notebook 05: the ablation order (ZO* < conservative < + sign) and MoZO over its Hop-even base."""
    def gains(metric: str) -> str:
        g = [after - before for (_, m), (before, after) in paper.MOZO.items() if m == metric]
        return f"{min(g):+.2f} to {max(g):+.2f} points over the Hop-even base (reported rows)"
    return [
        above("Conservative ZO beats aggressive ZO* (Dual, Last)", paper.ABLATION_ORDER,
              "conservative", conservative["last"], "ZO*", aggressive["last"]),
        above("Sign normalisation improves conservative ZO (Dual, Last)", paper.ABLATION_ORDER,
              "+ sign", sign["last"], "conservative", conservative["last"]),
        *[above(f"MoZO beats its Hop-even base ({m.capitalize()})", gains(m), "MoZO", mozo[m], "Hop-even base", base[m])
          for m in ("last", "avg")],
    ]


def gradient_variance(vision: Mapping[str, float], language: Mapping[str, float],
                      p_values: Mapping[str, float]) -> list[Verdict]:
    """Notebook 04: the vision estimate is noisier than the language one.

    ``vision`` and ``language`` hold the median ``rel_variance``, ``ratio`` (relative variance
    over its theory d + 1) and ``cosine``; ``p_values`` the Mann-Whitney p of each.
    """
    claim = "Vision ZO estimates are noisier than language ones"
    return [
        significant(above(f"{claim}: relative variance per unit", "vision variance higher (figure)",
                          "vision", vision["rel_variance"], "language", language["rel_variance"], tie=0),
                    p_values["rel_variance"]),
        significant(above(f"{claim}: cosine to the true gradient (lower is noisier)", "vision variance higher",
                          "language", language["cosine"], "vision", vision["cosine"], tie=0), p_values["cosine"]),
        significant(above(f"{claim} beyond their dimension: relative variance / (d + 1)",
                          "a rougher vision landscape (text)", "vision", vision["ratio"], "language",
                          language["ratio"], tie=0), p_values["ratio"]),
    ]


def memory(ratio_to_fo: Mapping[str, float], adapter: str = "moe", context: str = "") -> list[Verdict]:
    """Notebook 06, over peak memory / FO's of ``dual``, ``vision`` and ``language`` with
    ``adapter`` (moe | lora); ``context`` (model, batch) goes into the claim's text."""
    rep = paper.memory_ratios(adapter)
    r = ratio_to_fo
    where = f" ({adapter}{', ' + context if context else ''})"
    return [
        above(f"Dual ZO needs the least memory, peak / FO{where}", f"Dual {rep['dual']:.3f} of FO",
              "the least of Vision and Language", min(r["vision"], r["language"]), "Dual", r["dual"], tie=0.005),
        above(f"Vision-ZO needs less memory than Language-ZO, peak / FO{where}",
              f"Vision {rep['vision']:.3f}, Language {rep['language']:.3f} of FO",
              "Language", r["language"], "Vision", r["vision"], tie=0.005),
    ]


def scores(table, key: str = "method") -> dict[str, dict[str, float]]:
    """Mean Last and Avg per ``key`` (a column of :meth:`zolib.nb.Session.summary`'s table),
    over its benchmarks: ``{key value: {"last": ..., "avg": ...}}``."""
    means = table.groupby(key)[["last", "avg"]].mean()
    return {k: {"last": float(r["last"]), "avg": float(r["avg"])} for k, r in means.iterrows()}


def frame(verdicts: list[Verdict]):
    """The verdicts as a pandas DataFrame, one row per claim."""
    import pandas as pd
    return pd.DataFrame([asdict(v) for v in verdicts], columns=["verdict", "claim", "reported", "measured"])


def as_records(verdicts: list[Verdict]) -> list[dict[str, Any]]:
    """The verdicts as plain dicts, for a results JSON."""
    return [asdict(v) for v in verdicts]
