"""The zeroth-order estimator (paper Eq. 2) and the perturbation that feeds it.

Estimator, per ZO unit ``g`` (a param group) and direction ``z_{g,k}``, ``k < q``::

    one-sided:  g_hat_g = 1/q sum_k (L(theta + E z_k) - L(theta)) / eps_g * z_{g,k}
    two-sided:  g_hat_g = 1/q sum_k (L(theta + E z_k) - L(theta - E z_k)) / (2 eps_g) * z_{g,k}

where ``E z_k`` perturbs every ZO unit ``h`` by ``eps_h z_{h,k}`` ("joint", the default: one
extra forward per direction and side) or only unit ``g`` ("block": one forward per unit,
direction and side). With per-unit eps in joint mode the difference ``dL`` is shared and
divided by each unit's own eps: ``dL ~ sum_h eps_h <grad_h, z_h>``, so
``E[dL / eps_g * z_g] = grad_g`` because the cross terms ``E[<grad_h, z_h> z_g]`` vanish for
independent zero-mean directions (they add variance, not bias: about
``d_g (eps_h / eps_g)^2 |grad_h|^2`` from each other unit ``h``, so a unit with a smaller eps
picks up more of the others' noise; "block" avoids cross terms at U times the forwards).
With a sign rule and ``q = 1`` the division by ``eps_g`` cancels, and per-unit eps only
changes how much each unit contributes to the shared ``dL``. ``L(theta)`` in one-sided
mode is the loss of the forward the step already runs. For symmetric ``z`` the one- and
two-sided estimators have the same mean (bias O(eps^2) for a smooth L; the usual O(eps) bounds
assume only a Lipschitz gradient); the one-sided one has more variance.
``E|g_hat|^2 = (d + 2)|grad|^2`` for Gaussian ``z`` of dimension ``d`` and ``q = 1``
(``d |grad|^2`` for Rademacher): see notebooks/04_gradient_variance.ipynb.

Perturbation by substitution (no parameter's values are ever written while estimating): inside a
:class:`Substitution`, every perturbed parameter's ``.data`` is swapped for a new tensor holding
``p + eps * z`` (``z`` regenerated from its seed, see :mod:`zolib.optim.directions`), and the
original tensor object is swapped back on exit. So the parameters are restored bit for bit (no
``p + eps z - eps z`` rounding, as MeZO's in-place trick has), any code that reads the parameter
sees the perturbation (inside or outside its module), and the cost is one direction and one add
per parameter, with no hook on the forward path. Memory: the perturbed copies of the ZO
parameters (the adapters: 0.5 MB for the tiny CLIP, 15 MB for ViT-B/16 with MoE adapters) exist
while a perturbed forward runs; nothing is saved for backward.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, fields, replace
from typing import Callable, ContextManager, Hashable, Iterator, Mapping, Sequence

import torch
from torch import nn

from ..errors import NanLossError, ZolibError, check_choice
from .directions import DISTRIBUTIONS, direction_seed, sample_direction
from .rules import BASES, REGISTRIES, RULES, SIGNS

ESTIMATORS = ("one-sided", "two-sided", "forward-grad")
PERTURBATIONS = ("joint", "block")

Units = Mapping[Hashable, "Mapping[str, nn.Parameter] | Sequence[nn.Parameter]"]


@dataclass(frozen=True)
class ZOConfig:
    """Everything about the ZO part of a step; see the module docstrings of zolib.optim.

    These field names are the ones a notebook variant, the experiment config, the CLI
    (``--zo-lr``, ``--rule``, ...) and the results JSON use: a setting is declared here once.
    Defaults where the paper is silent (each is a parameter):

    - ``rule="conservative"``: the paper's main tables cannot be ZO* (its ablation puts
      aggressive Dual at 66.67 Last, the table's Dual at 69.29), and ZeroFlow/ZO-Bench's
      conservative rule uses 3 candidates.
    - ``eps_vision`` / ``eps_text``: ``None`` means ``eps`` (1e-3, the paper's). MoZO sets
      them (see :mod:`zolib.optim.methods`).
    - ``zo_lr``: the ZO step size. ``None`` means "not chosen yet": :meth:`with_step` (called by
      :func:`zolib.cl.config.resolve`) makes it the FO learning
      rate, the paper's literal setting; the optimizers take only numbers. ``0`` holds the ZO units
      fixed (no ZO forwards at all): the control of a hybrid method (:attr:`holds_fixed`).
    - ``rule``, ``sign`` and ``base`` name registered objects (:mod:`zolib.optim.rules`: ``RULES``,
      ``SIGNS``, ``BASES``). ``base`` is the base optimizer on the (signed) estimate, like ZeroFlow's
      ``zo_sgd``/``zo_adam``: ``sgd`` (default), ``momentum`` (reads ``momentum``) or ``adam`` (reads
      ``adam_betas``, ``adam_eps``); a base's settings stay at their defaults under another base.
    - ``clip_norm`` (0 = off): the estimate is scaled down to this norm (over all ZO parameters)
      before the update, as ZO-FC clips its gradient at 1.0.
    """

    rule: str = "conservative"
    candidates: int = 3
    sign: str = "none"
    base: str = "sgd"
    estimator: str = "one-sided"
    distribution: str = "gaussian"
    q: int = 1
    eps: float = 1e-3
    eps_vision: float | None = None
    eps_text: float | None = None
    perturbation: str = "joint"
    momentum: float = 0.0
    adam_betas: tuple[float, float] | None = None
    adam_eps: float = 1e-8
    clip_norm: float = 0.0
    zo_lr: float | None = None

    def __post_init__(self) -> None:
        check_choice("ZO estimator", self.estimator, ESTIMATORS)
        check_choice("ZO distribution", self.distribution, DISTRIBUTIONS)
        check_choice("ZO perturbation", self.perturbation, PERTURBATIONS)
        for name, registry in REGISTRIES.items():
            check_choice(f"ZO {name}", getattr(self, name), registry)
        if self.adam_betas is not None:
            object.__setattr__(self, "adam_betas", tuple(self.adam_betas))
        defaults = {f.name: f.default for f in fields(self)}
        for base in BASES.values():
            unused = [name for name in base.settings if getattr(self, name) != defaults[name]]
            if unused and base.name != self.base:
                raise ZolibError(f"{unused[0]} is a setting of ZO base {base.name!r}, not of {self.base!r}; "
                                 f"set base={base.name!r} or leave {unused[0]} at {defaults[unused[0]]}")
        BASES[self.base].check(self)
        RULES[self.rule].check(self)
        if self.q < 1:
            raise ZolibError(f"q must be >= 1 directions, got {self.q}")
        for name in ("eps", "eps_vision", "eps_text"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ZolibError(f"{name} must be > 0, got {value}")
        if self.zo_lr is not None and not self.zo_lr >= 0:
            raise ZolibError(f"zo_lr must be >= 0 (0 holds the ZO units fixed), got {self.zo_lr}")
        if self.clip_norm < 0:
            raise ZolibError(f"clip_norm must be >= 0 (0: no clipping), got {self.clip_norm}")

    def with_step(self, lr: float) -> "ZOConfig":
        """This config with every default filled: ``zo_lr`` = ``lr`` (the FO learning rate: the paper's
        literal setting) where it is None. The one place that default is decided."""
        return self if self.zo_lr is not None else replace(self, zo_lr=float(lr))

    @property
    def holds_fixed(self) -> bool:
        """Whether a ZO step of 0 holds the ZO units fixed (no ZO forwards): a control, or the frozen
        model. The one place "0 means held fixed" is decided (config, factory and optimizers ask here)."""
        return self.zo_lr == 0

    def eps_for(self, unit: Hashable) -> float:
        """The perturbation scale of ``unit``: per-modality eps for (branch, layer) keys."""
        branch = unit[0] if isinstance(unit, tuple) and unit else None
        if branch == "vision" and self.eps_vision is not None:
            return self.eps_vision
        if branch == "text" and self.eps_text is not None:
            return self.eps_text
        return self.eps

    def degeneracy(self) -> str | None:
        """Why this configuration wastes its estimate, or None.

        A rule that evaluates a candidate set closed under negation (conservative with an odd number of
        candidates), a sign that keeps only ``sign(c)`` at ``q = 1`` (``sign(c z) = sign(c) sign(z)``, and
        the ``projected`` ``sign(c) z``) and a stateless base: the candidates ``{theta, theta -+ eta d}``
        are the same set whatever the measured difference ``c`` is. The rule is then random search along
        ``sign(z)`` (or ``z``): the estimate's forward is wasted and eps (so ``eps_vision < eps_text``)
        cannot change anything. Momentum or Adam state breaks the symmetry, so they are not flagged.
        """
        ms = RULES[self.rule].multipliers(self)
        symmetric = len(ms) > 1 and sorted(ms) == sorted(-m for m in ms)
        if symmetric and SIGNS[self.sign].drops_magnitude and self.q == 1 and not BASES[self.base].stateful:
            return (f"{self.rule} ZO with {self.sign} sign and q = 1 ignores its estimate: the candidates "
                    f"theta -+ zo_lr * sign(z) do not depend on the measured difference, so eps and the "
                    f"estimate's forward are wasted; use q >= 2 (zolib's MoZO default) or rule='aggressive'")
        return None


ZO_FIELDS = tuple(f.name for f in fields(ZOConfig))  # the flat names resolve and the CLI take


@dataclass(eq=False)
class ZOEntry:
    """One ZO parameter: its seed index, its name, its group position and the module slots that own it."""

    index: int
    name: str
    param: nn.Parameter
    group: int
    owners: list[tuple[nn.Module, str]] = field(default_factory=list)


@dataclass(eq=False)
class ZOGroup:
    """The ZO parameters of one unit and their perturbation scale."""

    key: Hashable
    eps: float
    position: int
    entries: list[ZOEntry] = field(default_factory=list)


def normalize_units(units: Units) -> "OrderedDict[Hashable, OrderedDict[str, nn.Parameter]]":
    """Units as ``{key: {name: Parameter}}``; a sequence of parameters gets names ``key[i]``.

    Raises ``ValueError`` if a parameter appears in two units.
    """
    out: OrderedDict[Hashable, OrderedDict[str, nn.Parameter]] = OrderedDict()
    seen: set[int] = set()
    for key, params in units.items():
        items = params.items() if isinstance(params, Mapping) else (
            (f"{key}[{i}]", p) for i, p in enumerate(params))
        out[key] = OrderedDict()
        for name, p in items:
            if id(p) in seen:
                raise ValueError(f"parameter {name!r} appears in more than one unit")
            seen.add(id(p))
            out[key][name] = p
    return out


def owners_of(model: nn.Module) -> dict[int, list[tuple[nn.Module, str]]]:
    """``id(parameter) -> [(module, slot name)]`` for every module that directly owns it."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for name, p in module._parameters.items():
            if p is not None:
                owners.setdefault(id(p), []).append((module, name))
    return owners


def make_groups(model: nn.Module, units: Units, eps: Callable[[Hashable], float]) -> list[ZOGroup]:
    """One :class:`ZOGroup` per unit, in order.

    A parameter's seed index is its position among all parameters of ``units`` (unit
    order, then parameter order), so the same units give the same directions everywhere.
    """
    owners = owners_of(model)
    groups, index = [], 0
    for pos, (key, params) in enumerate(normalize_units(units).items()):
        group = ZOGroup(key, float(eps(key)), pos)
        for name, p in params.items():
            if id(p) not in owners:
                raise ZolibError(f"ZO parameter {name!r} is not owned by any module of the model")
            group.entries.append(ZOEntry(index, name, p, pos, owners[id(p)]))
            index += 1
        groups.append(group)
    return groups


def loss_value(loss: torch.Tensor | float, step: int, what: str) -> float:
    """The loss as a float; :class:`NanLossError` if it is NaN or infinite."""
    value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise NanLossError(f"loss is {value} at step {step} ({what} forward); "
                           f"lower the learning rate or eps, or check the inputs")
    return value


@contextmanager
def eval_mode(model: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Put every submodule in eval mode (dropout, router noise off); restore each flag after."""
    if not enabled:
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, training in flags:
            m.training = training


class Substitution:
    """Context in which each entry's parameter holds ``perturbed(entry, p)``, a new tensor (e.g.
    ``p + eps z``); the original tensors are put back on exit, bit for bit."""

    def __init__(self, entries: Sequence[ZOEntry], perturbed: Callable[[ZOEntry, torch.Tensor], torch.Tensor]):
        self.entries, self.perturbed = list(entries), perturbed
        self.saved: list[tuple[nn.Parameter, torch.Tensor]] = []

    def __enter__(self) -> "Substitution":
        with torch.inference_mode(False), torch.no_grad():  # a normal tensor, whatever mode the forward runs in
            for e in self.entries:
                original = e.param.data
                self.saved.append((e.param, original))
                e.param.data = self.perturbed(e, original)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        for p, original in self.saved:
            p.data = original
        self.saved.clear()


@dataclass
class Estimate:
    """A ZO estimate kept as scalars: ``coefs[group][k]`` = projected gradient along ``z_{g,k}``.

    ``g_hat(entry) = 1/q sum_k coefs[entry.group][k] * direction(entry, k)``; the
    directions are regenerated from ``step_seed`` whenever needed.
    """

    step_seed: int
    distribution: str
    coefs: list[list[float]]

    def scale(self, factor: float) -> None:
        """Multiply the estimate by ``factor`` (every coefficient)."""
        self.coefs = [[c * factor for c in cs] for cs in self.coefs]

    def norm(self, entries: Sequence[ZOEntry]) -> float:
        """``|g_hat|`` over ``entries`` (each parameter's estimate materialised once, then dropped)."""
        return math.sqrt(sum(float(self.gradient(e).double().square().sum()) for e in entries))

    def direction(self, entry: ZOEntry, k: int) -> torch.Tensor:
        """Direction ``k`` of ``entry`` (a fresh tensor)."""
        return sample_direction(entry.param, direction_seed(self.step_seed, entry.index, k),
                                self.distribution)

    def gradient(self, entry: ZOEntry) -> torch.Tensor:
        """The materialised estimate ``g_hat`` of one parameter (one buffer of its size)."""
        coefs = self.coefs[entry.group]
        out = torch.zeros_like(entry.param)
        for k, c in enumerate(coefs):
            out.add_(self.direction(entry, k), alpha=c / len(coefs))
        return out


Probe = Callable[[Sequence["ZOGroup"]], ContextManager]
"""A context for a forward that perturbs only the given groups (e.g. one that recomputes only what
the perturbation changes: :class:`zolib.models.partial.PartialForward`)."""


def perturbed_loss(closure: Callable[[], torch.Tensor], entries: Sequence[ZOEntry],
                   scale: Callable[[ZOEntry], float], step_seed: int, k: int, distribution: str,
                   step: int = 0, context: ContextManager | None = None) -> float:
    """``L(theta + scale(e) * z_{e,k})`` for the given entries, each parameter's data swapped for its
    perturbed copy (:class:`Substitution`; inside ``context``, when given)."""
    def perturbed(e: ZOEntry, p: torch.Tensor) -> torch.Tensor:
        return torch.add(p, sample_direction(p, direction_seed(step_seed, e.index, k), distribution), alpha=scale(e))

    with Substitution(entries, perturbed), (context or nullcontext()):
        return loss_value(closure(), step, "perturbed")


def directional_derivative(closure: Callable[[], torch.Tensor], entries: Sequence[ZOEntry], step_seed: int, k: int,
                           distribution: str, step: int = 0) -> tuple[float, float]:
    """``(L(theta), d/dt L(theta + t z_k) at t = 0)``, exact, by forward-mode AD (one forward with
    tangents, the "forward gradient" of ZeroFlow). The owning modules see dual tensors in place of
    their parameters for the forward. PyTorch's fused attention kernels have no forward-mode AD,
    so the forward runs with the math attention kernel (the MHA fast path is off in every step)."""
    import torch.autograd.forward_ad as fwAD
    from torch.nn.attention import SDPBackend, sdpa_kernel
    swapped = []
    with torch.inference_mode(False), torch.no_grad(), fwAD.dual_level(), sdpa_kernel(SDPBackend.MATH):
        try:
            for e in entries:
                z = sample_direction(e.param, direction_seed(step_seed, e.index, k), distribution)
                dual = fwAD.make_dual(e.param.detach(), z)
                for module, name in e.owners:
                    swapped.append((module, name, module._parameters[name]))
                    module._parameters[name] = dual
            out = closure()
            primal, tangent = fwAD.unpack_dual(out)
        finally:
            for module, name, p in reversed(swapped):
                module._parameters[name] = p
    if tangent is None:
        raise ZolibError("the forward gradient's loss carries no tangent: the ZO parameters do not reach the loss")
    return loss_value(primal, step, "forward-grad"), loss_value(tangent, step, "forward-grad tangent")


def estimate(closure: Callable[[], torch.Tensor], groups: Sequence[ZOGroup], zo: ZOConfig,
             step_seed: int, loss0: float | None, step: int = 0,
             probe: Probe | None = None) -> tuple[Estimate, list[float]]:
    """Run the perturbed forwards (call under ``inference_mode`` or ``no_grad``); return the
    estimate and their losses.

    ``loss0`` is ``L(theta)``, required for the one-sided estimator; ``probe(groups)`` wraps each
    perturbed forward (None: full forwards). With ``estimator="forward-grad"`` the coefficient is
    the exact directional derivative ``<grad L, z>`` (no eps), and the losses are ``L(theta)``.
    """
    two_sided = zo.estimator == "two-sided"
    if zo.estimator == "one-sided" and loss0 is None:
        raise ValueError("the one-sided estimator needs L(theta)")
    blocks = [list(groups)] if zo.perturbation == "joint" else [[g] for g in groups]
    coefs = [[0.0] * zo.q for _ in groups]
    losses: list[float] = []
    for k in range(zo.q):
        for block in blocks:
            entries = [e for g in block for e in g.entries]
            if zo.estimator == "forward-grad":
                value, slope = directional_derivative(closure, entries, step_seed, k, zo.distribution, step)
                losses.append(value)
                for g in block:
                    coefs[g.position][k] = slope
                continue
            plus = perturbed_loss(closure, entries, lambda e: groups[e.group].eps, step_seed, k,
                                  zo.distribution, step, probe(block) if probe else None)
            if two_sided:
                minus = perturbed_loss(closure, entries, lambda e: -groups[e.group].eps, step_seed, k,
                                       zo.distribution, step, probe(block) if probe else None)
                losses += [plus, minus]
                diff, denom = plus - minus, 2.0
            else:
                losses.append(plus)
                diff, denom = plus - loss0, 1.0
            for g in block:
                coefs[g.position][k] = diff / (denom * g.eps)
    return Estimate(step_seed, zo.distribution, coefs), losses


def zo_gradient(model: nn.Module, units: Units, closure: Callable[[], torch.Tensor],
                zo: ZOConfig = ZOConfig(), *, step_seed: int = 0) -> "OrderedDict[str, torch.Tensor]":
    """Materialised ZO gradient estimates ``{name: g_hat}`` (for analysis, not for training).

    Runs like a pure-ZO step of :class:`~zolib.optim.hybrid.HybridOptimizer` (eval mode,
    inference_mode forwards) and uses the same directions as the optimizer for the same units, seed index
    order and ``step_seed``. Used by the tests and notebooks/04_gradient_variance.ipynb.
    """
    groups = make_groups(model, units, zo.eps_for)
    with eval_mode(model), torch.inference_mode():
        loss0 = None if zo.estimator != "one-sided" else loss_value(closure(), 0, "unperturbed")
        est, _ = estimate(closure, groups, zo, step_seed, loss0)
    with torch.no_grad():
        return OrderedDict((e.name, est.gradient(e)) for g in groups for e in g.entries)
