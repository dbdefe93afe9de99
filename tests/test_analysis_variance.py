"""The variance of the ZO estimator, as notebooks/04_gradient_variance.ipynb states it.

On a quadratic the theory is exact (zolib/analysis/variance.py): at q = 1 and eps -> 0,
E|g_hat - g|^2 = (d + 1)|g|^2 for Gaussian directions and (d - 1)|g|^2 for Rademacher ones;
the one-sided estimator adds eps^2/4 (d + 4)[(tr A)^2 + 2 tr A^2] and no bias; E cos(g_hat, g)
= Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) ~ sqrt(2 / (pi d)). Sampled means of n estimates
have a relative standard error of about sqrt(2 / n) for the squared error (its relative
spread is about sqrt(2)), so with n = 2000 (3.2%) a 15% tolerance is more than four standard
errors. All seeds are fixed: the tests are deterministic.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zolib.analysis import (compare_branches, estimator_mse, estimator_stats, expected_cosine,
                            quadratic_check, theory_curve, unit_summary, unit_variance)
from zolib.models import (MoEConfig, build_adapted_clip, clip_logits, clip_loss, count_parameters, tokenizer,
                          trainable_units)
from zolib.optim import ZOConfig, zo_gradient
from zolib.optim.directions import mix

N = 2000
DIMS = (10, 100, 1000)


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def gaussian_checks():
    """One-sided Gaussian, eps = 1e-3 (the paper's estimator), N samples for each d."""
    return {d: quadratic_check(d, N, ZOConfig(), seed=d) for d in DIMS}


def test_theory_formulas():
    assert estimator_mse(100, 2.0) == pytest.approx(101 * 2.0)
    assert estimator_mse(100, 2.0, distribution="rademacher", q=4) == pytest.approx(99 * 2.0 / 4)
    np.testing.assert_allclose(estimator_mse(np.array([10, 1000])), [11, 1001])
    # the one-sided eps term for A = I: eps^2/4 E|z|^6 = eps^2/4 d (d + 2)(d + 4); none when two-sided
    d, eps = 20, 0.1
    extra = estimator_mse(d, 0.0, eps=eps, hessian=torch.eye(d, dtype=torch.float64))
    assert extra == pytest.approx(eps ** 2 / 4 * d * (d + 2) * (d + 4))
    assert estimator_mse(d, 0.0, eps=eps, estimator="two-sided", hessian=torch.eye(d, dtype=torch.float64)) == 0
    # E|u_1| on the sphere: 2/pi at d = 2, 1/2 at d = 3, ~ sqrt(2 / (pi d)) for large d
    assert expected_cosine(2) == pytest.approx(2 / math.pi)
    assert expected_cosine(3) == pytest.approx(0.5)
    assert expected_cosine(10 ** 6) == pytest.approx(math.sqrt(2 / (math.pi * 10 ** 6)), rel=1e-5)
    assert expected_cosine(10 ** 6, q=1, distribution="rademacher") == pytest.approx(expected_cosine(10 ** 6),
                                                                                        rel=1e-5)
    rows = theory_curve([10, 100])
    assert [r["d"] for r in rows] == [10, 100] and rows[1]["relative_mse"] == pytest.approx(101)


def test_empirical_variance_matches_theory_and_grows_linearly_with_d(gaussian_checks):
    for d, r in gaussian_checks.items():
        assert r["autograd_error"] < 1e-12  # autograd is the exact gradient A (theta - b)
        assert r["ratio"] == pytest.approx(1.0, abs=0.15), d  # empirical / theory MSE
        assert r["relative_mse"] == pytest.approx(d + 1, rel=0.15), d
    growth = gaussian_checks[1000]["relative_mse"] / gaussian_checks[10]["relative_mse"]
    assert growth == pytest.approx(1001 / 11, rel=0.2)  # linear in d: x91 from d = 10 to 1000


def test_mean_estimate_approaches_autograd(gaussian_checks):
    """|mean of n estimates - g| / |g| ~ sqrt((d + 1) / n): the mean converges, the estimator is unbiased."""
    for d, r in gaussian_checks.items():
        assert r["relative_bias"] < 2 * math.sqrt((d + 1) / N), d
    r = quadratic_check(10, 8000, ZOConfig(), seed=10)  # 4x the samples: half the error bound
    assert r["relative_bias"] < 2 * math.sqrt(11 / 8000)
    assert r["mean_cosine"] < 0.5  # ... while a single estimate stays far from g even at d = 10
    samples = torch.tensor(r["cosines"])
    assert float(samples.max()) <= 1.0 and float(samples.min()) >= -1.0


def test_cosine_similarity_shrinks_like_one_over_sqrt_d(gaussian_checks):
    for d, r in gaussian_checks.items():
        assert r["mean_cosine"] == pytest.approx(expected_cosine(d), rel=0.08), d
    shrink = gaussian_checks[10]["mean_cosine"] / gaussian_checks[1000]["mean_cosine"]
    assert shrink == pytest.approx(expected_cosine(10) / expected_cosine(1000), rel=0.1)
    assert 8.5 < shrink < 11  # ~ sqrt(1000 / 10) = 10


def test_one_sided_eps_adds_variance_not_bias_on_a_quadratic():
    d, eps = 100, 0.3
    one = quadratic_check(d, N, ZOConfig(eps=eps), seed=1)
    two = quadratic_check(d, N, ZOConfig(eps=eps, estimator="two-sided"), seed=1)
    limit = estimator_mse(d, one["grad_sq"])
    assert one["theory_mse"] > 1.7 * limit  # at this eps the eps term about doubles the error ...
    assert one["ratio"] == pytest.approx(1.0, abs=0.15)  # ... and the formula predicts it
    assert two["theory_mse"] == pytest.approx(limit) and two["ratio"] == pytest.approx(1.0, abs=0.15)
    assert one["relative_bias"] < 2 * math.sqrt(one["relative_mse"] / N)  # still no bias


def test_rademacher_and_q_directions():
    r = quadratic_check(100, N, ZOConfig(distribution="rademacher", estimator="two-sided"), seed=3)
    assert r["relative_mse"] == pytest.approx(99, rel=0.15)
    r = quadratic_check(100, 500, ZOConfig(q=4), seed=4)  # averaging q directions divides the error by q
    assert r["relative_mse"] == pytest.approx(101 / 4, rel=0.15)
    assert r["mean_cosine"] == pytest.approx(expected_cosine(100, q=4), rel=0.15)


def test_estimator_stats_on_known_samples():
    grad = torch.tensor([1.0, 0.0])
    stats = estimator_stats(torch.tensor([[2.0, 0.0], [0.0, 0.0]]), grad)
    assert stats["mse"] == pytest.approx(1.0) and stats["bias_norm"] == pytest.approx(0.0)
    assert stats["cosines"][0] == pytest.approx(1.0) and stats["relative_mse"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- CLIP with adapters

@pytest.fixture(scope="module")
def tiny_clip():
    """The tiny CLIP with random weights and MoE adapters whose up-projections are small and non-zero."""
    torch.manual_seed(0)
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("up.weight"):
                p.copy_(0.02 * torch.randn(p.shape, generator=gen))
    images = torch.randn(8, 3, 32, 32, generator=gen)
    tokens = tokenizer("zolib-tiny")(["a photo of a red circle.", "a photo of a blue square.",
                                      "a photo of a green star."])
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    return model, images, tokens, labels


@pytest.fixture(scope="module")
def clip_rows(tiny_clip):
    return unit_variance(*tiny_clip, n=4, seed=0)


def test_clip_rows_cover_every_unit_with_finite_values(tiny_clip, clip_rows):
    model = tiny_clip[0]
    units = trainable_units(model)
    per_unit = count_parameters(units)["per_unit"]
    assert len(units) == 24
    assert {(r["branch"], r["layer"]) for r in clip_rows} == set(units)
    assert len(clip_rows) == 4 * len(units)
    for r in clip_rows:
        assert r["dim"] == per_unit[r["unit"]] and r["theory_rel"] == r["dim"] + 1
        assert r["grad_norm"] > 0 and -1 <= r["cosine"] <= 1 and r["eps"] == 1e-3
        for key in ("cosine", "sq_error", "rel_sq_error", "grad_norm", "est_norm", "loss"):
            assert math.isfinite(r[key]), (r["unit"], key)
    # the vision units are wider (96 vs 64): their dimension, hence the theoretical variance, is larger
    dims = {r["branch"]: r["dim"] for r in clip_rows}
    assert dims["vision"] > dims["text"]
    # pooled over all 96 samples the relative variance agrees with (d + 1) (relative s.e. ~ 15%)
    pooled = np.mean([r["rel_sq_error"] / r["theory_rel"] for r in clip_rows])
    assert 0.6 < pooled < 1.5
    assert all(p.grad is None for p in model.parameters()), "the analysis must not leave .grad behind"


def test_clip_samples_are_zo_gradient_estimates_of_one_unit(tiny_clip, clip_rows):
    """Sample 0 of a unit is exactly zo_gradient's block-wise estimate with step_seed mix(seed, position)."""
    model, images, tokens, labels = tiny_clip
    units = trainable_units(model)
    for key in (("vision", 5), ("text", 3)):
        pos = list(units).index(key)
        est = zo_gradient(model, {key: units[key]}, lambda: clip_loss(clip_logits(model, images, tokens), labels),
                          ZOConfig(perturbation="block"), step_seed=mix(0, pos))
        g_hat = torch.cat([v.flatten() for v in est.values()])
        row = next(r for r in clip_rows if r["unit"] == f"{key[0]}/{key[1]}" and r["sample"] == 0)
        assert float(g_hat.norm()) == pytest.approx(row["est_norm"], rel=1e-5)


def test_unit_summary_and_branch_test(clip_rows):
    summary = unit_summary(clip_rows)
    assert len(summary) == 24 and all(s["n"] == 4 for s in summary)
    s = summary[0]
    assert s["unit"] == "vision/0" and s["ratio"] == pytest.approx(s["rel_variance"] / s["theory_rel"])
    assert s["theory_cosine"] == pytest.approx(expected_cosine(s["dim"]))
    test = compare_branches(clip_rows, "cosine")
    assert 0 <= test["p_value"] <= 1 and test["n_vision"] == test["n_text"] == 48
    per_unit = compare_branches(summary, "rel_variance", alternative="greater")
    assert per_unit["n_vision"] == 12 and 0 <= per_unit["p_value"] <= 1
