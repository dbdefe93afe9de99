"""The ZeroFlow / ZO-Bench optimizer family on any ZO units: forward gradient against autograd, and each
member one flag away."""
from dataclasses import asdict

import pytest
import torch

from zolib.cl.profiles import profile_config
from zolib.errors import ZolibError
from zolib.models import MoEConfig, build_adapted_clip, clip_logits, clip_loss, tokenizer, trainable_units
from zolib.cl.factory import build_optimizer
from zolib.optim import ZOConfig, direction_seed, sample_direction, step_seed
from zolib.optim.infty import infty_name
from zolib.optim.methods import ZO_OPTIMIZERS
from zolib.optim.zo import estimate, make_groups

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16)).eval()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    images = torch.randn(4, 3, 32, 32)
    tokens = tokenizer("zolib-tiny")([f"a photo of a thing number {i}." for i in range(5)])
    labels = torch.arange(4)
    return model, lambda: clip_loss(clip_logits(model, images, tokens), labels)


@pytest.mark.parametrize("branch", ["vision", "text"])
def test_forward_gradient_equals_the_autograd_directional_derivative_on_clip(clip, branch):
    """Through open_clip's attention: the fast path is off and SDPA runs its math kernel for the tangents."""
    model, closure = clip
    units = {k: {n: p for n, p in ps.items() if not n.endswith("adapter.noise")}
             for k, ps in trainable_units(model).items() if k[0] == branch}
    groups = make_groups(model, units, lambda k: 1e-3)
    params = [e.param for g in groups for e in g.entries]
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        grads = torch.autograd.grad(closure(), params)
        seed = step_seed(3, 0)
        expected = sum(float((g * sample_direction(e.param, direction_seed(seed, e.index, 0))).sum())
                       for g, e in zip(grads, [e for g in groups for e in g.entries]))
        with torch.no_grad():
            est, losses = estimate(closure, groups, ZOConfig(estimator="forward-grad"), seed, None)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    assert est.coefs[0][0] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    with torch.no_grad():
        assert losses[0] == pytest.approx(float(closure()), rel=1e-6)
    assert all(p.requires_grad and type(p) is torch.nn.Parameter for p in params), "parameters are put back"


@pytest.mark.parametrize("name", list(ZO_OPTIMIZERS))
def test_every_member_is_one_flag_away_and_steps(clip, name):
    cfg = profile_config("smoke", method="vision", zo_optimizer=name)
    for key, value in ZO_OPTIMIZERS[name][1].items():
        actual = getattr(cfg, key) if key == "schedule" else getattr(cfg.zo, key)
        assert actual == (tuple(value) if isinstance(value, list) else value), (name, key)
    model, closure = clip
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    opt = build_optimizer(model, "dual", **{**asdict(cfg.zo), "zo_lr": 1e-2})
    result = opt.step(closure)
    assert result.forwards == opt.forwards_per_step and torch.isfinite(torch.tensor(result.loss))
    moved = any(not torch.equal(p, before[n]) for n, p in model.named_parameters() if p.requires_grad)
    assert moved or name == "zo-sgd-conserve", name  # a conservative step may keep theta
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(before[n])


def test_mezo_is_two_forwards_a_step_and_forward_grad_one():
    model = build_adapted_clip("zolib-tiny", "none", "lora")
    mezo = profile_config("smoke", method="dual", zo_optimizer="zo-sgd").zo
    assert build_optimizer(model, "dual", **asdict(mezo)).forwards_per_step == 2
    assert build_optimizer(model, "dual", estimator="forward-grad", rule="aggressive").forwards_per_step == 1
    assert build_optimizer(model, "vision", estimator="forward-grad", rule="aggressive").forwards_per_step == 2


@pytest.mark.parametrize("member, name", [("zo-sgd", "zo_sgd"), ("zo-sgd-momentum", "zo_sgd"),
                                          ("zo-sgd-sign", "zo_sgd_sign"), ("zo-sgd-conserve", "zo_sgd_conserve"),
                                          ("zo-adam", "zo_adam")])
def test_infty_runs_each_member_it_has_under_its_own_name(member, name):
    assert infty_name(profile_config("smoke", method="dual", zo_optimizer=member).zo) == name


@pytest.mark.parametrize("settings, message", [
    (dict(rule="aggressive", sign="elementwise"), "no rule 'aggressive' with sign 'elementwise'"),
    (dict(rule="conservative", sign="projected"), "no rule 'conservative' with sign 'projected'"),
    (dict(rule="conservative", base="adam", adam_betas=(0.9, 0.999)), "base sgd"),
    (dict(rule="conservative", q=2), "q = 1"),
    (dict(distribution="rademacher"), "Gaussian directions only"),
    (dict(estimator="forward-grad"), "forward_grad"),
    (dict(perturbation="block"), "jointly"),
])
def test_infty_refuses_what_it_cannot_run_in_one_line(settings, message):
    """Never a near miss: the cross-check must compare one algorithm with itself."""
    with pytest.raises(ZolibError, match=message) as err:
        infty_name(ZOConfig(**{"estimator": "two-sided", **settings}))
    assert len(str(err.value).splitlines()) == 1
