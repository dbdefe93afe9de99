"""One report of every verdict: ``figures/<profile>/CLAIMS.md``, written by ``zolib notebooks``.

It reads the results JSON of every notebook of the profile (each notebook records its verdicts,
:meth:`zolib.nb.Session.check`) and answers, on one page, which of the paper's claims hold and where:

- a summary: each claim at its **decisive point**, the point of the claim map where every ZO run it
  rests on acts and holds (:func:`zolib.analysis.dynamics.state`), the calibrated one first, then the
  one with the most seeds; where no point of the grid is such a point, it says so and shows what the
  runs did instead;
- every claim at every point: verdict, mean difference, 95% interval, p, seeds, the effect its seeds
  could have detected, the state of its ZO runs, the reason where it could not be tested, and the
  paper's reported number beside ours;
- the calibrated step of every configuration at each budget, and whether it qualified;
- the claim map of the whole profile as one figure (``claim_map[_synthetic].png``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

from .analysis.dynamics import HOLDS
from .cl.diagnostics import ZO_ACTED
from .cl.profiles import get_profile
from .plotting import FIGURES, claim_map, savefig, title

PAPER_CLAIMS = {  # notebook -> the paper's claim it checks
    "01_naive_full_zo": "Claim 1: naive full (Dual) ZO loses against FO, the aggressive rule most",
    "02_branch_wise": "Claim 2: single-branch ZO is about as good as FO, Language-ZO best",
    "03_layer_wise": "Claim 3: interleaved (Hop) layer-wise ZO beats consecutive, the best beats FO",
    "04_gradient_variance": "Claim 4: vision ZO estimates are noisier than language ones",
    "05_mozo": "Claim 5 and the ablation: conservative, sign and modality eps each help; MoZO beats its base",
    "06_memory": "Claim 6: ZO saves memory, Dual the most",
    "07_peers": "Beyond the paper: the peers' own claims (ZO-FC, SharpZO, ZeroFlow)",
}


def _num(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:+.{digits}f}" if abs(x) >= 0.1 or x == 0 else f"{x:+.3g}"


def _states(c: dict) -> str:
    return "; ".join(f"{l}: {s}" for l, s in (c.get("states") or {}).items()) or "-"


def decisive(records: list[dict]) -> dict | None:
    """The verdict of one claim at its decisive point (see the module docstring), or None."""
    judged = [c for c in records if c.get("states") and all(s == HOLDS for s in c["states"].values())]
    if not judged:
        return None
    return max(judged, key=lambda c: (c["regime"].startswith("calibrated"), c.get("seeds") or 0))


def load(profile: str, folder: Path | None = None) -> dict[str, dict]:
    """The results JSON of every notebook of ``profile`` that has one, by notebook stem."""
    folder = folder or FIGURES / profile
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("[0-9][0-9]_*.json"))}


def _row(c: dict, point: bool = True) -> str:
    ci = c.get("ci") or [None, None]
    cells = ([c["regime"] or "-"] if point else []) + [
        f"**{c['verdict']}**", _num(c.get("mean_diff")), f"[{_num(ci[0])}, {_num(ci[1])}]",
        "-" if c.get("p_value") is None else f"{c['p_value']:.3g}", str(c.get("seeds") or len(c.get("per_seed", {}).get("seeds", []))),
        _num(c.get("detectable")) if c.get("detectable") is not None else "-", _states(c),
        (c.get("reason") or "").replace("|", "/"), c["reported"].replace("|", "/")]
    return "| " + " | ".join(cells) + " |"


def write(profile: str, folder: Path | None = None) -> Path:
    """Write ``CLAIMS.md`` and the profile's claim-map figure into ``figures/<profile>/``; returns the page."""
    folder = Path(folder or FIGURES / profile)
    results = load(profile, folder)
    any_result = next(iter(results.values()), {})
    synthetic = get_profile(profile).benchmarks == ("synthetic",)
    lines = [f"# Which of the paper's claims hold, and where: the `{profile}` profile"
             + (" (SYNTHETIC data)" if synthetic else ""), ""]
    commit = any_result.get("git_commit", "unknown")
    lines += [f"Written by `zolib notebooks --profile {profile}` from the notebooks' results JSONs (git commit "
              f"`{commit}`). Every number below was computed by the notebooks; the paper's numbers, in the last "
              "column, are as reported (`zolib.paper`).", "",
              "How to read it. A claim about ZO is checked at every point of its notebook's claim map: a ZO step "
              "(`zo_lr`, or the calibrated one) and a training budget (epochs per task). Its verdict compares seeds "
              "paired: the mean difference, its 95% paired t interval, the paired t-test's p. *agrees* / *disagrees*: "
              "the interval excludes 0; *inconclusive*: it does not, and *detectable* is the smallest difference those "
              "seeds would have found with 80% power; *not testable here*: a ZO run it rests on did not act (reverting "
              f"its ZO units changes fewer than {ZO_ACTED:.0%} of test predictions). The state of each ZO run: *inert*, "
              "*acts and holds*, or *collapses* (diverged, or Last more than a point below the frozen model's, or a hybrid's ZO "
              "units undid more than half of what its FO units gained alone). A claim is judged at its **decisive "
              "point**, where every ZO run it rests on acts and holds.", ""]
    records = [(stem, c) for stem, r in results.items() for c in r.get("results", {}).get("claims", [])]
    lines += ["## Summary: each claim at its decisive point", "",
              "| notebook | claim | decisive point | verdict | difference | 95% CI | p | seeds | detectable | ZO runs | "
              "why not testable | paper |", "|" + "---|" * 12]
    for stem, claim in _claims(records):
        mine = [c for s, c in records if s == stem and c["claim"] == claim]
        best = decisive(mine)
        if best is None:
            zo = [c for c in mine if c.get("states")]
            seen = sorted({s for c in zo for s in c["states"].values()}) if zo else []
            if zo:
                lines.append(f"| {stem[:2]} | {claim} | none: at no point of the grid do all its ZO runs act and hold "
                             f"(states seen: {', '.join(seen)}) | | | | | | | | | {mine[0]['reported']} |")
            else:
                lines.append(f"| {stem[:2]} | {claim} | " + _row(mine[-1])[2:])
        else:
            lines.append(f"| {stem[:2]} | {claim} | " + _row(best)[2:])
    lines.append("")
    for stem, result in results.items():
        mine = [c for s, c in records if s == stem]
        if not mine:
            continue
        lines += [f"## {PAPER_CLAIMS.get(stem, stem)}", "",
                  f"Notebook `{stem}`; figure `{stem[:2]}_claim_map{'_synthetic' if synthetic else ''}.png` shows every "
                  "claim below at every point.", ""]
        for claim in dict.fromkeys(c["claim"] for c in mine):
            lines += [f"### {claim}", "", "| point | verdict | difference | 95% CI | p | seeds | detectable | ZO runs | "
                      "why not testable | paper |", "|" + "---|" * 10]
            lines += [_row(c) for c in mine if c["claim"] == claim]
            lines.append("")
        cal = result.get("results", {}).get("calibration") or []
        if cal:
            lines += ["Calibrated steps (`zolib.cl.calibration`: the first 3 tasks, held-out images):", "",
                      "| configuration | chosen zo_lr | qualified | why not |", "|---|---|---|---|"]
            lines += [f"| {r['label']} | {r['chosen zo_lr']:g} | {'yes' if r['qualified'] else 'no'} | "
                      f"{(r.get('why not') or '').replace('|', '/')} |" for r in cal]
            lines.append("")
    page = folder / "CLAIMS.md"
    page.write_text("\n".join(lines) + "\n")
    if records:
        fig = claim_map([{**c, "claim": f"{stem[:2]}: {c['claim']}"} for stem, c in records])
        fig.suptitle(title("Every claim at every point of the claim map", profile, synthetic), fontsize=9)
        savefig(fig, "claim_map", profile, synthetic, folder)
    return page


def _claims(records: Iterable[tuple[str, dict]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys((stem, c["claim"]) for stem, c in records))
