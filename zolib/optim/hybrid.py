"""The hybrid FO/ZO optimizer: backprop (AdamW) on FO units, ZO estimates on ZO units.

Shape like ``torch.optim``: one param group per unit, carrying ``mode`` ("fo"/"zo"), ``eps``,
``lr`` (scheduled) and ``base_lr``; ``step(closure)``, where ``closure()`` runs one forward and
returns the scalar loss tensor WITHOUT calling ``backward``. One step:

1. When any unit is ZO, every module is put in eval mode for the whole step (dropout and
   MoE router noise off), so all losses of the step see the same deterministic function;
   each module's training flag is restored afterwards. An all-FO step keeps train mode.
2. ``L(theta)``: with FO units, one forward with autograd while the ZO parameters have
   ``requires_grad=False`` (restored after), then ``backward`` for the FO units, so autograd
   records nothing for an all-ZO branch. Without FO units it runs under ``inference_mode``.
3. ZO estimate (:mod:`zolib.optim.zo`), all perturbed forwards under ``torch.inference_mode``
   (like ``no_grad``, a little faster; so the closure must not keep tensors it makes for a
   later autograd pass), reusing ``L(theta)`` in one-sided mode.
4. ZO update (:mod:`zolib.optim.rules`), scaled by ``mix`` (the paper's lambda, default 1).
   Conservative candidates move all ZO units together (in block mode too) and are
   evaluated with the FO units still at ``theta``.
5. FO update: ``torch.optim.AdamW`` over the FO parameters (weight decay ``weight_decay``).
   ZO parameters get the same decoupled decay ``p *= 1 - lr * weight_decay`` after their
   update (not seen by the candidate forwards).

Forward passes per step (``q`` directions, ``U`` ZO units, ``C`` candidates; checked by
tests/test_optim_hybrid.py and :func:`forwards_per_step`):

=========  ==========  ==============  ======================  ==========================
FO units   estimator   rule            joint perturbation      block-wise perturbation
=========  ==========  ==============  ======================  ==========================
only FO    -           -               1 (+ backward)          1 (+ backward)
any        one-sided   aggressive      1 + q                   1 + q U
any        one-sided   conservative    1 + q + (C - 1)         1 + q U + (C - 1)
some       two-sided   aggressive      1 + 2 q                 1 + 2 q U
none       two-sided   aggressive      2 q                     2 q U
any        two-sided   conservative    1 + 2 q + (C - 1)       1 + 2 q U + (C - 1)
=========  ==========  ==============  ======================  ==========================

A pure-ZO two-sided aggressive step skips ``L(theta)`` (MeZO's cost, 2 forwards at q = 1) and
reports the mean of the perturbed losses, ``L(theta) + O(eps^2)``. Every other step reports
``L(theta)`` before the update.

Learning rate: ``lr`` for FO units, ``zo.lr`` (default ``lr``) for ZO units, both multiplied by
the same factor: ``schedule(step)`` when given (e.g. :func:`zolib.cl.trainer.warmup_cosine`), else whatever
:meth:`HybridOptimizer.set_lr_scale` or a ``torch.optim.lr_scheduler.LambdaLR`` set (use one).
A NaN or infinite loss in any forward raises :class:`zolib.errors.NanLossError` before any
parameter of that step is written, with one exception: a conservative candidate whose loss is
not finite is rejected (its loss counts as ``+inf``), since the rule keeps the candidate with the
lowest loss and ``theta``'s is finite. Modes are fixed at construction.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Mapping

import torch
from torch import nn

from ..errors import ZolibError, check_choice
from .directions import step_seed
from .rules import UpdateRule, candidate_multipliers
from .zo import (Estimate, Substitution, Units, ZOConfig, estimate, eval_mode, loss_value, make_groups,
                 normalize_units)

MODES = ("fo", "zo")


@dataclass
class StepResult:
    """What one step did: ``loss`` (see the module docstring), forwards run, rule details."""

    loss: float
    forwards: int
    info: dict[str, Any] = field(default_factory=dict)


def forwards_per_step(zo: ZOConfig, n_zo_units: int, has_fo: bool) -> int:
    """Forward passes of one step: the table in this module's docstring."""
    if n_zo_units == 0:
        return 1
    probes = zo.q * (n_zo_units if zo.perturbation == "block" else 1)
    two_sided = zo.estimator == "two-sided"
    needs_loss0 = has_fo or not two_sided or zo.rule == "conservative"
    extra = zo.candidates - 1 if zo.rule == "conservative" else 0
    return int(needs_loss0) + probes * (2 if two_sided else 1) + extra


