"""Statistics over seeds: paired differences with t intervals, a paired test, and the effect the seeds
could have detected.

Methods are compared **per seed, paired**: in zolib the same seed gives the same initialisation,
the same data order, the same ZO directions and the same dropout masks, so the difference of two
methods on one seed removes most of the seed-to-seed noise (measured on the cpu profile: FO Last
has a standard deviation of 2.5 points over 5 seeds, the paired difference of two methods about 0.4).

- Interval: the 95% **paired t interval** of the mean difference, ``mean +- t(0.975, n - 1) s / sqrt(n)``.
  It keeps its coverage at 3-5 seeds (exactly 95% for normal differences; tests/test_stats.py simulates
  it at 3 and 5 seeds), and it is the interval the paired t-test inverts: it excludes 0 exactly when
  p < 0.05, so interval and test never disagree. The percentile bootstrap zolib used before covers the
  mean only 76.5% of the time at 3 seeds (81.8% at 5; simulated): with 3 seeds it is the [min, max] of
  the differences, which excludes 0 whenever all three share a sign. BCa needs more seeds than 5 to
  estimate its acceleration. Means of single variants (figures' error bars) use the same t interval.
- Test: the paired t-test (``scipy.stats.ttest_rel``, two-sided). Why not Wilcoxon's signed-rank
  test: with 3 to 5 seeds its smallest two-sided p-value is 0.25 (n = 3) or 0.0625 (n = 5), so it
  can never reach 0.05; the t-test's normality assumption is mild for differences of accuracies
  that each average thousands of test images.
- Detectable effect: the smallest true mean difference the paired t-test at the 5% level would find
  with 80% power, given the observed spread of the differences and the number of seeds
  (:func:`detectable_effect`, from the noncentral t distribution). An *inconclusive* verdict states it:
  "the seeds could not have told an effect smaller than X".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

CONFIDENCE = 0.95
ALPHA = 0.05
POWER = 0.8
RESAMPLES = 9999


@dataclass(frozen=True)
class Paired:
    """The paired comparison of ``a`` and ``b`` over the seeds both have (``diff = a - b``)."""

    seeds: tuple[int, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    detectable: float = math.nan
    test: str = "paired t-test"
    interval: str = f"{CONFIDENCE:.0%} paired t interval over seeds"
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def diffs(self) -> tuple[float, ...]:
        return tuple(x - y for x, y in zip(self.a, self.b))


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The t interval of the mean of ``values`` (NaN, NaN with fewer than 2 values or a NaN; the value
    mean, twice, when all are equal: never a bound on the wrong side of the mean by float rounding)."""
    from scipy.stats import t
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.isnan(x).any():
        return math.nan, math.nan
    if constant(x):
        return float(x.mean()), float(x.mean())
    half = float(t.ppf(0.5 + confidence / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()) - half, float(x.mean()) + half


def constant(x: np.ndarray) -> bool:
    """Whether every value equals the first up to float rounding (1e-9 points): accuracies of a finite test
    set often differ by exactly one image in every seed, and a t interval of zero width would be no interval."""
    return bool(np.allclose(x, x[0], rtol=0.0, atol=1e-9))


def bootstrap_ci(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (kept to show why zolib does not use it: with few
    seeds it covers far less than its nominal level; tests/test_stats.py measures it)."""
    from scipy.stats import bootstrap
    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.isnan(x).any():
        return math.nan, math.nan
    if np.all(x == x[0]):
        return float(x[0]), float(x[0])
    res = bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                    random_state=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``values`` with the 95% t interval (figures' error bars, tables)."""
    x = np.asarray(values, dtype=float)
    lo, hi = t_interval(x)
    return float(x.mean()) if len(x) else math.nan, lo, hi


def detectable_effect(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean difference a two-sided paired t-test at level ``alpha`` detects with probability
    ``power`` over ``n`` seeds whose differences have standard deviation ``sd`` (noncentral t; NaN below
    2 seeds, 0 without spread)."""
    from scipy.stats import nct, t
    if n < 2 or not math.isfinite(sd):
        return math.nan
    if sd == 0:
        return 0.0
    df, crit = n - 1, float(t.ppf(1 - alpha / 2, n - 1))

    def enough(ncp: float) -> bool:  # power at this noncentrality reaches the target (NaN far out: it does)
        value = float(nct.sf(crit, df, ncp) + nct.cdf(-crit, df, ncp))
        return not math.isfinite(value) or value >= power

    low, high = 0.0, 1.0
    while not enough(high):
        low, high = high, high * 2
    for _ in range(60):  # bisection on the noncentrality, in units of sd / sqrt(n)
        mid = (low + high) / 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return float(high * sd / math.sqrt(n))


def paired(a: Mapping[int, float], b: Mapping[int, float]) -> Paired:
    """Compare ``a`` and ``b`` (``{seed: value}``) on their common seeds (see the module docstring).

    With one seed, or a NaN value (a diverged run), the interval and p-value are NaN.
    """
    from scipy.stats import ttest_rel
    seeds = tuple(sorted(set(a) & set(b)))
    xa = np.array([a[s] for s in seeds], dtype=float)
    xb = np.array([b[s] for s in seeds], dtype=float)
    d = xa - xb
    mean = float(d.mean()) if len(d) else math.nan
    lo, hi = t_interval(d)
    if len(d) < 2 or np.isnan(d).any():
        p, sd = math.nan, math.nan
    elif constant(d):
        p, sd = (1.0 if abs(d[0]) <= 1e-9 else math.nan), 0.0  # identical runs; or a constant shift: no spread to test
    else:
        p, sd = float(ttest_rel(xa, xb).pvalue), float(d.std(ddof=1))
    return Paired(seeds, tuple(map(float, xa)), tuple(map(float, xb)), mean, lo, hi, p,
                  detectable_effect(sd, len(d)))


def pareto(cost: Sequence[float], value: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both: lower ``cost`` and higher ``value`` (NaN
    points are left out), ordered by cost."""
    pts = [(c, v, i) for i, (c, v) in enumerate(zip(cost, value)) if not (math.isnan(c) or math.isnan(v))]
    front, best = [], -math.inf
    for c, v, i in sorted(pts, key=lambda p: (p[0], -p[1])):
        if v > best:
            front.append(i)
            best = v
    return front
