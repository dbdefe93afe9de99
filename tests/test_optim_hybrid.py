"""HybridOptimizer: exact restore, forward counts, modes, errors, schedules, state; presets."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zolib.cl.config import resolve
from zolib.cl.factory import build_optimizer, warmup_cosine
from zolib.errors import NanLossError, ZolibError
from zolib.models import MoEConfig, build_adapted_clip, trainable_units
from zolib.optim import (HybridOptimizer, ZOConfig, direction_seed, forwards_per_step, methods,
                         sample_direction, step_seed)


pytestmark = pytest.mark.usefixtures("single_thread")


class Net(nn.Module):
    """Three small layers (three units) with dropout, so train/eval mode matters."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b, self.c = nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 1)
        self.drop = nn.Dropout(0.5)
        self.x, self.y = torch.randn(16, 4), torch.randn(16, 1)
        self.seen: list[bool] = []

    def forward(self) -> torch.Tensor:
        self.seen.append(self.drop.training)
        h = self.drop(torch.tanh(self.b(torch.tanh(self.a(self.x)))))
        return ((self.c(h) - self.y) ** 2).mean()


def units_of(net: Net) -> dict:
    return {name: dict(getattr(net, name).named_parameters()) for name in "abc"}


HYBRID = {"a": "fo", "b": "zo", "c": "zo"}
PURE_ZO = {"a": "zo", "b": "zo", "c": "zo"}
CONFIGS = [
    dict(rule="aggressive"),
    dict(rule="aggressive", estimator="two-sided", q=2),
    dict(rule="conservative"),
    dict(rule="conservative", candidates=5, distribution="rademacher"),
    dict(rule="conservative", sign="elementwise"),
    dict(rule="conservative", sign="elementwise", q=3),
    dict(rule="aggressive", sign="projected", q=2),
    dict(rule="aggressive", base="momentum", momentum=0.9),
    dict(rule="conservative", base="adam", adam_betas=(0.9, 0.999), sign="elementwise"),
    dict(rule="aggressive", perturbation="block", estimator="two-sided"),
]


