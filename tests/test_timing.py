"""One statistic for step / forward: the median of paired ratios after a warm-up (zolib.analysis.timing)."""
import pytest

from zolib.analysis import timing


class Clock:
    """A fake ``time.perf_counter``: each call of a timed function advances it by that function's cost."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def cost(self, seconds):
        def fn():
            self.now += seconds.pop(0) if isinstance(seconds, list) else seconds
        return fn


def test_the_ratio_is_the_median_of_back_to_back_pairs_after_the_warm_up(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    # warm-up pair (10 vs 1: excluded), then pairs of ratio 3, 3, and one disturbed pair (9 / 1)
    step = clock.cost([10.0, 3.0, 6.0, 9.0])
    forward = clock.cost([1.0, 1.0, 2.0, 1.0])
    assert timing.paired_ratio(step, forward, repeats=3, warmup=1) == pytest.approx(3.0)
    assert timing.median_time(clock.cost([5.0, 2.0, 4.0, 3.0]), repeats=3, warmup=1) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        timing.paired_ratio(step, forward, repeats=0)
