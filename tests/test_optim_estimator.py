"""The ZO estimator against autograd: mean, bias in eps, variance in dimension, seed replay."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from zolib.optim import HybridOptimizer, ZOConfig, sample_direction, step_seed, zo_gradient
from zolib.optim.zo import estimate, make_groups



@pytest.fixture(autouse=True)
def float64_single_thread():
    """float64 makes finite differences exact enough; one thread keeps tiny ops fast on a busy CPU."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)


class Quadratic(nn.Module):
    """0.5 (theta - b)^T A (theta - b) with A symmetric positive definite."""

    def __init__(self, d: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        m = torch.randn(d, d, generator=g)
        self.register_buffer("a", m @ m.T / d + torch.eye(d))
        self.register_buffer("b", torch.randn(d, generator=g))
        self.theta = nn.Parameter(torch.randn(d, generator=g))

    def forward(self) -> torch.Tensor:
        r = self.theta - self.b
        return 0.5 * r @ self.a @ r


class Power(nn.Module):
    """sum(theta^4) / 4: gradient theta^3, with third derivatives so eps matters."""

    def __init__(self, d: int):
        super().__init__()
        self.theta = nn.Parameter(torch.linspace(-1.5, 1.5, d))

    def forward(self) -> torch.Tensor:
        return (self.theta ** 4).sum() / 4


class Linear(nn.Module):
    """<w, theta>: the finite difference is exact, so g_hat = <w, z> z."""

    def __init__(self, d: int):
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(d))
        self.register_buffer("w", torch.randn(d, generator=torch.Generator().manual_seed(d)))

    def forward(self) -> torch.Tensor:
        return self.theta @ self.w


def mlp_and_data():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 1))
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    return net, (lambda: ((net(x) - y) ** 2).mean())


def autograd(model: nn.Module, closure) -> torch.Tensor:
    model.zero_grad()
    closure().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def flat(est) -> torch.Tensor:
    return torch.cat([g.flatten() for g in est.values()])


def test_directions_are_seeded_and_distributed():
    like = torch.empty(20000)
    z1, z2 = sample_direction(like, 7), sample_direction(like, 7)
    assert torch.equal(z1, z2) and not torch.equal(z1, sample_direction(like, 8))
    assert abs(float(z1.mean())) < 0.03 and abs(float(z1.var()) - 1) < 0.05
    r = sample_direction(like, 7, "rademacher")
    assert set(r.unique().tolist()) == {-1.0, 1.0} and abs(float(r.mean())) < 0.03
    state = torch.get_rng_state()
    sample_direction(like, 3)
    assert torch.equal(state, torch.get_rng_state()), "directions must not touch the global RNG"


@pytest.mark.parametrize("estimator,distribution", [("one-sided", "gaussian"), ("two-sided", "rademacher")])
def test_mean_estimate_matches_autograd_on_quadratic(estimator, distribution):
    model = Quadratic(10)
    g = autograd(model, model)
    est = flat(zo_gradient(model, {"theta": [model.theta]}, model,
                           ZOConfig(estimator=estimator, distribution=distribution, q=4000)))
    assert torch.cosine_similarity(est, g, 0) > 0.99
    assert (est - g).norm() / g.norm() < 0.12  # Monte Carlo error ~ sqrt((d + 1) / q) = 0.05


def test_two_sided_projection_is_exact_on_quadratic():
    model = Quadratic(6)
    g = autograd(model, model)
    groups = make_groups(model, {"theta": [model.theta]}, lambda _: 0.1)
    with torch.no_grad():
        est, losses = estimate(model, groups, ZOConfig(estimator="two-sided", q=3), 123, None)
    assert len(losses) == 6
    for k in range(3):
        z = est.direction(groups[0].entries[0], k)
        assert est.coefs[0][k] == pytest.approx(float(g @ z), rel=1e-9)


@pytest.mark.parametrize("perturbation", ["joint", "block"])
def test_mean_estimate_matches_autograd_on_mlp_with_per_unit_eps(perturbation):
    net, closure = mlp_and_data()
    g = autograd(net, closure)
    units = {"first": list(net[0].parameters()), "second": list(net[2].parameters())}
    # per-unit eps in joint mode: dL / eps_g * z_g stays unbiased (cross terms vanish)
    # (it adds variance ~ (eps_h / eps_g)^2, so keep the ratio MoZO-like)
    zo = ZOConfig(q=3000, perturbation=perturbation, eps_vision=5e-4, eps_text=1e-3)
    est = flat(zo_gradient(net, {("vision", 0): units["first"], ("text", 0): units["second"]}, closure, zo))
    assert torch.cosine_similarity(est, g, 0) > 0.95


def test_bias_shrinks_with_eps_as_theory_says():
    """Power: E[g_hat] = theta^3 + 3 eps^2 theta (Gaussian z); same seeds cancel the noise."""
    model = Power(4)
    units, theta = {"theta": [model.theta]}, model.theta.detach()

    def mean_estimate(eps: float) -> torch.Tensor:
        return flat(zo_gradient(model, units, model, ZOConfig(eps=eps, q=8000), step_seed=5))

    reference = mean_estimate(1e-4)
    bias = {eps: mean_estimate(eps) - reference for eps in (0.3, 0.15)}
    for eps, b in bias.items():
        assert (b - 3 * eps ** 2 * theta).norm() < 0.35 * (3 * eps ** 2 * theta).norm()
    ratio = bias[0.3].norm() / bias[0.15].norm()
    assert 3.0 < ratio < 5.5  # halving eps divides the bias by about 4


@pytest.mark.parametrize("distribution,extra", [("gaussian", 2), ("rademacher", 0)])
def test_estimator_second_moment_grows_with_dimension(distribution, extra):
    """E|g_hat|^2 = (d + 2)|grad|^2 (Gaussian) or d |grad|^2 (Rademacher) at q = 1."""
    n = 4000
    for d in (8, 64):
        model = Linear(d)
        groups = make_groups(model, {"theta": [model.theta]}, lambda _: 1e-3)
        with torch.no_grad():
            est, _ = estimate(model, groups, ZOConfig(distribution=distribution, q=n), 9, float(model()))
        entry = groups[0].entries[0]
        second = sum(c * c * float(est.direction(entry, k).square().sum()) for k, c in enumerate(est.coefs[0])) / n
        ratio = second / float(model.w.square().sum())
        assert ratio == pytest.approx(d + extra, rel=0.1)


def test_streamed_update_equals_materialised_estimate():
    """Seed replay: the in-place update uses exactly the directions of the estimate."""
    model = Quadratic(12)
    units = {"theta": [model.theta]}
    zo = ZOConfig(rule="aggressive", q=3, zo_lr=0.01)
    est = zo_gradient(model, units, model, zo, step_seed=step_seed(11, 0))["theta[0]"]
    before = model.theta.detach().clone()
    HybridOptimizer(model, units, {"theta": "zo"}, lr=0.01, zo=zo, seed=11).step(model)
    torch.testing.assert_close(model.theta.detach(), before - 0.01 * est, rtol=0, atol=1e-12)
