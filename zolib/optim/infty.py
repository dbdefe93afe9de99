"""The `infty` package's ZeroFlow optimizer (the ZeroFlow authors' own code), behind zolib's step interface.

Used only to cross-check zolib's ZeroFlow family (notebook 07): ``zo_backend="infty"`` trains the same
method, benchmark and seeds with infty's implementation instead of zolib's. infty perturbs every
parameter of the model that requires grad, in place (MeZO's trick), draws its directions from the
global torch RNG seeded by NumPy's, and writes the estimate into ``.grad`` for a torch base
optimizer (SGD, SGD with momentum, or Adam). So it runs only where every trained unit is ZO (Dual),
with one eps for all units; the MoE router-noise matrix and held-fixed units are hidden from it
(``requires_grad`` off during its step). ``pip install infty`` (not a zolib dependency).
"""
from __future__ import annotations

from typing import Callable, Hashable, Mapping

import torch
from torch import nn

from ..errors import ZolibError
from ..models.units import zo_inert
from .hybrid import StepResult
from .zo import Units, ZOConfig, loss_value, normalize_units


def infty_name(zo: ZOConfig) -> str:
    """The ``inftyopt`` of infty's ZeroFlow that matches ``zo`` (one-line error where none does)."""
    if zo.estimator == "forward-grad":
        raise ZolibError("infty's forward_grad needs a functional closure; cross-check the forward gradient against "
                         "autograd instead (tests/test_zo_family.py)")
    if zo.eps_vision not in (None, zo.eps) or zo.eps_text not in (None, zo.eps) or zo.perturbation != "joint":
        raise ZolibError("infty's ZeroFlow has one eps and perturbs all parameters jointly")
    if zo.clip_norm or zo.sign == "elementwise":
        raise ZolibError("infty's ZeroFlow has no gradient clipping and only the projected sign")
    base = "zo_adam" if zo.adam_betas is not None else "zo_sgd"
    if zo.rule == "conservative":
        if zo.q != 1 or zo.candidates != 3:
            raise ZolibError("infty's conservative rule uses q = 1 and 3 candidates")
        return base + "_conserve"
    return base + ("_sign" if zo.sign == "projected" else "")


class InftyZeroFlow:
    """infty's ``ZeroFlow`` over the ZO units, with zolib's schedule and ``step(closure) -> StepResult``."""

    def __init__(self, model: nn.Module, units: Units, modes: Mapping[Hashable, str], *, zo: ZOConfig,
                 schedule: Callable[[int], float] | None = None, seed: int = 0):
        try:
            from infty.optim import ZeroFlow
        except ImportError:
            raise ZolibError("zo_backend 'infty' needs the infty package: pip install infty") from None
        if any(m == "fo" for m in modes.values()):
            raise ZolibError("zo_backend 'infty' runs only methods whose trained units are all ZO (e.g. dual)")
        units = normalize_units(units)
        self.params = [p for k, ps in units.items() if modes[k] == "zo" for n, p in ps.items() if not zo_inert(n)]
        self.model, self.zo, self.schedule, self.steps = model, zo, schedule, 0
        if zo.zo_lr is None:
            raise ZolibError("the ZO step zo.zo_lr is unset; give a number (ZOConfig.with_step(lr))")
        self.zo_lr = zo.zo_lr
        self.name = infty_name(zo)
        if zo.adam_betas is not None:
            base = torch.optim.Adam(self.params, lr=self.zo_lr, betas=zo.adam_betas, eps=zo.adam_eps)
        else:
            base = torch.optim.SGD(self.params, lr=self.zo_lr, momentum=zo.momentum)
        self.base = base
        self.opt = ZeroFlow(self.params, base, model, {
            "inftyopt": self.name, "q": zo.q, "zo_eps": zo.eps, "memory_efficient": True,
            "perturbation_mode": "two_side" if zo.estimator == "two-sided" else "one_side"})
        self.forwards_per_step = 5 if self.name.endswith("conserve") else 2 * zo.q

    def state_of(self, param: torch.Tensor) -> dict:
        """The base optimizer's state of ``param`` (momentum, Adam moments), for byte accounting."""
        return dict(self.base.state.get(param, {}))

    def state_bytes(self) -> int:
        """Bytes of the base optimizer's state (infty keeps its estimate in ``.grad``, counted as gradients)."""
        return sum(t.numel() * t.element_size() for p in self.params for t in self.state_of(p).values()
                   if isinstance(t, torch.Tensor))

    def step(self, closure: Callable[[], torch.Tensor]) -> StepResult:
        factor = self.schedule(self.steps) if self.schedule else 1.0
        for g in self.base.param_groups:
            g["lr"] = self.zo_lr * factor
        hidden = [p for p in self.model.parameters() if p.requires_grad and all(p is not q for q in self.params)]
        for p in hidden:
            p.requires_grad_(False)
        was_training = self.model.training
        try:
            self.opt.set_closure(lambda: (None, [closure()]))
            _, losses = self.opt.step()
        finally:
            for p in hidden:
                p.requires_grad_(True)
            self.model.train(was_training)
        loss = loss_value(sum(float(x) for x in losses), self.steps, "infty ZeroFlow")
        self.steps += 1
        return StepResult(loss, self.forwards_per_step, {"backend": "infty", "inftyopt": self.name})
