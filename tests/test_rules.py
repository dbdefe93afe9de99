"""Update rules as registered objects: a rule registered here, in the test, is validated, counted, trained
with and refused by infty's adapter with no other file edited; the base optimizer is an explicit field."""
from __future__ import annotations

import argparse
import copy

import pytest
import torch
from torch import nn

from zolib.cl.profiles import profile_config
from zolib.cl.trainer import run_experiment
from zolib.cli import config_flags
from zolib.errors import ZolibError
from zolib.optim import RULES, HybridOptimizer, Rule, ZOConfig, forwards_per_step, register
from zolib.optim.infty import infty_name

pytestmark = pytest.mark.usefixtures("single_thread")
PURE_ZO = {"a": "zo", "b": "zo"}


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 1)
        self.x, self.y = torch.randn(16, 4), torch.randn(16, 1)

    def forward(self) -> torch.Tensor:
        return ((self.b(torch.tanh(self.a(self.x))) - self.y) ** 2).mean()


def units_of(net: Net) -> dict:
    return {name: dict(getattr(net, name).named_parameters()) for name in "ab"}


@pytest.fixture
def best_descent():
    """A toy rule, registered from this file: the better of one and two steps down the estimate (never theta,
    so it needs no L(theta)); it is unregistered afterwards."""
    @register(RULES)
    class BestDescent(Rule):
        name, help = "best-descent", "the better of theta - Delta and theta - 2 Delta"

        def multipliers(self, zo):
            return [-1, -2]

    yield "best-descent"
    del RULES["best-descent"]


def test_a_rule_registered_in_a_test_is_validated_counted_and_trained_with(best_descent):
    zo = ZOConfig(rule=best_descent, estimator="two-sided", zo_lr=0.2)
    with pytest.raises(ZolibError, match="unknown ZO rule 'nope'; valid values: .*best-descent"):
        ZOConfig(rule="nope")
    assert forwards_per_step(zo, 2, has_fo=False) == 2 + 2, "two probes and two candidates, no L(theta)"
    net, calls = Net(), []
    opt = HybridOptimizer(net, units_of(net), PURE_ZO, zo=zo, seed=3)
    states, results = [copy.deepcopy(net.state_dict())], []
    for _ in range(4):
        results.append(opt.step(lambda: calls.append(1) or net()))
        states.append(copy.deepcopy(net.state_dict()))
    assert all(r.forwards == opt.forwards_per_step == 4 for r in results) and len(calls) == 4 * 4
    assert all(list(r.info["candidate_losses"]) == [-1, -2] for r in results)
    assert {r.info["multiplier"] for r in results} == {-1, -2}, "both candidates get kept"
    for step, r in enumerate(results):  # its update: an aggressive step |m| times as long, bit for bit
        twin = Net()
        twin.load_state_dict(states[step])
        aggressive = HybridOptimizer(twin, units_of(twin), PURE_ZO, seed=3, zo=ZOConfig(
            rule="aggressive", estimator="two-sided", zo_lr=0.2 * -r.info["multiplier"]))
        aggressive.steps = step
        aggressive.step(twin)
        assert all(torch.equal(v, states[step + 1][k]) for k, v in twin.state_dict().items()), step


def test_the_harness_trains_with_a_rule_registered_in_a_test(best_descent, tmp_path):
    cfg = profile_config("smoke", method="dual", rule=best_descent, estimator="two-sided", zo_lr=0.05,
                         protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4,
                         max_steps_per_task=2, batch_size=16)
    r = run_experiment(cfg, tmp_path / "toy.json", progress=False)
    assert r["config"]["zo"]["rule"] == best_descent
    assert all(set(task) <= {"-1", "-2"} and sum(task.values()) == 2 for task in r["picks"]), r["picks"]
    assert r["movement"][-1]["vision"]["zo"] > 0


def test_the_cli_and_infty_read_the_registry(best_descent):
    parser = argparse.ArgumentParser()
    config_flags(parser)
    helps = {a.dest: a.help for a in parser._actions}
    assert best_descent in helps["rule"].split(" | ") and helps["base"] == "sgd | momentum | adam"
    with pytest.raises(ZolibError, match="infty's ZeroFlow has no rule 'best-descent'") as err:
        infty_name(ZOConfig(rule=best_descent, estimator="two-sided"))
    assert len(str(err.value).splitlines()) == 1


@pytest.mark.parametrize("settings, message", [
    (dict(base="nesterov"), "unknown ZO base 'nesterov'; valid values: sgd, momentum, adam"),
    (dict(momentum=0.9), "momentum is a setting of ZO base 'momentum', not of 'sgd'; set base='momentum'"),
    (dict(base="momentum"), "needs momentum in \\(0, 1\\)"),
    (dict(base="adam"), "needs adam_betas"),
    (dict(base="momentum", momentum=0.9, adam_betas=(0.9, 0.99)), "adam_betas is a setting of ZO base 'adam'"),
])
def test_the_base_optimizer_is_an_explicit_field(settings, message):
    with pytest.raises(ZolibError, match=message) as err:
        ZOConfig(**settings)
    assert len(str(err.value).splitlines()) == 1
    assert ZOConfig(base="adam", adam_betas=[0.9, 0.99]).adam_betas == (0.9, 0.99)
