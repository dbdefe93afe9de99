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
from .rules import BASES
from .zo import Units, ZOConfig, loss_value, normalize_units

# zolib's base optimizer -> infty's name prefix and the torch optimizer infty steps with the estimate in .grad
INFTY_BASES: dict[str, tuple[str, Callable[[list, ZOConfig], torch.optim.Optimizer]]] = {
    "sgd": ("zo_sgd", lambda params, zo: torch.optim.SGD(params, lr=zo.zo_lr)),
    "momentum": ("zo_sgd", lambda params, zo: torch.optim.SGD(params, lr=zo.zo_lr, momentum=zo.momentum)),
    "adam": ("zo_adam", lambda params, zo: torch.optim.Adam(params, lr=zo.zo_lr, betas=zo.adam_betas,
                                                             eps=zo.adam_eps)),
}
# zolib's (rule, sign) -> the suffix of infty's name
INFTY_RULES = {("aggressive", "none"): "", ("aggressive", "projected"): "_sign", ("conservative", "none"): "_conserve"}


def infty_name(zo: ZOConfig) -> str:
    """The ``inftyopt`` of infty's ZeroFlow that runs the same algorithm as ``zo``: a one-line error where
    none does (never a near miss, so the cross-check compares one algorithm with itself)."""
    if zo.estimator == "forward-grad":
        raise ZolibError("infty's forward_grad needs a functional closure; cross-check the forward gradient against "
                         "autograd instead (tests/test_zo_family.py)")
    if zo.eps_vision not in (None, zo.eps) or zo.eps_text not in (None, zo.eps) or zo.perturbation != "joint":
        raise ZolibError("infty's ZeroFlow has one eps and perturbs all parameters jointly")
    if zo.clip_norm or zo.distribution != "gaussian":
        raise ZolibError("infty's ZeroFlow has no gradient clipping and draws Gaussian directions only")
    if zo.base not in INFTY_BASES:
        raise ZolibError(f"infty's ZeroFlow has no base optimizer {zo.base!r}; it has {', '.join(INFTY_BASES)}")
    suffix = INFTY_RULES.get((zo.rule, zo.sign))
    if suffix is None:
        raise ZolibError(f"infty's ZeroFlow has no rule {zo.rule!r} with sign {zo.sign!r}; it has "
                         + ", ".join(f"{rule} with sign {sign}" for rule, sign in INFTY_RULES))
    if suffix == "_conserve" and (zo.q != 1 or zo.candidates != 3 or BASES[zo.base].stateful):
        raise ZolibError("infty's conservative rule uses q = 1, 3 candidates and base sgd (it steps its base "
                         "optimizer once per candidate)")
    return INFTY_BASES[zo.base][0] + suffix


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
        self.base = INFTY_BASES[zo.base][1](self.params, zo)
        self.opt = ZeroFlow(self.params, self.base, model, {
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
