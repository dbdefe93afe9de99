"""Memory: an all-ZO branch saves nothing for backward; Dual-ZO saves nothing at all; FO does."""
from __future__ import annotations

import pytest
import torch

from zolib.analysis import (PeakMemory, SavedTensors, branch_gates, measure_step,
                            optimizer_state_bytes, parameter_bytes)
from zolib.models import MoEConfig, build_adapted_clip, clip_logits, clip_loss, tokenizer, trainable_units
from zolib.cl.factory import build_optimizer


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16)).train()
    images = torch.randn(4, 3, 32, 32)
    tokens = tokenizer("zolib-tiny")([f"a photo of a thing number {i}" for i in range(5)])
    labels = torch.tensor([0, 1, 2, 3])
    return model, lambda: clip_loss(clip_logits(model, images, tokens), labels)


def run(clip, method: str, **options):
    model, closure = clip
    model.zero_grad(set_to_none=True)
    opt = build_optimizer(model, method, **options)
    params = [p for g in opt.param_groups for p in g["params"]]
    result, report = measure_step(lambda: opt.step(closure), model, params, [opt], gates=branch_gates(model))
    return opt, result, report


@pytest.mark.parametrize("method,zo_branch,fo_branch", [("vision", "vision", "text"), ("language", "text", "vision")])
def test_an_all_zo_branch_saves_no_tensors(clip, method, zo_branch, fo_branch):
    _, result, report = run(clip, method)
    assert report.saved_count[zo_branch] == 0 and report.saved_bytes[zo_branch] == 0
    assert report.saved_count[fo_branch] > 0 and report.saved_bytes[fo_branch] > 0
    assert result.forwards == 4  # default: conservative one-sided, q = 1, 3 candidates


def test_dual_zo_saves_nothing_and_keeps_no_gradients_or_state(clip):
    opt, result, report = run(clip, "dual")
    assert report.saved_count["total"] == 0 and report.saved_bytes["total"] == 0
    assert report.gradient_bytes == 0 and report.optimizer_state_bytes == 0
    _, _, aggressive = run(clip, "dual", rule="aggressive")
    assert aggressive.saved_count["total"] == 0


def test_fo_saves_activations_grads_and_adam_state(clip):
    model, _ = clip
    opt, result, report = run(clip, "fo")
    trainable = parameter_bytes(p for unit in trainable_units(model).values() for p in unit.values())
    assert report.saved_count["vision"] > 0 and report.saved_count["text"] > 0
    assert report.gradient_bytes == report.parameter_bytes == trainable
    assert report.optimizer_state_bytes >= 2 * trainable  # AdamW exp_avg + exp_avg_sq
    _, _, dual = run(clip, "dual")
    assert dual.peak_bytes < report.peak_bytes


def test_layerwise_zo_still_backpropagates_through_its_branch(clip):
    _, _, report = run(clip, "hop-odd-vision")
    assert report.saved_count["vision"] > 0 and report.saved_count["text"] > 0


def test_counters_measure_what_they_claim():
    w = torch.nn.Parameter(torch.randn(100, 100))
    x = torch.randn(10, 100, requires_grad=True)
    with SavedTensors(exclude=[w]) as saved:
        torch.tanh(x @ w).sum()  # saves x, w (a parameter: not counted in bytes) and tanh's output
    assert saved.count["total"] == 3 and saved.bytes["total"] == 2 * 10 * 100 * 4
    with PeakMemory() as peak:
        a = torch.ones(1000)
        b = torch.ones(1000)
        del a, b
        c = torch.ones(500)
    assert peak.peak == 8000 and peak.current == 2000 and c.numel() == 500
    opt = torch.optim.Adam([w])
    w.grad = torch.ones_like(w)
    opt.step()
    assert optimizer_state_bytes(opt) == 2 * 100 * 100 * 4 + 4
