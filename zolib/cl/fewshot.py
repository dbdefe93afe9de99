"""SharpZO's own setting on the synthetic world: few-shot prompt tuning at a fixed query budget.

All 100 classes at once, ``shots`` training images per class (SharpZO: 16), the prompt context tuned
by one of the prompt methods (``coop``, ``prompt-zo-sgd``, ``prompt-cma-es``, ``sharpzo``, or
``frozen``), then accuracy over the whole test set. The training images' features are computed once
(the image side does not depend on the prompt), so a query is one text-encoder forward over the 100
class prompts and the loss over every cached feature (full batch).

The budget is counted in forwards ("queries"): ZO-SGD spends 2 per step, CMA-ES ``population`` per
step (plus the mean's loss), SharpZO's stage 1 ``1 + 2 dim + population`` and its stage 2 2; CoOp,
trained by backprop, is charged 3 per step (a forward and a backward of about twice its cost). Each method stops at the
first step that would exceed the budget.
"""
from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from ..models import clip_loss, feature_logits, tokenizer
from ..models.units import PROMPT
from ..runtime import provenance, seed_everything
from .config import ExperimentConfig
from .factory import build_model, load_benchmark, make_optimizer, resolve_device


def run_fewshot(cfg: ExperimentConfig, shots: int = 16, queries: int = 2000) -> dict[str, Any]:
    """Tune ``cfg``'s prompt context on ``shots`` images per class within ``queries`` forwards; returns the
    test accuracy, the zero-shot accuracy, the queries spent, the training-loss curve and ``zo_effect``
    (the share of test predictions the tuned prompt changed against the zero-shot one)."""
    if cfg.classifier != "prompt" and cfg.method != "frozen":
        raise ValueError(f"few-shot prompt tuning needs a prompt method (coop, prompt-zo-sgd, prompt-cma-es, "
                         f"sharpzo) or frozen; got {cfg.method}")
    device = resolve_device(cfg.device)
    joint = cfg.replace(protocol="joint")
    seed_everything(cfg.seed)
    bench = load_benchmark(joint)
    rng = np.random.RandomState(cfg.seed)
    picks = np.concatenate([rng.choice(np.flatnonzero(bench.train_targets == c), shots, replace=False)
                            for c in range(len(bench.class_names))])
    model = build_model(joint, device, bench=bench)
    model.eval()
    tok = tokenizer(cfg.model_name)
    tokens = tok(bench.prompts(range(len(bench.class_names)))).to(device)
    with torch.no_grad():
        images, labels = bench.train.tensors
        feats = model.encode_image(images[torch.as_tensor(picks)].to(device), normalize=True)
        targets = labels[torch.as_tensor(picks)].to(device)
        test_images, test_labels = bench.test.tensors
        test_feats = torch.cat([model.encode_image(x.to(device), normalize=True) for x in test_images.split(500)])

    def loss() -> torch.Tensor:
        return clip_loss(feature_logits(model, feats, model.encode_text(tokens, normalize=True)), targets)

    @torch.no_grad()
    def test_predictions() -> torch.Tensor:
        return (test_feats @ model.encode_text(tokens, normalize=True).T).argmax(1).cpu()

    def accuracy(pred: torch.Tensor) -> float:
        return 100.0 * int((pred == test_labels).sum()) / len(test_labels)

    before = test_predictions()
    zero_shot = accuracy(before)
    spent, curve, start = 0, [], time.perf_counter()
    if cfg.classifier == "prompt":
        # the harness's optimizer at a constant step (no task length to schedule over), without partial
        # forwards: the loss already runs only the text encoder, on cached image features
        opt = make_optimizer(cfg, model, seed=cfg.seed, units={PROMPT: {"prompt.z": model.prompt.z}}, partial=False)
        fo = cfg.sharpzo.prompt_mode == "fo"
        cost = lambda: 3 if fo else opt.forwards_per_step  # noqa: E731 (the next step's cost)
        while spent + cost() <= queries:
            spent += cost()
            result = opt.step(loss)
            if not math.isfinite(result.loss):
                break
            curve.append((spent, result.loss))
    after = test_predictions()
    flips = int((after != before).sum())
    return {"method": cfg.method, "shots": shots, "budget": queries, "queries": spent, "accuracy": accuracy(after),
            "zero_shot": zero_shot, "zo_effect": {"flip_rate": flips / len(after), "flips": flips},
            "curve": curve, "seconds": time.perf_counter() - start,
            "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}
