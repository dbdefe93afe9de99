"""Verdicts over seeds: paired differences, intervals, tests and testability, on hand-made seeds."""
import math

import pytest

from zolib import claims
from zolib.analysis.stats import paired


def run(last: float, avg: float | None = None, flips: float | None = None, diverged: bool = False) -> dict:
    """A hand-made result: Last/Avg, and for a ZO run the share of predictions its ZO units changed."""
    return {"last": None if diverged else last, "avg": None if diverged else (last if avg is None else avg),
            "zo_effect": None if flips is None else {"flip_rate": flips}, "diverged": "nan" if diverged else None}


def seeds(*lasts, flips=None) -> dict:
    return {s: run(x, flips=flips) for s, x in enumerate(lasts)}


def test_paired_difference_interval_and_t_test():
    p = paired({0: 50.0, 1: 52.0, 2: 49.0, 3: 51.0}, {0: 48.0, 1: 50.5, 2: 47.2, 3: 49.1})
    assert p.n == 4 and p.mean_diff == pytest.approx(1.8)
    assert 0 < p.ci_low <= p.mean_diff <= p.ci_high and p.p_value < 0.01
    assert p.diffs == pytest.approx((2.0, 1.5, 1.8, 1.9))
    same = paired({0: 40.0, 1: 41.0}, {0: 40.0, 1: 41.0})
    assert same.mean_diff == 0 and same.p_value == 1.0 and (same.ci_low, same.ci_high) == (0.0, 0.0)
    one = paired({0: 40.0}, {0: 39.0})
    assert one.n == 1 and math.isnan(one.ci_low) and math.isnan(one.p_value)
    assert paired({0: 1.0, 1: 2.0, 5: 3.0}, {0: 0.0, 1: 0.0}).seeds == (0, 1), "only seeds both have"


def test_verdict_needs_the_t_interval_to_exclude_zero_and_says_what_the_seeds_could_detect():
    clear = claims.above("c", "r", "a", {0: 50.0, 1: 52.0, 2: 49.0, 3: 51.0}, "b", {0: 48.0, 1: 50.5, 2: 47.2, 3: 49.1})
    assert clear.verdict == "agrees" and "95% CI" in clear.measured and "4 seeds" in clear.measured
    flipped = claims.above("c", "r", "b", {0: 48.0, 1: 50.5, 2: 47.2, 3: 49.1}, "a", {0: 50.0, 1: 52.0, 2: 49.0, 3: 51.0})
    assert flipped.verdict == "disagrees"
    noisy = claims.above("c", "r", "a", {0: 50.0, 1: 47.0, 2: 53.0}, "b", {0: 49.0, 1: 49.0, 2: 49.0})
    assert noisy.verdict == "inconclusive" and noisy.detectable > 5 and "could detect a difference of" in noisy.measured
    # three seeds all positive: the old percentile bootstrap excluded 0 here; the t interval does not (p = 0.08)
    weak = claims.above("c", "r", "a", {0: 1.0, 1: 2.0, 2: 6.0}, "b", {0: 0.0, 1: 0.0, 2: 0.0})
    assert weak.ci[0] < 0 < weak.ci[1] and weak.p_value > 0.05 and weak.verdict == "inconclusive"
    assert claims.above("c", "r", "a", {0: 50.0}, "b", {0: 40.0}).verdict == "one seed: no interval"
    v = claims.above("c", "r", "a", {0: 1.0, 1: 2.0}, "b", {0: 0.0, 1: math.nan})
    assert v.verdict == "inconclusive", "a diverged seed leaves no interval"
    shift = claims.above("c", "r", "a", {0: 21.0, 1: 23.0}, "b", {0: 20.0 + 2 / 3, 1: 22.0 + 2 / 3})
    assert shift.verdict == "inconclusive" and "same difference in every seed" in shift.measured


def test_small_values_keep_their_digits():
    v = claims.above("cosine", "r", "language", {0: 0.0102, 1: 0.0102}, "vision", {0: 0.0077, 1: 0.0077})
    assert "0.0102" in v.measured and "0.0077" in v.measured and "+0.0025" in v.measured, "not 0.01 vs 0.01"
    assert claims.fmt(1.234) == "+1.23" and claims.fmt(0.0025) == "+0.0025"


def test_a_zo_claim_is_not_testable_when_its_zo_units_did_not_act():
    inert = seeds(40.0, 41.0, 39.0, flips=0.002)
    acting = seeds(30.0, 31.0, 29.0, flips=0.4)
    fo = seeds(50.0, 52.0, 49.0)
    v = claims.above("Dual below FO", "r", "FO", claims.metric(fo, "last"), "Dual", claims.metric(inert, "last"),
                     {"Dual": inert})
    assert v.verdict == "not testable here" and "0.20% of test predictions" in v.reason
    assert "NOT TESTABLE HERE" in v.line() and v.reason in v.line()
    assert claims.above("c", "r", "FO", claims.metric(fo, "last"), "Dual", claims.metric(acting, "last"),
                        {"Dual": acting}).verdict == "agrees"
    assert claims.zo_untestable({"control": seeds(1.0, 2.0)}).startswith("control: its ZO units never moved")
    assert claims.zo_untestable({"diverged": {0: run(0, diverged=True)}}) == "", "a diverged run acted"
    borderline = {0: run(1, flips=0.005), 1: run(1, flips=0.02), 2: run(1, flips=0.03)}
    assert claims.zo_untestable({"x": borderline}) == "", "the median over seeds counts"