class HybridOptimizer(torch.optim.Optimizer):
    """FO (AdamW) on the units whose mode is ``"fo"``, ZO on those whose mode is ``"zo"``.

    ``units``: ``{key: {name: Parameter}}`` or ``{key: [Parameter, ...]}`` (for CLIP,
    :func:`zolib.models.trainable_units`); ``modes``: ``{key: "fo" | "zo"}`` for every unit.
    """

    def __init__(self, model: nn.Module, units: Units, modes: Mapping[Hashable, str], *, lr: float = 1e-3,
                 weight_decay: float = 0.0, zo: ZOConfig = ZOConfig(), mix: float = 1.0,
                 schedule: Callable[[int], float] | None = None):
        units = normalize_units(units)
        if set(modes) != set(units):
            missing = [k for k in units if k not in modes] or [k for k in modes if k not in units]
            raise ZolibError(f"modes must name every unit exactly once; mismatch at {missing[0]!r}")
        for mode in modes.values():
            check_choice("unit mode", mode, MODES)
        zo_lr = lr if zo.lr is None else zo.lr
        groups = []
        for key, params in units.items():
            group_lr = zo_lr if modes[key] == "zo" else lr
            groups.append(dict(params=list(params.values()), names=list(params), unit=key, mode=modes[key],
                               eps=zo.eps_for(key), lr=group_lr, base_lr=group_lr, weight_decay=weight_decay))
        super().__init__(groups, dict(lr=lr, weight_decay=weight_decay))
        self.model, self.zo, self.mix, self.schedule = model, zo, mix, schedule
        self.rule = UpdateRule(zo)
        self.steps = 0
        zo_units = OrderedDict((k, ps) for k, ps in units.items() if modes[k] == "zo")
        self._zo = make_groups(model, zo_units, zo.eps_for)
        fo = self._groups("fo")
        self._adamw = torch.optim.AdamW(
            [dict(params=g["params"], lr=g["lr"], weight_decay=weight_decay) for g in fo],
            lr=lr, weight_decay=weight_decay) if fo else None

    def _groups(self, mode: str) -> list[dict]:
        return [g for g in self.param_groups if g["mode"] == mode]

    @property
    def forwards_per_step(self) -> int:
        """Forward passes each :meth:`step` runs (see the module docstring)."""
        return forwards_per_step(self.zo, len(self._zo), bool(self._groups("fo")))

    def set_lr_scale(self, factor: float) -> None:
        """Set every group's lr to ``base_lr * factor`` (FO and ZO alike)."""
        for g in self.param_groups:
            g["lr"] = g["base_lr"] * factor

    def step(self, closure: Callable[[], torch.Tensor]) -> StepResult:  # type: ignore[override]
        """One hybrid step; ``closure()`` returns the loss tensor and must not call backward."""
        if closure is None:
            raise TypeError("HybridOptimizer.step needs a closure that returns the loss (without backward)")
        if self.schedule is not None:
            self.set_lr_scale(self.schedule(self.steps))
        zo, zo_pgs = self.zo, self._groups("zo")
        for g, pg in zip(self._zo, zo_pgs):
            g.eps = pg["eps"]
        has_fo = self._adamw is not None
        info: dict[str, Any] = {}
        loss0, losses, forwards = None, [], 0
        with eval_mode(self.model, enabled=bool(self._zo)):
            if has_fo:
                loss0, forwards = self._fo_forward_backward(closure), 1
            elif zo.estimator == "one-sided" or zo.rule == "conservative":
                with torch.inference_mode():
                    loss0, forwards = loss_value(closure(), self.steps, "unperturbed"), 1
            if self._zo:
                with torch.inference_mode():
                    est, losses = estimate(closure, self._zo, zo, step_seed(zo.seed, self.steps), loss0, self.steps)
                    forwards += len(losses)
                    multiplier = -1
                    if zo.rule == "conservative":
                        multiplier, info["candidate_losses"] = self._choose(closure, est, loss0)
                        forwards += len(info["candidate_losses"]) - 1
                with torch.no_grad():
                    self._apply(est, multiplier, zo_pgs)
                info.update(multiplier=multiplier, projected=est.coefs)
            if has_fo:
                for ag, g in zip(self._adamw.param_groups, self._groups("fo")):
                    ag["lr"], ag["weight_decay"] = g["lr"], g["weight_decay"]
                self._adamw.step()
        self.steps += 1
        loss = loss0 if loss0 is not None else sum(losses) / len(losses)
        return StepResult(loss, forwards, info)

    def _fo_forward_backward(self, closure: Callable[[], torch.Tensor]) -> float:
        zo_params = [e.param for g in self._zo for e in g.entries]
        flags = [p.requires_grad for p in zo_params]
        for g in self._groups("fo"):
            for p in g["params"]:
                p.grad = None
        try:
            for p in zo_params:
                p.requires_grad_(False)
            with torch.enable_grad():
                loss = closure()
                value = loss_value(loss, self.steps, "unperturbed")
                loss.backward()
        finally:
            for p, flag in zip(zo_params, flags):
                p.requires_grad_(flag)
        return value

    def _choose(self, closure, est: Estimate, loss0: float) -> tuple[int, dict[int, float]]:
        """Evaluate the conservative candidates; return the best multiplier and all losses."""
        alphas = [pg["lr"] * self.mix for pg in self._groups("zo")]
        entries = [e for g in self._zo for e in g.entries]
        losses = {0: loss0}
        for m in candidate_multipliers(self.zo.candidates)[1:]:
            def fill(e, t, m=m):
                self.rule.add_(t, e, est, self.state[e.param], m * alphas[e.group])
            with Substitution(entries, fill):
                value = float(closure())
            losses[m] = value if math.isfinite(value) else math.inf  # a diverging candidate is rejected
        return min(losses, key=losses.__getitem__), losses

    def _apply(self, est: Estimate, multiplier: int, zo_pgs: list[dict]) -> None:
        for g, pg in zip(self._zo, zo_pgs):
            decay = pg["lr"] * pg["weight_decay"]
            for e in g.entries:
                self.rule.add_(e.param, e, est, self.state[e.param], multiplier * pg["lr"] * self.mix, commit=True)
                if decay:
                    e.param.mul_(1 - decay)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim state (ZO momentum/Adam buffers) plus the step count and AdamW's state."""
        sd = super().state_dict()
        sd["steps"] = self.steps
        if self._adamw is not None:
            sd["adamw"] = self._adamw.state_dict()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the step count also fixes the next directions)."""
        sd = dict(state_dict)
        self.steps = sd.pop("steps", 0)
        adamw = sd.pop("adamw", None)
        if adamw is not None and self._adamw is not None:
            self._adamw.load_state_dict(adamw)
        super().load_state_dict(sd)
