"""The ZO step is resolved once, and ``zo_lr = 0`` holds the ZO units fixed in every method family, in
the class-incremental harness and in the few-shot runs alike (one optimizer factory)."""
from __future__ import annotations

import pytest
import torch

from zolib.cl.config import resolve
from zolib.cl.factory import make_optimizer
from zolib.cl.randomstep import random_step
from zolib.errors import ZolibError
from zolib.models.units import PROMPT
from zolib.optim import HybridOptimizer, ZOConfig

pytestmark = pytest.mark.usefixtures("single_thread")

# one method per family of the registry (zolib.optim.methods), with what zo_lr = 0 must hold fixed
FAMILIES = {
    "branch": ("dual", {}), "branch, hybrid": ("vision", {}), "layer-wise": ("hop-odd-vision", {}),
    "mozo": ("mozo", {}), "custom": ("custom:vision=100000000001,text=010101010101", {}),
    "ZeroFlow family": ("dual", {"zo_optimizer": "zo-adam"}), "ZO-FC": ("zo-fc", {}),
    "prompt ZO-SGD": ("prompt-zo-sgd", {"prompt_dim": 4}),
    "SharpZO, stage 2": ("sharpzo", {"prompt_dim": 4, "stage1_steps": 0, "stage1_fraction": 0.0}),
}


def zo_params(opt) -> list[torch.Tensor]:
    """The parameters of the units that are not FO (the ZO units, held fixed here), or SharpZO's vector."""
    if isinstance(opt, HybridOptimizer):
        return [p for g in opt.param_groups if g["mode"] != "fo" for p in g["params"]]
    return [opt.z]


def fo_params(opt) -> list[torch.Tensor]:
    return [p for g in getattr(opt, "param_groups", []) if g["mode"] == "fo" for p in g["params"]]


@pytest.mark.parametrize("family", FAMILIES)
def test_zo_lr_zero_holds_the_zo_units_fixed_and_the_fo_units_still_learn(family):
    method, fields = FAMILIES[family]
    cfg = resolve({"benchmark": "synthetic", "protocol": "10-steps", "method": method, "zo_lr": 0, **fields})
    assert cfg.zo.zo_lr == 0.0 and cfg.zo.holds_fixed
    step = random_step(cfg, batch=4)
    opt = make_optimizer(cfg, step.model, seed=0, total_steps=10)
    zo_before = [p.detach().clone() for p in zo_params(opt)]
    fo_before = [p.detach().clone() for p in fo_params(opt)]
    for _ in range(3):
        opt.step(step.closure)
    assert zo_before and all(torch.equal(a, b) for a, b in zip(zo_before, zo_params(opt))), f"{family}: ZO moved"
    assert not fo_before or any(not torch.equal(a, b) for a, b in zip(fo_before, fo_params(opt))), "FO learns"


def test_sharpzo_trains_stage_2_at_the_resolved_step_in_both_harnesses():
    """The bug this replaced: the class-incremental harness trained SharpZO's stage 2 at ``lr`` when
    ``zo_lr`` was 0 (``zo_lr or lr``) while the few-shot runner used 0."""
    cfg = resolve({"benchmark": "synthetic", "method": "sharpzo", "prompt_dim": 4, "zo_lr": 0})
    step = random_step(cfg, batch=4)
    harness = make_optimizer(cfg, step.model, seed=0, total_steps=10)
    fewshot = make_optimizer(cfg, step.model, seed=0, units={PROMPT: {"prompt.z": step.model.prompt.z}},
                             partial=False)
    assert harness.lr == fewshot.lr == 0.0


def test_an_unset_zo_step_is_filled_in_one_place_and_never_by_an_optimizer():
    assert ZOConfig().with_step(0.01).zo_lr == 0.01 and ZOConfig(zo_lr=0.3).with_step(0.01).zo_lr == 0.3
    assert resolve({"method": "dual", "lr": 0.02}).zo.zo_lr == 0.02, "the literal setting: the harness lr"
    net = torch.nn.Linear(3, 1)
    with pytest.raises(ZolibError, match="unset"):
        HybridOptimizer(net, {"u": [net.weight]}, {"u": "zo"}, zo=ZOConfig())