@pytest.mark.parametrize("modes", [HYBRID, PURE_ZO], ids=["hybrid", "pure-zo"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_zero_lr_restores_parameters_bit_for_bit(cfg, modes):
    """Every probe and candidate runs (the ZO units are ZO, their step scheduled to 0), and afterwards
    every parameter is bit for bit what it was."""
    net = Net()
    net.train()
    before = copy.deepcopy(net.state_dict())
    opt = HybridOptimizer(net, units_of(net), modes, lr=0.1, weight_decay=0.1, zo=ZOConfig(**cfg).with_step(0.1),
                          schedule=lambda step: 0.0)
    for _ in range(2):
        result = opt.step(net)
    assert result.forwards == opt.forwards_per_step > 1 and any(c != 0 for cs in result.info["projected"] for c in cs)
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert net.training and net.drop.training
    assert all(p.requires_grad for p in net.parameters())


FORWARD_TABLE = [  # (config, modes, forwards per step as in zolib.optim.hybrid's table), q = 2, U = 2
    (dict(rule="aggressive", q=2), HYBRID, 1 + 2),
    (dict(rule="conservative", q=2), HYBRID, 1 + 2 + 2),
    (dict(rule="conservative", q=1, candidates=5), PURE_ZO, 1 + 1 + 4),
    (dict(rule="aggressive", estimator="two-sided", q=2), HYBRID, 1 + 4),
    (dict(rule="aggressive", estimator="two-sided", q=2), PURE_ZO, 4),
    (dict(rule="conservative", estimator="two-sided", q=2), PURE_ZO, 1 + 4 + 2),
    (dict(rule="aggressive", perturbation="block", q=2), HYBRID, 1 + 2 * 2),
    (dict(rule="conservative", perturbation="block", q=2), HYBRID, 1 + 2 * 2 + 2),
    (dict(rule="aggressive", perturbation="block", estimator="two-sided", q=2), HYBRID, 1 + 2 * 2 * 2),
    (dict(), {"a": "fo", "b": "fo", "c": "fo"}, 1),
]


@pytest.mark.parametrize("cfg,modes,expected", FORWARD_TABLE)
def test_forwards_per_step_match_the_documented_table(cfg, modes, expected):
    net = Net()
    calls = []
    opt = HybridOptimizer(net, units_of(net), modes, zo=ZOConfig(**cfg).with_step(1e-3))
    result = opt.step(lambda: calls.append(1) or net())
    n_zo = sum(m == "zo" for m in modes.values())
    assert len(calls) == result.forwards == opt.forwards_per_step == expected
    assert forwards_per_step(ZOConfig(**cfg), n_zo, "fo" in modes.values()) == expected


def test_one_mode_rule_fo_units_train_everything_else_eval():
    """FO units' modules train (dropout on) in FO and hybrid steps alike; every other module is in eval
    mode; ZO parameters stay out of autograd; each module's own flag comes back after the step."""
    net = Net()
    net.train()
    net.b.eval()  # a submodule's own flag must come back as it was
    grads_needed = []
    opt = HybridOptimizer(net, units_of(net), HYBRID, zo=ZOConfig(zo_lr=1e-3))
    opt.step(lambda: grads_needed.append((net.a.training, net.b.training, net.drop.training,
                                          net.b.weight.requires_grad, torch.is_grad_enabled())) or net())
    assert grads_needed[0] == (True, False, False, False, True), "FO unit a trains; ZO unit b and the rest eval"
    assert all(not g for *_, g in grads_needed[1:]), "perturbed forwards record no autograd graph"
    assert net.training and net.drop.training and not net.b.training
    assert net.a.weight.grad is not None and net.b.weight.grad is None and net.b.weight.requires_grad
    seen = []
    HybridOptimizer(net, units_of(net), {"a": "fo", "b": "fo", "c": "fo"}).step(
        lambda: seen.append((net.a.training, net.drop.training)) or net())
    assert seen == [(True, False)], "an all-FO step follows the same rule"
    seen.clear()
    HybridOptimizer(net, units_of(net), {"a": "fo", "b": "fo", "c": "fo"}, fo_train_mode=False).step(
        lambda: seen.append((net.a.training, net.drop.training)) or net())
    assert seen == [(False, False)], "the eval-mode variant"


def test_zo_lr_zero_holds_zo_units_fixed_without_zo_forwards():
    """The control of a hybrid method: the resolved config holds its ZO units fixed (mode "frozen", decided
    once by ExperimentConfig.unit_modes), and they cost no forward. An optimizer handed ZO units with a
    step of 0 refuses them rather than deciding again."""
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16))
    modes = resolve({"method": "vision", "zo_lr": 0.0}).unit_modes(trainable_units(model))
    assert {m for k, m in modes.items() if k[0] == "vision"} == {"frozen"}
    assert {m for k, m in modes.items() if k[0] == "text"} == {"fo"}
    assert set(resolve({"method": "vision"}).unit_modes(trainable_units(model)).values()) == {"zo", "fo"}
    with pytest.raises(ZolibError, match="held fixed"):
        HybridOptimizer(Net(), units_of(Net()), HYBRID, zo=ZOConfig(zo_lr=0.0))
    net = Net()
    before = copy.deepcopy(net.state_dict())
    calls = []
    opt = HybridOptimizer(net, units_of(net), {"a": "fo", "b": "frozen", "c": "frozen"}, lr=0.1,
                          zo=ZOConfig(zo_lr=0.0))
    result = opt.step(lambda: calls.append(1) or net())
    assert len(calls) == result.forwards == opt.forwards_per_step == 1
    assert [g["mode"] for g in opt.param_groups] == ["fo", "frozen", "frozen"]
    assert not torch.equal(net.a.weight, before["a.weight"])
    assert torch.equal(net.b.weight, before["b.weight"]) and torch.equal(net.c.weight, before["c.weight"])
    frozen = HybridOptimizer(net, units_of(net), dict.fromkeys("abc", "frozen"), zo=ZOConfig(zo_lr=0.0))
    state = copy.deepcopy(net.state_dict())
    assert frozen.step(net).forwards == 1, "the frozen model: one forward for its loss"
    assert all(torch.equal(v, state[k]) for k, v in net.state_dict().items())


def test_nan_loss_raises_and_leaves_parameters():
    net = Net()
    before = copy.deepcopy(net.state_dict())
    opt = HybridOptimizer(net, units_of(net), HYBRID, zo=ZOConfig(zo_lr=1e-3))
    with pytest.raises(NanLossError, match="nan"):
        opt.step(lambda: net() * float("nan"))
    count = []

    def nan_when_perturbed():
        count.append(1)
        return net() if len(count) == 1 else torch.tensor(float("inf"))
    with pytest.raises(NanLossError, match="perturbed"):
        opt.step(nan_when_perturbed)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())


def test_conservative_rejects_a_candidate_whose_loss_is_not_finite():
    net = Net()
    before = copy.deepcopy(net.state_dict())
    opt = HybridOptimizer(net, units_of(net), PURE_ZO, zo=ZOConfig(rule="conservative", zo_lr=1e-3), seed=1)
    calls = []

    def nan_for_candidates():  # forwards: L(theta), the probe, then the two candidates
        calls.append(1)
        return net() if len(calls) <= 2 else net() * float("nan")
    result = opt.step(nan_for_candidates)
    assert result.info["multiplier"] == 0 and result.info["candidate_losses"][1] == float("inf")
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items()), "theta is kept"


