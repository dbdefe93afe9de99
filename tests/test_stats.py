"""Intervals that mean 95%: checked by simulation at the seed counts the profiles run (3 and 5)."""
import math

import numpy as np
import pytest

from zolib.analysis.stats import bootstrap_ci, detectable_effect, mean_ci, paired, t_interval


def coverage(interval, n: int, draws: int, seed: int = 0) -> float:
    """Share of ``draws`` normal samples of size ``n`` (true mean 1.5, sd 0.7) whose interval holds the mean."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        lo, hi = interval(rng.normal(1.5, 0.7, n))
        hits += lo <= 1.5 <= hi
    return hits / draws


@pytest.mark.parametrize("n", [3, 5])
def test_the_paired_interval_of_a_verdict_covers_the_true_mean_95_percent_of_the_time(n):
    rng = np.random.default_rng(n)
    hits, draws = 0, 1000
    for _ in range(draws):
        b = rng.normal(40.0, 2.5, n)  # seed-to-seed noise of a run, shared by both methods on a seed
        a = b + rng.normal(1.5, 0.7, n)  # the true paired difference is 1.5
        p = paired(dict(enumerate(a)), dict(enumerate(b)))
        hits += p.ci_low <= 1.5 <= p.ci_high
    assert hits / draws >= 0.93


def test_the_percentile_bootstrap_did_not_and_the_t_interval_does():
    assert coverage(bootstrap_ci, 3, 300) < 0.85, "the old interval: [min, max] of three differences"
    assert coverage(t_interval, 3, 2000) == pytest.approx(0.95, abs=0.015)


def test_interval_and_t_test_agree_on_whether_zero_is_excluded():
    rng = np.random.default_rng(1)
    for _ in range(300):
        a, b = rng.normal(0.3, 1, 4), rng.normal(0, 1, 4)
        p = paired(dict(enumerate(a)), dict(enumerate(b)))
        assert (p.p_value < 0.05) == (p.ci_low > 0 or p.ci_high < 0)


def test_the_detectable_effect_is_the_one_found_80_percent_of_the_time():
    sd, n = 0.7, 5
    effect = detectable_effect(sd, n)
    rng = np.random.default_rng(2)
    found = 0
    for _ in range(2000):
        d = rng.normal(effect, sd, n)
        p = paired(dict(enumerate(d)), dict(enumerate(np.zeros(n))))
        found += p.p_value < 0.05
    assert found / 2000 == pytest.approx(0.8, abs=0.03)
    assert detectable_effect(sd, 3) > effect > 0, "fewer seeds detect only larger effects"
    assert math.isnan(detectable_effect(sd, 1)) and detectable_effect(0.0, 4) == 0.0


def test_means_get_the_same_interval():
    mean, lo, hi = mean_ci([3.0, 1.0, 4.0, 1.0, 5.0])
    assert mean == 2.8 and (lo, hi) == pytest.approx(t_interval([3.0, 1.0, 4.0, 1.0, 5.0]))
    assert math.isnan(mean_ci([1.0])[1])


def test_equal_values_get_their_mean_as_both_bounds_never_a_bound_past_the_mean():
    # equal up to float rounding (as accuracies summed in different orders are): the first value is
    # not the mean, and an interval from it would put a bound on the wrong side (negative error bars)
    values = [30.000000000001, 30.0, 30.0]
    mean, lo, hi = mean_ci(values)
    assert lo <= mean <= hi and lo == hi == mean