def test_naive_full_zo_reads_instability_as_the_worst_last_over_step_sizes():
    runs = {"FO": seeds(50.0, 52.0, 49.0), "frozen": seeds(25.0, 25.5, 24.5),
            "cons 0.001": seeds(25.0, 25.5, 24.5, flips=0.001), "star 0.001": seeds(25.0, 25.5, 24.5, flips=0.001),
            "cons 0.1": seeds(28.0, 29.5, 27.0, flips=0.3),
            "star 0.1": {0: run(0, diverged=True), 1: run(5.0, flips=0.9), 2: run(3.0, flips=0.9)}}
    sweep = {0.001: {"aggressive": "star 0.001", "conservative": "cons 0.001"},
             0.1: {"aggressive": "star 0.1", "conservative": "cons 0.1"}}
    literal = claims.naive_full_zo(runs, "FO", "frozen", "cons 0.001", "zo_lr 0.001, 1 epoch")
    assert [v.verdict for v in literal] == ["not testable here"] * 3
    stable = claims.stability(runs, sweep, "fixed steps, 1 epoch")
    assert stable[0].verdict == "agrees"
    assert stable[0].per_seed["b"] == [claims.CHANCE, 5.0, 3.0], "a divergence counts as a collapse (chance), not 0"
    states = {"cons 0.1": "acts and holds"}
    at_01 = claims.naive_full_zo(runs, "FO", "frozen", "cons 0.1", "zo_lr 0.1, 1 epoch", states=states)
    assert [v.verdict for v in at_01] == ["agrees", "agrees", "agrees"] and at_01[0].regime == "zo_lr 0.1, 1 epoch"
    assert at_01[0].states == {"cons 0.1": "acts and holds"}


def test_branch_wise_on_the_papers_own_ordering_agrees_and_asks_about_controls():
    def moving(*lasts):
        return seeds(*lasts, flips=0.2)
    runs = {"fo": seeds(80.5, 80.0, 81.0), "dual": moving(69.3, 69.0, 70.0), "vision": moving(76.0, 75.5, 76.9),
            "language": moving(80.9, 81.0, 81.4), "vision-control": seeds(74.0, 73.1, 74.2),
            "language-control": seeds(81.0, 80.9, 81.5)}
    out = claims.branch_wise(runs, "calibrated, 1 epoch", controls={"vision": "vision-control",
                                                                    "language": "language-control"})
    assert [v.verdict for v in out[:3]] == ["agrees", "agrees", "agrees"]
    assert out[3].verdict == "agrees" and "Vision-ZO beats its control" in out[3].claim
    assert out[4].verdict == "inconclusive"


def test_layer_wise_compares_hop_with_prefix_suffix_means_and_controls():
    from zolib.optim import methods
    names = ["hop-odd-vision", "hop-even-vision", "prefix6-vision", "suffix6-vision"]
    lasts = {"hop-odd-vision": (41.0, 42.0, 40.5), "hop-even-vision": (40.0, 40.5, 39.5),
             "prefix6-vision": (38.0, 38.5, 37.0), "suffix6-vision": (36.0, 37.0, 35.5)}
    runs = {"fo": seeds(40.0, 40.4, 39.2), **{n: seeds(*v, flips=0.1) for n, v in lasts.items()},
            **{f"{n}-control": seeds(*(x - d for x, d in zip(v, (0.4, 0.6, 0.5)))) for n, v in lasts.items()}}
    out = claims.layer_wise(runs, {n: methods.parse(n) for n in names}, "calibrated",
                            controls={n: f"{n}-control" for n in names})
    assert [v.verdict for v in out[:2]] == ["agrees", "agrees"] and "Hop mean" in out[0].measured
    assert "best (hop-odd-vision)" in out[2].measured
    assert out[3].verdict == "agrees" and out[3].mean_diff == pytest.approx(0.5)