def test_a_parameter_read_outside_its_module_is_perturbed_too():
    """Substitution swaps the parameter's data, so code that reads it outside its module's forward
    (like nn.MultiheadAttention's out_proj) sees the perturbation; the value comes back bit for bit."""
    class Outside(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 1)

        def forward(self):
            return (torch.ones(3) @ self.lin.weight.T).square().sum()  # lin.forward never runs

    model = Outside()
    before = model.lin.weight.detach().clone()
    opt = HybridOptimizer(model, {"u": [model.lin.weight]}, {"u": "zo"}, lr=0.1, zo=ZOConfig(rule="aggressive", zo_lr=0.1),
                          schedule=lambda step: 0.0)
    result = opt.step(model)
    assert result.info["projected"][0][0] != 0.0, "the probe saw its perturbation"
    assert torch.equal(model.lin.weight, before)


def test_conservative_never_increases_the_loss():
    net = Net()
    opt = HybridOptimizer(net, units_of(net), PURE_ZO, lr=0.05, zo=ZOConfig(rule="conservative", sign="elementwise", q=2, zo_lr=0.05), seed=3)
    results = [opt.step(net) for _ in range(25)]
    losses = [r.loss for r in results]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    assert losses[-1] < losses[0]
    assert len({r.info["multiplier"] for r in results}) > 1, "more than one candidate gets chosen"


def test_per_modality_eps_scales_each_branch_perturbation():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.vision, self.text = nn.Linear(4, 4), nn.Linear(4, 4)
            self.record = {"vision": [], "text": []}
            for name in self.record:
                getattr(self, name).register_forward_hook(
                    lambda m, i, o, name=name: self.record[name].append(m.weight.detach().clone()))

        def forward(self):
            return self.text(self.vision(torch.ones(2, 4))).square().sum()

    model = Branches()
    units = {("vision", 0): [model.vision.weight], ("text", 0): [model.text.weight]}
    zo = ZOConfig(rule="aggressive", eps_vision=5e-4, eps_text=1e-3, zo_lr=1e-3)
    HybridOptimizer(model, units, {k: "zo" for k in units}, zo=zo, seed=4).step(model)
    seed = step_seed(4, 0)
    for index, (name, eps) in enumerate([("vision", 5e-4), ("text", 1e-3)]):
        clean, perturbed = model.record[name][:2]
        z = sample_direction(clean, direction_seed(seed, index, 0))
        torch.testing.assert_close(perturbed - clean, eps * z, rtol=1e-3, atol=1e-7)


def test_schedule_drives_fo_and_zo_lr_and_lambdalr_works():
    f = warmup_cosine(30, 100)
    assert f(0) == pytest.approx(1 / 30) and f(29) == 1 and f(30) == 1 and f(99) < 1e-3
    assert f(65) == pytest.approx(0.5, abs=0.03)
    net = Net()
    opt = HybridOptimizer(net, units_of(net), HYBRID, lr=1e-2, zo=ZOConfig(zo_lr=1e-3), schedule=f)
    opt.step(net)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-2 / 30, 1e-3 / 30, 1e-3 / 30])
    frozen = Net()
    before = copy.deepcopy(frozen.state_dict())
    opt = HybridOptimizer(frozen, units_of(frozen), HYBRID, lr=0.1, zo=ZOConfig(zo_lr=0.1))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.0)
    opt.step(frozen)
    sched.step()
    assert all(torch.equal(v, before[k]) for k, v in frozen.state_dict().items())


def test_state_dict_resumes_the_same_trajectory():
    zo = ZOConfig(rule="conservative", base="adam", adam_betas=(0.9, 0.99), sign="projected", q=2, zo_lr=1e-2)

    def run(steps, resume_from=None):
        net = Net()
        opt = HybridOptimizer(net, units_of(net), HYBRID, lr=1e-2, zo=zo, seed=1)
        if resume_from is not None:
            net.load_state_dict(resume_from[0])
            opt.load_state_dict(resume_from[1])
        for _ in range(steps):
            opt.step(net)
        return net, opt

    straight, _ = run(4)
    half, opt = run(2)
    resumed, _ = run(2, (copy.deepcopy(half.state_dict()), copy.deepcopy(opt.state_dict())))
    assert all(torch.equal(v, straight.state_dict()[k]) for k, v in resumed.state_dict().items())


# ---------------------------------------------------------------- methods

LAYERS = {"vision": 12, "text": 12}


def zo_layers(name, branch):
    return [l for l, c in enumerate(methods.resolve_mask(name, LAYERS)[branch]) if c == "1"]


