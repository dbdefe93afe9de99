"""The paper's claims checked on measured numbers: verdicts on hand-made inputs."""
import pandas as pd
import pytest

from zolib import claims


def s(last: float, avg: float | None = None) -> dict:
    return {"last": last, "avg": last if avg is None else avg}


def verdicts(vs: list[claims.Verdict]) -> list[str]:
    return [v.verdict for v in vs]


def test_above_gives_agrees_disagrees_and_tie_within_the_tolerance():
    assert claims.above("c", "r", "a", 50.0, "b", 40.0).verdict == "agrees"
    assert claims.above("c", "r", "a", 40.0, "b", 50.0).verdict == "disagrees"
    assert claims.above("c", "r", "a", 25.1, "b", 25.0).verdict == "tie", "one test image in a thousand"
    assert claims.above("c", "r", "a", 40.0, "b", 40.2).verdict == "tie"
    v = claims.above("c", "r", "a", 40.5, "b", 40.0)
    assert v.verdict == "agrees" and "(+0.5)" in v.measured and v.line().startswith("AGREES: c")


def test_significance_turns_a_weak_agreement_into_not_significant_only():
    agree = claims.above("c", "r", "a", 2.0, "b", 1.0, tie=0)
    assert claims.significant(agree, 0.01).verdict == "agrees"
    assert claims.significant(agree, 0.2).verdict == "not significant"
    disagree = claims.above("c", "r", "a", 1.0, "b", 2.0, tie=0)
    assert claims.significant(disagree, 0.2).verdict == "disagrees"


def test_naive_full_zo_reads_instability_as_the_worst_last_over_step_sizes():
    sweep = {0.001: {"aggressive": s(25.0), "conservative": s(25.0)},
             0.1: {"aggressive": s(1.0), "conservative": s(22.8)}}
    out = claims.naive_full_zo(fo=s(42.6, 45.9), dual=s(25.0, 36.0), sweep=sweep)
    assert verdicts(out) == ["agrees", "agrees", "agrees"]
    assert "zo_lr 0.1" in out[2].measured
    nan = float("nan")
    diverged = {0.001: {"aggressive": s(25.0), "conservative": s(25.0)},
                0.1: {"aggressive": s(nan), "conservative": s(24.0)}}
    v = claims.naive_full_zo(s(42.6), s(25.0), diverged)[2]
    assert v.verdict == "agrees" and "ZO* diverged (NaN loss) at zo_lr 0.1" in v.measured
    calm = {0.001: {"aggressive": s(25.0), "conservative": s(25.0)}}
    assert verdicts(claims.naive_full_zo(s(42.6), s(25.0), calm))[2] == "tie"


def test_branch_wise_on_the_papers_own_cifar_row_agrees_everywhere():
    row = {m: s(v) for m, v in {"fo": 80.47, "dual": 69.29, "vision": 76.05, "language": 80.94}.items()}
    assert verdicts(claims.branch_wise(row)) == ["agrees"] * 3
    swapped = dict(row, vision=s(80.94), language=s(76.05))
    assert verdicts(claims.branch_wise(swapped))[1] == "disagrees"


def test_layer_wise_compares_the_means_of_interleaved_and_consecutive():
    scores = {"fo": s(40.0), "hop-odd-vision": s(41.0), "hop-even-vision": s(39.0),
              "prefix6-vision": s(38.0), "suffix6-vision": s(36.0)}
    hop_vs_block_last, hop_vs_block_avg, best_vs_fo = claims.layer_wise(scores)
    assert hop_vs_block_last.verdict == "agrees" and "Hop mean 40" in hop_vs_block_last.measured
    assert best_vs_fo.verdict == "agrees" and "hop-odd-vision" in best_vs_fo.measured


def test_mozo_ablation_ties_when_nothing_moves():
    flat = s(26.3)
    out = claims.mozo(aggressive=flat, conservative=flat, sign=flat, base=s(36.9), mozo=s(36.9, 43.63))
    assert verdicts(out)[:3] == ["tie", "tie", "tie"]


def test_memory_claims_use_ratios_to_fo():
    out = claims.memory({"dual": 0.05, "vision": 0.6, "language": 0.4}, "moe", context="tiny, batch 4")
    assert verdicts(out) == ["agrees", "disagrees"] and "tiny, batch 4" in out[0].claim


def test_gradient_variance_needs_direction_and_significance():
    vision = {"rel_variance": 6000.0, "ratio": 0.8, "cosine": 0.008}
    language = {"rel_variance": 4000.0, "ratio": 0.9, "cosine": 0.009}
    out = claims.gradient_variance(vision, language, {"rel_variance": 0.03, "cosine": 0.16, "ratio": 0.98})
    assert verdicts(out) == ["agrees", "not significant", "disagrees"]


def test_scores_average_a_summary_table_over_benchmarks():
    table = pd.DataFrame({"benchmark": ["a", "b", "a"], "method": ["fo", "fo", "dual"],
                          "last": [40.0, 50.0, 30.0], "avg": [41.0, 51.0, 31.0]})
    assert claims.scores(table) == {"dual": {"last": 30.0, "avg": 31.0}, "fo": {"last": 45.0, "avg": 46.0}}


@pytest.mark.parametrize("verdict", claims.VERDICTS)
def test_frame_keeps_every_verdict_kind(verdict):
    df = claims.frame([claims.Verdict("c", "r", "m", verdict)])
    assert list(df.columns) == ["verdict", "claim", "reported", "measured"] and df.verdict[0] == verdict