def test_pooled_layer_wise_claims_judge_the_configurations_that_acted_and_name_the_others():
    from zolib.optim import methods
    names = ["hop-odd-vision", "prefix6-vision", "hop-odd-language", "prefix6-language"]
    runs = {"fo": seeds(40.0, 40.4, 39.2),
            "hop-odd-vision": seeds(41.0, 42.0, 40.5, flips=0.1), "prefix6-vision": seeds(38.0, 38.5, 37.0, flips=0.1),
            "hop-odd-language": seeds(39.0, 39.0, 39.0, flips=0.1),
            "prefix6-language": seeds(30.0, 31.0, 29.0, flips=0.007),  # did not act: left out, not a veto
            **{f"{n}-control": seeds(39.0, 39.5, 39.0) for n in names}}
    out = claims.layer_wise(runs, {n: methods.parse(n) for n in names}, "p",
                            controls={n: f"{n}-control" for n in names})
    assert out[0].verdict != "not testable here" and "left out: prefix6-language" in out[0].measured
    assert "prefix6-language" not in out[-1].states and out[-1].verdict != "not testable here"


def test_a_float_tie_does_not_pick_the_best_configuration():
    runs = {"a": seeds(45.06666666666666, 45.0, 45.0, flips=0.005), "b": seeds(45.06666666666667, 45.0, 45.0, flips=0.2)}
    best, note = claims.best_of(runs, ["a", "b"])
    assert best == "b" and "tied" in note, "within a millionth of a point: tied; the one whose ZO units acted wins"
    assert claims.best_of({"a": seeds(45.0, 45.0), "b": seeds(44.0, 44.0)}, ["a", "b"]) == ("a", "")


def test_mozo_ablation_is_not_testable_where_zo_is_inert():
    flat = seeds(26.3, 26.1, 26.4, flips=0.0)
    runs = {k: flat for k in ("a", "c", "s", "m", "base", "mozo")}
    out = claims.mozo(runs, "a", "c", "s", "m", "base", "mozo", "zo_lr 0.001, 1 epoch")
    assert [v.verdict for v in out] == ["not testable here"] * 5


def test_memory_claims_are_exact_comparisons():
    out = claims.memory({"dual": 0.05, "vision": 0.6, "language": 0.4}, "moe", context="tiny, batch 4")
    assert [v.verdict for v in out] == ["agrees", "disagrees"] and "tiny, batch 4" in out[0].claim
    assert "deterministic" in out[0].measured


def test_gradient_variance_pairs_the_runs():
    per_run = [{"vision": {"rel_variance": 6000.0 + 50 * i, "ratio": 0.95 + 0.01 * (i % 2), "cosine": 0.008},
                "language": {"rel_variance": 4000.0 + 40 * i, "ratio": 0.96 - 0.01 * (i % 2), "cosine": 0.0095 + 1e-5 * i}}
               for i in range(5)]
    out = claims.gradient_variance(per_run)
    assert [v.verdict for v in out] == ["agrees", "agrees", "inconclusive"]
    assert out[0].per_seed["seeds"] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("verdict", claims.VERDICTS)
def test_frame_keeps_every_verdict_kind(verdict):
    df = claims.frame([claims.Verdict("c", "r", "m", verdict)])
    assert list(df.columns) == ["verdict", "point", "claim", "ZO runs", "reported", "measured", "why not testable"]
    assert df.verdict[0] == verdict


def test_a_cross_check_of_two_implementations_says_when_it_cannot_tell_anything():
    def runs(lasts, flips):
        return {s: {"last": v, "zo_effect": {"flip_rate": flips}} for s, v in enumerate(lasts)}
    assert claims.cross_check(runs([20, 21, 22], 0.05), runs([20.1, 21.0, 21.9], 0.05))["agree"] == "yes"
    assert claims.cross_check(runs([20, 21, 22], 0.05), runs([25, 26, 27], 0.05))["agree"] == "no"
    frozen_both = claims.cross_check(runs([20, 21, 22], 0.0), runs([20, 21, 22], 0.0))
    assert frozen_both["agree"] == "not testable here" and "below the 1%" in frozen_both["reason"]
    assert claims.cross_check(runs([20], 0.05), runs([20], 0.05))["agree"] == "one seed: no interval"


def test_a_run_of_the_map_is_inert_acts_and_holds_or_collapses():
    from zolib.analysis.dynamics import COLLAPSES, HOLDS, INERT, state
    frozen = seeds(21.0, 21.5, 20.5)
    assert state(seeds(21.0, 21.5, 20.5, flips=0.003), frozen)[0] == INERT
    assert state(seeds(22.0, 22.5, 21.0, flips=0.05), frozen)[0] == HOLDS
    assert state(seeds(5.0, 6.0, 4.0, flips=0.9), frozen)[0] == COLLAPSES, "worse than not training at all"
    assert state({0: run(0, diverged=True), 1: run(22.0, flips=0.05)}, frozen)[0] == COLLAPSES
    control = seeds(41.0, 41.5, 40.5)  # what the FO branch learns alone: +20 over frozen
    assert state(seeds(40.0, 40.0, 40.0, flips=0.05), frozen, control)[0] == HOLDS
    undone = state(seeds(28.0, 28.0, 28.0, flips=0.5), frozen, control)
    assert undone[0] == COLLAPSES and "undid" in undone[1], "the ZO units undid more than half of the FO gain"