def test_layerwise_methods_use_zero_based_layers():
    assert zo_layers("hop-odd-vision", "vision") == [1, 3, 5, 7, 9, 11] and zo_layers("hop-odd-vision", "text") == []
    assert methods.parse("hop-odd-vision").settings == {}
    assert zo_layers("hop-even-both", "vision") == zo_layers("hop-even-both", "text") == [0, 2, 4, 6, 8, 10]
    assert zo_layers("prefix6-language", "text") == [0, 1, 2, 3, 4, 5] and zo_layers("prefix6-language", "vision") == []
    assert zo_layers("suffix3-both", "vision") == zo_layers("suffix3-both", "text") == [9, 10, 11]
    assert zo_layers("dual", "vision") == zo_layers("frozen", "text") == list(range(12))
    assert zo_layers("fo", "vision") == zo_layers("fo", "text") == []
    assert zo_layers("language", "text") == list(range(12)) and zo_layers("language", "vision") == []
    assert methods.parse("hop-odd-both").interleaved and methods.parse("suffix6-vision").consecutive
    assert (methods.parse("prefix6-vision").pattern, methods.parse("prefix6-vision").side) == ("prefix", "vision")


def test_unknown_method_lists_valid_values():
    with pytest.raises(ZolibError, match="valid values: .*hop-odd-vision.*mozo"):
        methods.parse("hop-odd-visoin")
    with pytest.raises(ZolibError, match="valid values: .*hop-odd-vision.*mozo"):
        methods.parse("layer-odd-vision")
    for name in ("fo", "frozen", "dual", "mozo", "suffix4-language", "custom:vision=1"):
        methods.parse(name)
    with pytest.raises(ZolibError, match="k must be"):
        methods.resolve_mask("prefix13-vision", LAYERS)
    assert all(len(text.splitlines()) == 1 for text in methods.listing().values())


def test_custom_mask_parsing_and_round_trip():
    assert zo_layers("custom:vision=010101010101,text=100000000001", "text") == [0, 11]
    assert zo_layers("custom:language=111111000000", "text") == [0, 1, 2, 3, 4, 5]
    for bad, message in [("custom:vision=0101", "12 digits"), ("custom:vision=01010101010x", "digits 0/1"),
                         ("custom:audio=010101010101", "mask branch"), ("custom:", "empty")]:
        with pytest.raises(ZolibError, match=message):
            methods.resolve_mask(bad, LAYERS)
    for name in ("hop-odd-vision", "prefix6-both", "dual", "fo"):
        mask = methods.resolve_mask(name, LAYERS)
        assert methods.resolve_mask(methods.custom(mask), LAYERS) == mask


def test_mozo_builds_modality_eps_with_two_directions_on_hop_even_both():
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16))
    opt = build_optimizer(model, "mozo")
    assert (opt.zo.rule, opt.zo.sign, opt.zo.q) == ("conservative", "elementwise", 2)
    assert opt.zo.degeneracy() is None
    eps = {(g["unit"][0], g["mode"]): g["eps"] for g in opt.param_groups}
    assert eps[("vision", "zo")] == 5e-4 < eps[("text", "zo")] == 1e-3
    assert [g["unit"][1] for g in opt.param_groups if g["mode"] == "zo" and g["unit"][0] == "vision"] == \
        [0, 2, 4, 6, 8, 10]
    opt = build_optimizer(model, "vision", rule="aggressive", sign="projected", eps_vision=2e-3, q=2)
    assert (opt.zo.rule, opt.zo.sign, opt.zo.q, opt.zo.eps_vision) == ("aggressive", "projected", 2, 2e-3)
    with pytest.raises(ZolibError, match="unknown experiment parameter"):
        build_optimizer(model, "vision", zo_rule="aggressive")


def test_router_noise_is_never_a_zo_parameter():
    """It acts only through train-mode noise, and ZO forwards run in eval mode: no signal, so it stays put."""
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16))
    opt = build_optimizer(model, "dual", zo_lr=0.5)
    zo_names = [e.name for g in opt._zo for e in g.entries]
    assert zo_names and not any(n.endswith("adapter.noise") for n in zo_names)
    assert any(n.endswith("adapter.router") for n in zo_names)


def test_a_step_without_fo_units_keeps_pytorchs_fast_attention_and_a_hybrid_one_does_not():
    """All-ZO steps run every forward in inference mode: the fused kernels are the same for all of them (and
    faster); a step with an autograd forward turns them off so that forward and the probes match."""
    net = Net()
    seen = []

    def closure():
        seen.append(torch.backends.mha.get_fastpath_enabled())
        return net()
    HybridOptimizer(net, units_of(net), PURE_ZO, zo=ZOConfig(zo_lr=1e-3)).step(closure)
    assert seen and all(seen), "Dual-like: fast path on in every forward"
    seen.clear()
    HybridOptimizer(net, units_of(net), HYBRID, zo=ZOConfig(zo_lr=1e-3)).step(closure)
    assert seen and not any(seen), "hybrid: off in every forward of the step"
    assert torch.backends.mha.get_fastpath_enabled(), "and restored after it"
