"""The hybrid FO/ZO optimizer: backprop (AdamW) on FO units, ZO estimates on ZO units.

Shape like ``torch.optim``: one param group per unit, carrying ``mode`` ("fo", "zo" or
"frozen"), ``eps``, ``lr`` (scheduled) and ``base_lr``; ``step(closure)``, where ``closure()``
runs one forward and returns the scalar loss tensor WITHOUT calling ``backward``. A unit is
``frozen`` when its mode says so or when it is ZO with ``zo.zo_lr == 0`` (the *control* of a
hybrid method: the same mask, its ZO units held fixed, no ZO forwards at all).

Train/eval mode, one rule for every step of every method (FO, hybrid, ZO):

- the modules of FO units (for CLIP: each FO unit's MoE adapter) run in **train** mode (expert
  dropout and router noise on, as MoE-Adapters4CL trains), or in eval mode with
  ``fo_train_mode=False`` (the variant notebook 03 compares like with like);
- every other module (the frozen CLIP, ZO and frozen units) runs in **eval** mode: a ZO
  difference must measure the perturbation, not dropout;
- every forward of one step draws the same dropout masks and router noise: modules with a
  ``reseed`` method (:class:`zolib.models.MoEAdapter`) are reseeded once per step from
  ``(seed, step, module)``; so the unperturbed and perturbed forwards differ only by the
  perturbation;
- PyTorch's fused multi-head-attention fast path is off during a step with FO units (or a
  forward gradient), so the forward that records autograd and the ``inference_mode`` forwards run
  the same kernels (bit-identical losses on CPU; mixing the two kernels, the unperturbed and
  perturbed losses differ by ~1e-6 from kernels alone). A step without FO units runs every forward
  in inference mode, so they all take the fast path and agree bit for bit at its speed (1.29 times
  faster a forward on ViT-B/16, CPU).

Each module's training flag and the fast-path setting are restored after the step.

One step:

1. ``L(theta)``: with FO units, one forward with autograd while the ZO and frozen parameters
   have ``requires_grad=False`` (restored after), then ``backward`` for the FO units, so autograd
   records nothing for a branch without FO units. Without FO units it runs under ``inference_mode``.
2. ZO estimate (:mod:`zolib.optim.zo`), all perturbed forwards under ``torch.inference_mode``
   (so the closure must not keep tensors it makes for a later autograd pass), reusing
   ``L(theta)`` in one-sided mode.
3. ZO update (:mod:`zolib.optim.rules`: the rule's candidates, the sign, the base optimizer), scaled by
   ``mix`` (the paper's lambda, default 1). A rule's candidates (conservative's) move all ZO units
   together (in block mode too) and are evaluated with the FO units still at ``theta``;
   ``info["multiplier"]`` is the candidate kept, ``info["candidate_losses"]`` their losses.
4. FO update: ``torch.optim.AdamW`` over the FO parameters (weight decay ``weight_decay``).
   ZO parameters get the same decoupled decay ``p *= 1 - lr * weight_decay`` after their
   update (not seen by the candidate forwards).

Parameters that a ZO forward cannot inform (:data:`zolib.models.units.ZO_INERT`: the MoE
router-noise matrix, which acts only through train-mode noise) are held fixed in ZO units.

Forward passes per step (``q`` directions, ``U`` ZO units, ``C`` candidates; checked by
tests/test_optim_hybrid.py and :func:`forwards_per_step`). Another rule adds its own
:meth:`~zolib.optim.rules.Rule.forwards` and, where it tries ``theta``, ``L(theta)``, as conservative does:

=========  ==========  ==============  ======================  ==========================
FO units   estimator   rule            joint perturbation      block-wise perturbation
=========  ==========  ==============  ======================  ==========================
any        -           no ZO units     1 (+ backward if FO)    1 (+ backward if FO)
any        one-sided   aggressive      1 + q                   1 + q U
any        one-sided   conservative    1 + q + (C - 1)         1 + q U + (C - 1)
some       two-sided   aggressive      1 + 2 q                 1 + 2 q U
none       two-sided   aggressive      2 q                     2 q U
any        two-sided   conservative    1 + 2 q + (C - 1)       1 + 2 q U + (C - 1)
=========  ==========  ==============  ======================  ==========================

A pure-ZO two-sided aggressive step skips ``L(theta)`` (MeZO's cost, 2 forwards at q = 1) and
reports the mean of the perturbed losses, ``L(theta) + O(eps^2)``. The ``forward-grad`` estimator
counts like ``one-sided`` without its ``L(theta)`` term: one forward with tangents per direction
(about 2-3 times a plain forward), whose primal is ``L(theta)``. Every other step reports
``L(theta)`` before the update. A step without FO or ZO units (the frozen model) runs one
``inference_mode`` forward and changes nothing.

Learning rate: ``lr`` for FO units, ``zo.zo_lr`` for ZO units (a number: the optimizer never picks a
default; :meth:`zolib.optim.zo.ZOConfig.with_step` is the one rule that fills it), both multiplied by
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
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator, Mapping

import torch
from torch import nn

from ..errors import ZolibError, check_choice
from ..models.partial import PartialForward
from ..models.units import zo_inert
from ..rng import mix
from .directions import step_seed
from .rules import RULES, Update
from .zo import (Estimate, Substitution, Units, ZOConfig, ZOGroup, estimate, loss_value, make_groups,
                 normalize_units, owners_of)

MODES = ("fo", "zo", "frozen")
PROMPT_AT = {("prompt", 0): ("text", 0)}  # a prompt context changes the text branch from its input on
FO_OPTIMIZERS = ("adamw", "sgd")  # the FO units' optimizer: AdamW (MoE-Adapters4CL) or SGD with momentum (ZO-FC)


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
    rule = RULES[zo.rule]
    probes = zo.q * (n_zo_units if zo.perturbation == "block" else 1)
    two_sided = zo.estimator == "two-sided"
    needs_loss0 = has_fo or zo.estimator == "one-sided" or rule.needs_loss(zo)
    return int(needs_loss0) + probes * (2 if two_sided else 1) + rule.forwards(zo)


def unit_module(model: nn.Module, params: Mapping[str, nn.Parameter]) -> nn.Module:
    """The smallest module of ``model`` that holds every parameter of a unit (for CLIP with MoE
    adapters: the block's adapter): the module whose train/eval mode the unit's mode decides."""
    names = {m: n for n, m in model.named_modules()}
    owners = owners_of(model)
    paths = [names[m].split(".") if names[m] else [] for p in params.values() for m, _ in owners.get(id(p), [])]
    if not paths:
        return model
    common = paths[0]
    for path in paths[1:]:
        i = 0
        while i < min(len(common), len(path)) and common[i] == path[i]:
            i += 1
        common = common[:i]
    return model.get_submodule(".".join(common)) if common else model


@contextmanager
def step_modes(model: nn.Module, train: list[nn.Module], exact: bool = True) -> Iterator[None]:
    """Every module in eval mode except ``train`` (and their submodules); with ``exact``, PyTorch's fused
    MHA fast path off, so an autograd forward and inference forwards run the same kernels. Restores each
    module's flag and the fast-path setting afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    for m in train:
        m.train()
    if exact:
        torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        for m, training in flags:
            m.training = training


class HybridOptimizer(torch.optim.Optimizer):
    """FO (AdamW) on the units whose mode is ``"fo"``, ZO on those whose mode is ``"zo"``, nothing
    on ``"frozen"`` ones (see the module docstring).

    ``units``: ``{key: {name: Parameter}}`` or ``{key: [Parameter, ...]}`` (for CLIP,
    :func:`zolib.models.trainable_units`); ``modes``: ``{key: "fo" | "zo" | "frozen"}`` for every
    unit; ``seed``: the run's seed of ZO directions and of the per-step dropout/noise draws.
    """

    def __init__(self, model: nn.Module, units: Units, modes: Mapping[Hashable, str], *, lr: float = 1e-3,
                 weight_decay: float = 0.0, zo: ZOConfig = ZOConfig(), mix: float = 1.0,
                 schedule: Callable[[int], float] | None = None, seed: int = 0, fo_train_mode: bool = True,
                 partial: bool = True, fo_optimizer: str = "adamw", fo_momentum: float = 0.9):
        units = normalize_units(units)
        if set(modes) != set(units):
            missing = [k for k in units if k not in modes] or [k for k in modes if k not in units]
            raise ZolibError(f"modes must name every unit exactly once; mismatch at {missing[0]!r}")
        for mode in modes.values():
            check_choice("unit mode", mode, MODES)
        if zo.zo_lr is None and any(m == "zo" for m in modes.values()):
            raise ZolibError("the ZO step zo.zo_lr is unset; give a number (ZOConfig.with_step(lr) takes the FO lr, "
                             "as zolib.cl.config.resolve does)")
        if zo.holds_fixed and any(m == "zo" for m in modes.values()):
            raise ZolibError("ZO units with zo_lr 0 are held fixed: give them mode 'frozen' "
                             "(ExperimentConfig.unit_modes does so for every run)")
        groups = []
        for key, params in units.items():
            group_lr = zo.zo_lr if modes[key] == "zo" else (lr if modes[key] == "fo" else 0.0)
            groups.append(dict(params=list(params.values()), names=list(params), unit=key, mode=modes[key],
                               eps=zo.eps_for(key), lr=group_lr, base_lr=group_lr, weight_decay=weight_decay))
        super().__init__(groups, dict(lr=lr, weight_decay=weight_decay))
        self.model, self.zo, self.mix, self.schedule, self.seed = model, zo, mix, schedule, seed
        self.rule, self.update = RULES[zo.rule], Update(zo)
        self.steps = 0
        zo_units = OrderedDict((k, OrderedDict((n, p) for n, p in ps.items() if not zo_inert(n)))
                               for k, ps in units.items() if modes[k] == "zo")
        self._zo = make_groups(model, zo_units, zo.eps_for)
        self._held = [p for k, ps in units.items() if modes[k] != "fo" for p in ps.values()]
        fo = self._groups("fo")
        check_choice("FO optimizer", fo_optimizer, FO_OPTIMIZERS)
        fo_groups = [dict(params=g["params"], lr=g["lr"], weight_decay=weight_decay) for g in fo]
        self._fo = (None if not fo else torch.optim.AdamW(fo_groups, lr=lr, weight_decay=weight_decay)
                       if fo_optimizer == "adamw" else
                       torch.optim.SGD(fo_groups, lr=lr, momentum=fo_momentum, weight_decay=weight_decay))
        self._train = [unit_module(model, units[g["unit"]]) for g in fo] if fo_train_mode else []
        self._reseed = [m for t in self._train for m in t.modules() if hasattr(m, "reseed")]
        self._partial = self._plan_partial() if partial else None

    def _plan_partial(self) -> PartialForward | None:
        """Partial forwards for a CLIP whose units are (branch, layer): record the input of the lowest
        layer each planned perturbation touches (per branch), see :mod:`zolib.models.partial`."""
        keys = [PROMPT_AT.get(g.key, g.key) for g in self._zo]
        if not keys or self.zo.estimator == "forward-grad" or not PartialForward.supports(self.model) or not all(
                isinstance(k, tuple) and len(k) == 2 and k[0] in ("vision", "text") for k in keys):
            return None
        perturbations = [keys] + ([[k] for k in keys] if self.zo.perturbation == "block" else [])
        starts: dict[str, set[int]] = {"vision": set(), "text": set()}
        saves = False  # whether any perturbed forward can skip anything
        for units in perturbations:
            for branch, low in self._lowest(units).items():
                if low is not None:
                    starts[branch].add(low)
                saves = saves or low != 0
        return PartialForward(self.model, starts) if saves else None

    @staticmethod
    def _lowest(keys) -> dict[str, int | None]:
        keys = [PROMPT_AT.get(k, k) for k in keys]
        return {b: min((l for bb, l in keys if bb == b), default=None) for b in ("vision", "text")}

    def _probe(self, groups) -> Any:
        """The context of a forward that perturbs ``groups`` only (None: a full forward)."""
        return self._partial.replay(self._lowest([g.key for g in groups])) if self._partial else None

    def _groups(self, mode: str) -> list[dict]:
        return [g for g in self.param_groups if g["mode"] == mode]

    # ------------------------------------------------------------------ what measurements read
    @property
    def fo_optimizer(self) -> torch.optim.Optimizer | None:
        """The torch optimizer of the FO units (AdamW or SGD), None without FO units."""
        return self._fo

    @property
    def zo_groups(self) -> list[ZOGroup]:
        """The ZO units as perturbation groups, in seed-index order (read them; do not change them)."""
        return list(self._zo)

    @property
    def train_modules(self) -> list[nn.Module]:
        """The modules a step runs in train mode (the FO units' adapters; see the module docstring)."""
        return list(self._train)

    @property
    def partial_forward(self) -> PartialForward | None:
        """The partial forwards of the probes (:mod:`zolib.models.partial`), None where probes run full forwards."""
        return self._partial

    def lowest_perturbed(self, keys=None) -> dict[str, int | None]:
        """The lowest layer of each branch that perturbing the units ``keys`` (default: every ZO unit) changes."""
        return self._lowest([g.key for g in self._zo] if keys is None else keys)

    def probe_context(self, groups=None) -> Any:
        """The context a probe perturbing ``groups`` (default: every ZO unit) runs in: a partial forward
        after :meth:`partial_forward` recorded the unperturbed one, else None (a full forward)."""
        return self._probe(self._zo if groups is None else groups)

    def state_of(self, param: torch.Tensor) -> dict[str, Any]:
        """Every optimizer-state tensor ``param`` holds: the FO optimizer's (AdamW moments, SGD momentum) and
        the ZO rule's (momentum, Adam moments), for byte accounting."""
        out = dict(self._fo.state.get(param, {})) if self._fo is not None else {}
        out.update(self.state.get(param, {}))
        return out

    def state_bytes(self) -> int:
        """Bytes of all optimizer state (FO and ZO), as :meth:`state_of` sees it."""
        params = [p for g in self.param_groups for p in g["params"]]
        return sum(t.numel() * t.element_size() for p in params for t in self.state_of(p).values()
                   if isinstance(t, torch.Tensor))

    @property
    def forwards_per_step(self) -> int:
        """Forward passes each :meth:`step` runs (see the module docstring)."""
        return forwards_per_step(self.zo, len(self._zo), bool(self._groups("fo")))

    def hold(self, unit: Hashable) -> None:
        """Hold ``unit`` fixed from the next step on (its learning rate becomes 0), e.g. ZO-FC's head after
        its ``fc_epochs``."""
        for g in self.param_groups:
            if g["unit"] == unit:
                g["base_lr"] = g["lr"] = 0.0

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
        has_fo = self._fo is not None
        info: dict[str, Any] = {}
        loss0, losses, forwards = None, [], 0
        for i, m in enumerate(self._reseed):
            m.reseed(mix(self.seed, self.steps, i))
        record = self._partial.record() if self._partial else nullcontext()
        # the fast path stays on where every forward of the step runs in inference mode (no FO units): they
        # all use the same fused kernels, bit for bit; it goes off where an autograd forward (FO units) or a
        # forward with tangents (forward-grad, which the fused kernels do not support) must match the others
        exact = has_fo or zo.estimator == "forward-grad"
        with step_modes(self.model, self._train, exact):
            if has_fo:
                with record:
                    loss0, forwards = self._fo_forward_backward(closure), 1
            elif not self._zo or zo.estimator == "one-sided" or self.rule.needs_loss(zo):
                with torch.inference_mode(), record:
                    loss0, forwards = loss_value(closure(), self.steps, "unperturbed"), 1
            if self._zo:
                probe = self._probe if self._partial and self._partial.ready else None
                with torch.inference_mode():
                    est, losses = estimate(closure, self._zo, zo, step_seed(self.seed, self.steps), loss0,
                                           self.steps, probe)
                    forwards += len(losses)
                    if zo.clip_norm:
                        norm = est.norm([e for g in self._zo for e in g.entries])
                        if norm > zo.clip_norm:
                            est.scale(zo.clip_norm / norm)
                    multipliers = self.rule.multipliers(zo)
                    if len(multipliers) == 1:
                        multiplier = multipliers[0]
                    else:
                        info["candidate_losses"] = self._candidate_losses(closure, est, loss0, multipliers)
                        multiplier = self.rule.choose(info["candidate_losses"])
                        forwards += sum(m != 0 for m in multipliers)
                with torch.no_grad():
                    self._apply(est, multiplier, zo_pgs)
                info.update(multiplier=multiplier, projected=est.coefs)
                if self._partial:
                    info["cached_bytes"] = self._partial.cached_bytes
                    self._partial.clear()
            if has_fo:
                for ag, g in zip(self._fo.param_groups, self._groups("fo")):
                    ag["lr"], ag["weight_decay"] = g["lr"], g["weight_decay"]
                self._fo.step()
        for m in self._reseed:
            m.reseed(None)
        self.steps += 1
        loss = loss0 if loss0 is not None else sum(losses) / len(losses)
        return StepResult(loss, forwards, info)

    def _fo_forward_backward(self, closure: Callable[[], torch.Tensor]) -> float:
        flags = [p.requires_grad for p in self._held]
        for g in self._groups("fo"):
            for p in g["params"]:
                p.grad = None
        try:
            for p in self._held:
                p.requires_grad_(False)
            with torch.enable_grad():
                loss = closure()
                value = loss_value(loss, self.steps, "unperturbed")
                loss.backward()
        finally:
            for p, flag in zip(self._held, flags):
                p.requires_grad_(flag)
        return value

    def _candidate_losses(self, closure, est: Estimate, loss0: float | None,
                          multipliers: list[int]) -> dict[int, float]:
        """``{m: L(theta + m Delta)}`` for the rule's candidates, in order (``m = 0``: ``loss0``, no forward)."""
        alphas = [pg["lr"] * self.mix for pg in self._groups("zo")]
        entries = [e for g in self._zo for e in g.entries]
        losses = {}
        partial = self._partial is not None and self._partial.ready
        for m in multipliers:
            if m == 0:
                losses[0] = loss0
                continue

            def candidate(e, p, m=m):
                t = p.clone()
                self.update.add_(t, e, est, self.state[e.param], m * alphas[e.group])
                return t
            with Substitution(entries, candidate), (self._probe(self._zo) if partial else nullcontext()):
                value = float(closure())
            losses[m] = value if math.isfinite(value) else math.inf  # a diverging candidate is rejected
        return losses

    def _apply(self, est: Estimate, multiplier: int, zo_pgs: list[dict]) -> None:
        for g, pg in zip(self._zo, zo_pgs):
            decay = pg["lr"] * pg["weight_decay"]
            for e in g.entries:
                self.update.add_(e.param, e, est, self.state[e.param], multiplier * pg["lr"] * self.mix, commit=True)
                if decay:
                    e.param.mul_(1 - decay)

    def state_dict(self) -> dict[str, Any]:
        """torch.optim state (ZO momentum/Adam buffers) plus the step count and AdamW's state."""
        sd = super().state_dict()
        sd["steps"] = self.steps
        if self._fo is not None:
            sd["fo"] = self._fo.state_dict()
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (the step count also fixes the next directions)."""
        sd = dict(state_dict)
        self.steps = sd.pop("steps", 0)
        adamw = sd.pop("fo", None)
        if adamw is not None and self._fo is not None:
            self._fo.load_state_dict(adamw)
        super().load_state_dict(sd)
