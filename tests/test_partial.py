"""Partial probes: a perturbed forward recomputes only what its perturbation changes, and loses nothing.

Every probe and conservative candidate of a step must give the loss of a full forward, bit for bit on
CPU, for MoE and LoRA adapters, every kind of method (branch-wise, hop, prefix, suffix, custom mask),
one- and two-sided estimates, q > 1 and block perturbation.
"""
import copy

import pytest
import torch

from zolib.models import MoEConfig, build_adapted_clip, clip_logits, clip_loss, tokenizer
from zolib.models.partial import PartialForward
from zolib.cl.factory import build_optimizer

pytestmark = pytest.mark.usefixtures("single_thread")

METHODS = ["dual", "vision", "language", "hop-odd-vision", "hop-even-both", "prefix6-language", "suffix6-vision",
           "custom:vision=000000000011,text=010000000000"]
SETTINGS = [{}, {"rule": "aggressive", "estimator": "two-sided", "q": 3}, {"perturbation": "block", "rule": "aggressive"},
            {"q": 2, "sign": "elementwise"}]


@pytest.fixture(scope="module", params=["moe", "lora"])
def clip(request):
    torch.manual_seed(0)
    model = build_adapted_clip("zolib-tiny", "none", request.param, moe=MoEConfig(bottleneck=16)).train()
    with torch.no_grad():  # adapters away from their identity start, so every unit matters
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn_like(p))
    images = torch.randn(8, 3, 32, 32)
    tokens = tokenizer("zolib-tiny")([f"a photo of a thing number {i}." for i in range(5)])
    labels = torch.arange(8) % 5
    return model, images, tokens, labels


def steps(clip, method, settings, partial, n=2):
    base, images, tokens, labels = clip
    model = copy.deepcopy(base)
    opt = build_optimizer(model, method, partial=partial, zo_lr=0.05, seed=7, **settings)
    out = [opt.step(lambda: clip_loss(clip_logits(model, images, tokens), labels)) for _ in range(n)]
    return out, model.state_dict(), opt


@pytest.mark.parametrize("settings", SETTINGS, ids=["conservative", "two-sided-q3", "block", "sign-q2"])
@pytest.mark.parametrize("method", METHODS)
def test_partial_probes_give_the_full_forward_losses_bit_for_bit(clip, method, settings):
    fast, fast_state, opt = steps(clip, method, settings, partial=True)
    full, full_state, _ = steps(clip, method, settings, partial=False)
    starts_at_zero = method in ("dual", "hop-even-both") and settings.get("perturbation") != "block"
    assert (opt._partial is None) == starts_at_zero, "on for CLIP wherever a probe can skip something"
    for a, b in zip(fast, full):
        assert a.loss == b.loss and a.forwards == b.forwards
        assert a.info["projected"] == b.info["projected"], "every probe's loss difference, exactly"
        assert a.info.get("candidate_losses") == b.info.get("candidate_losses")
    assert all(torch.equal(fast_state[k], full_state[k]) for k in fast_state)


def test_a_probe_runs_only_the_perturbed_part(clip):
    """Language-ZO: probes never run the vision encoder; suffix6-vision probes start at vision layer 6."""
    model, images, tokens, labels = clip
    runs = {"visual": 0, "text": 0, "vision blocks": []}
    model.visual.register_forward_hook(lambda *a: runs.__setitem__("visual", runs["visual"] + 1))
    model.transformer.register_forward_hook(lambda *a: runs.__setitem__("text", runs["text"] + 1))
    hooks = [b.ln_1.register_forward_pre_hook(lambda m, a, i=i: runs["vision blocks"].append(i))
             for i, b in enumerate(model.visual.transformer.resblocks)]  # ln_1 runs only where a block computes
    opt = build_optimizer(model, "language")
    result = opt.step(lambda: clip_loss(clip_logits(model, images, tokens), labels))
    assert result.forwards == 4 and runs["visual"] == 1 and runs["text"] == 4
    runs["vision blocks"].clear()
    opt = build_optimizer(model, "suffix6-vision")
    opt.step(lambda: clip_loss(clip_logits(model, images, tokens), labels))
    probes = runs["vision blocks"][12:]  # after the unperturbed forward: 3 forwards from layer 6 up
    assert probes == list(range(6, 12)) * 3
    for h in hooks:
        h.remove()
    assert result.info["cached_bytes"] > 0


def test_the_cache_is_released_and_an_all_zo_branch_still_saves_nothing(clip):
    from zolib.analysis import SavedTensors, branch_gates
    model, images, tokens, labels = clip
    opt = build_optimizer(model, "vision")
    with SavedTensors(branch_gates(model), exclude=model.parameters()) as saved:
        opt.step(lambda: clip_loss(clip_logits(model, images, tokens), labels))
    assert saved.count["vision"] == 0 and saved.count["text"] > 0
    assert not opt._partial.inputs and not any(opt._partial.features.values()), "released after the step"
    assert PartialForward.supports(model)
