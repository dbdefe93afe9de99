"""What a run's units did, so that a claim about ZO can be tested (zolib.claims):

- ``movement``: after each task, how far the parameters moved from their initial values,
  ``|theta_t - theta_0| / |theta_0|``, per branch and per unit mode (``zo`` / ``fo`` / ``frozen``);
- ``zo_effect``: after the final task, the share of test images whose predicted class changes
  when the ZO units are put back to their initial values (``flip_rate``), and the accuracy of
  that reverted model: for Dual the reverted model is the frozen one, for a hybrid the FO
  units' learning alone.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from ..models import trainable_units
from .config import ExperimentConfig
from .evaluation import accuracy, predict

ZO_ACTED = 0.01
"""The one threshold of "the ZO units acted": the share of predictions that putting them back must change
(test images for a run, held-out images for a calibration step)."""


def acted(flip_rate: float) -> bool:
    """Whether ZO units whose reverting changes ``flip_rate`` of the predictions acted (:data:`ZO_ACTED`)."""
    return flip_rate >= ZO_ACTED


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable (adapter) parameters."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def movement(cfg: ExperimentConfig, model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, dict]:
    """``|theta - theta_0| / |theta_0|`` of the trainable parameters, per branch and unit mode (``|theta -
    theta_0|`` itself for a unit that starts at zero: a prompt vector)."""
    modes = cfg.unit_modes(trainable_units(model))
    sums: dict[str, dict[str, list[float]]] = {}
    for key, params in trainable_units(model).items():
        for name, p in params.items():
            d = sums.setdefault(key[0], {}).setdefault(modes[key], [0.0, 0.0])
            d[0] += float((p.detach().cpu() - initial[name]).double().square().sum())
            d[1] += float(initial[name].double().square().sum())
    return {b: {m: math.sqrt(v[0] / v[1]) if v[1] else math.sqrt(v[0]) for m, v in by_mode.items()}
            for b, by_mode in sums.items()}


@contextmanager
def revert_zo(cfg: ExperimentConfig, model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> Iterator[None]:
    """Within the block the ZO units hold their initial values; afterwards, what they had."""
    modes = cfg.unit_modes(trainable_units(model))
    zo_params = [(n, p) for k, ps in trainable_units(model).items() if modes[k] == "zo" for n, p in ps.items()]
    saved = [p.detach().clone() for _, p in zo_params]
    with torch.no_grad():
        for name, p in zo_params:
            p.copy_(initial[name].to(p.device))
    try:
        yield
    finally:
        with torch.no_grad():
            for (_, p), value in zip(zo_params, saved):
                p.copy_(value)


def zo_effect(cfg: ExperimentConfig, model: torch.nn.Module, bench, tok, device: torch.device,
              initial: dict[str, torch.Tensor], final: dict | None = None) -> dict[str, float]:
    """Put the ZO units back to their initial values and compare predictions over all test images
    (see the module docstring); the model is left as it was. ``final``: the predictions of the
    final task's evaluation (over all classes), when at hand."""
    classes = bench.scenario.seen_classes(bench.scenario.num_tasks - 1)
    idx = np.flatnonzero(np.isin(bench.test_targets, classes))
    if final:
        pred, labels = final["pred"], final["labels"]
    else:
        pred, labels = predict(model, bench, classes, idx, tok, device, cfg.eval_batch_size)
    with revert_zo(cfg, model, initial):
        reverted, _ = predict(model, bench, classes, idx, tok, device, cfg.eval_batch_size)
    return {"flip_rate": float(np.mean(pred != reverted)), "flips": int(np.sum(pred != reverted)),
            "test_images": int(len(pred)), "last_reverted": accuracy(np.sum(reverted == labels), len(labels))}
