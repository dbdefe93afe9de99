"""Update rules: how a ZO estimate becomes a parameter update, as registered objects.

Pipeline per ZO parameter (ZeroFlow's order: sign first, then the base optimizer)::

    g_hat  --sign-->  d  --base-->  u,    update = m * lr * mix * u,   m chosen by the rule

Three registries, one per kind, each ``{name: object}`` and named by one :class:`~zolib.optim.zo.ZOConfig`
field (:data:`REGISTRIES`):

- :data:`SIGNS` (``sign``): ``"none"``: ``d = g_hat``; ``"elementwise"``: ``d = sign(g_hat)`` (per
  entry); ``"projected"``: ``d = 1/q sum_k sign(c_k) z_k``, the sign of the projected scalar times the
  direction, as ZeroFlow/ZO-Bench code "ZO-SGD-Sign".
- :data:`BASES` (``base``): ``"sgd"``: ``u = d``; ``"momentum"`` (the ``momentum`` field) and ``"adam"``
  (``adam_betas``, ``adam_eps``): ZeroFlow's ``zo_sgd`` with a momentum base and ``zo_adam``.
- :data:`RULES` (``rule``): the multipliers ``m`` of ``Delta = lr * mix * u`` a step tries.
  ``"aggressive"`` (the paper's ZO*): ``m = -1``, one estimate, one step. ``"conservative"``:
  candidates ``theta + m * Delta`` for ``m`` in :func:`candidate_multipliers` (default 3:
  ``{theta, theta - Delta, theta + Delta}``); the one with the lowest loss is kept, ``L(theta)`` reused
  from the step's first forward; ties keep the earlier candidate, so ``theta`` wins a tie.

A new one is a subclass of :class:`Sign`, :class:`Base` or :class:`Rule` decorated with
``@register(SIGNS)`` (``BASES``, ``RULES``), here or anywhere else (a test registers one): ZOConfig's
validation, the CLI's help, the forward count (:func:`zolib.optim.hybrid.forwards_per_step`) and
:class:`zolib.optim.hybrid.HybridOptimizer` read the registries; infty's adapter
(:mod:`zolib.optim.infty`) refuses what it has no counterpart of.

Memory: SGD with sign ``none``/``projected``, and ``elementwise`` with ``q = 1``, stream: the
update is added direction by direction (one direction tensor at a time, nothing stored).
``elementwise`` with ``q > 1`` materialises ``g_hat`` for one parameter at a time (a
transient buffer of that parameter's size). Momentum and Adam keep persistent state buffers
(one or two per ZO parameter, like any optimizer); their state is updated once per step
whichever conservative candidate wins (the estimate is information either way).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, ClassVar, TypeVar

import torch

from ..errors import ZolibError

if TYPE_CHECKING:
    from .zo import Estimate, ZOConfig, ZOEntry


class Sign(ABC):
    """How the estimate ``g_hat`` becomes the direction ``d`` the base optimizer sees."""

    name: ClassVar[str]
    help: ClassVar[str]
    drops_magnitude: ClassVar[bool] = False  # with q = 1, d depends on the estimate only through sign(c)

    def streams(self, q: int) -> bool:
        """Whether ``d`` can be added direction by direction (:meth:`add_direction`), nothing stored."""
        return True

    @abstractmethod
    def add_direction(self, target: torch.Tensor, z: torch.Tensor, c: float, q: int, alpha: float) -> None:
        """``target += alpha *`` the share of direction ``z`` (coefficient ``c``, one of ``q``) in ``d``."""

    @abstractmethod
    def direction(self, entry: ZOEntry, est: Estimate) -> torch.Tensor:
        """``d`` of one parameter, materialised (a new tensor)."""


class Base(ABC):
    """The base optimizer: how the direction ``d`` becomes the update ``u``, with its state."""

    name: ClassVar[str]
    help: ClassVar[str]
    settings: ClassVar[tuple[str, ...]] = ()  # the ZOConfig fields it reads; others leave them at their defaults
    stateful: ClassVar[bool] = False

    def check(self, zo: ZOConfig) -> None:
        """Raise a one-line ZolibError where ``zo``'s settings cannot run this base."""

    def update(self, d: torch.Tensor, state: dict, zo: ZOConfig, commit: bool) -> torch.Tensor:
        """``u`` from ``d`` and the parameter's ``state`` (written only when ``commit``)."""
        return d


class Rule(ABC):
    """Which multiples ``m`` of the update ``Delta`` a step tries, and which of them it keeps."""

    name: ClassVar[str]
    help: ClassVar[str]

    def check(self, zo: ZOConfig) -> None:
        """Raise a one-line ZolibError where ``zo``'s settings cannot run this rule."""

    @abstractmethod
    def multipliers(self, zo: ZOConfig) -> list[int]:
        """The candidates ``theta + m * Delta``, earlier first on a tie. One candidate is taken without a
        forward; of several, each costs a forward except ``m = 0`` (theta: the step's ``L(theta)``)."""

    def needs_loss(self, zo: ZOConfig) -> bool:
        """Whether the rule reads ``L(theta)`` (its candidate ``m = 0``)."""
        ms = self.multipliers(zo)
        return len(ms) > 1 and 0 in ms

    def forwards(self, zo: ZOConfig) -> int:
        """Forwards the rule runs after the estimate: one per candidate evaluated."""
        ms = self.multipliers(zo)
        return 0 if len(ms) == 1 else sum(m != 0 for m in ms)

    def choose(self, losses: dict[int, float]) -> int:
        """The multiplier kept, from ``{m: loss}`` in candidate order: the lowest loss, earlier on a tie."""
        return min(losses, key=losses.__getitem__)


SIGNS: dict[str, Sign] = {}
BASES: dict[str, Base] = {}
RULES: dict[str, Rule] = {}
REGISTRIES: dict[str, dict] = {"rule": RULES, "sign": SIGNS, "base": BASES}  # ZOConfig field -> its registry

T = TypeVar("T", bound=type)


def register(registry: dict) -> Callable[[T], T]:
    """Class decorator: one instance of the class under its ``name`` in ``registry`` (SIGNS, BASES, RULES)."""
    def add(cls: T) -> T:
        if cls.name in registry:
            raise ZolibError(f"{cls.name!r} is registered already; give the new one another name")
        registry[cls.name] = cls()
        return cls
    return add


def candidate_multipliers(n: int) -> list[int]:
    """``[0, -1, +1, -2, +2, ...][:n]``: multiples of ``Delta`` tried by the conservative rule."""
    out = [0]
    k = 1
    while len(out) < n:
        out += [-k, k]
        k += 1
    return out[:n]


def _sign(x: float) -> float:
    return math.copysign(1.0, x) if x else 0.0


# ------------------------------------------------------------------ signs
@register(SIGNS)
class NoSign(Sign):
    name, help = "none", "d = g_hat, the estimate itself"

    def add_direction(self, target, z, c, q, alpha):
        target.add_(z, alpha=alpha * c / q)

    def direction(self, entry, est):
        return est.gradient(entry)


@register(SIGNS)
class ElementwiseSign(Sign):
    name, help = "elementwise", "d = sign(g_hat), entry by entry"
    drops_magnitude = True

    def streams(self, q):
        return q == 1

    def add_direction(self, target, z, c, q, alpha):  # q == 1: sign(c z) = sign(c) sign(z)
        target.add_(z.sign_(), alpha=alpha * _sign(c))

    def direction(self, entry, est):
        return est.gradient(entry).sign_()


@register(SIGNS)
class ProjectedSign(Sign):
    name, help = "projected", "d = 1/q sum_k sign(c_k) z_k (ZeroFlow's ZO-SGD-Sign)"
    drops_magnitude = True

    def add_direction(self, target, z, c, q, alpha):
        target.add_(z, alpha=alpha * _sign(c) / q)

    def direction(self, entry, est):
        coefs = est.coefs[entry.group]
        d = torch.zeros_like(entry.param)
        for k, c in enumerate(coefs):
            d.add_(est.direction(entry, k), alpha=_sign(c) / len(coefs))
        return d


# ------------------------------------------------------------------ base optimizers
@register(BASES)
class SGDBase(Base):
    name, help = "sgd", "u = d (ZeroFlow's zo_sgd)"


@register(BASES)
class MomentumBase(Base):
    name, help = "momentum", "u = momentum * u_prev + d (zo_sgd with a momentum base)"
    settings, stateful = ("momentum",), True

    def check(self, zo):
        if not 0.0 < zo.momentum < 1.0:
            raise ZolibError(f"ZO base 'momentum' needs momentum in (0, 1), e.g. 0.9; got {zo.momentum}")

    def update(self, d, state, zo, commit):
        buf = state.get("momentum_buffer")
        m = d if buf is None else buf.mul(zo.momentum).add_(d)
        if commit:
            state["momentum_buffer"] = m
        return m


@register(BASES)
class AdamBase(Base):
    name, help = "adam", "Adam moments on d, bias-corrected (ZeroFlow's zo_adam)"
    settings, stateful = ("adam_betas", "adam_eps"), True

    def check(self, zo):
        if zo.adam_betas is None:
            raise ZolibError("ZO base 'adam' needs adam_betas, e.g. 0.9,0.999")

    def update(self, d, state, zo, commit):
        b1, b2 = zo.adam_betas
        t = state.get("step", 0) + 1
        m = d.mul(1 - b1) if "exp_avg" not in state else state["exp_avg"].mul(b1).add_(d, alpha=1 - b1)
        v = (d * d).mul_(1 - b2) if "exp_avg_sq" not in state else \
            state["exp_avg_sq"].mul(b2).addcmul_(d, d, value=1 - b2)
        if commit:
            state.update(step=t, exp_avg=m, exp_avg_sq=v)
        denom = (v / (1 - b2 ** t)).sqrt_().add_(zo.adam_eps)
        return (m / (1 - b1 ** t)).div_(denom)


# ------------------------------------------------------------------ rules
@register(RULES)
class AggressiveRule(Rule):
    name, help = "aggressive", "one step along the estimate (the paper's ZO*)"

    def multipliers(self, zo):
        return [-1]


@register(RULES)
class ConservativeRule(Rule):
    name, help = "conservative", "the best of theta, theta -+ Delta, ... (ZeroFlow's ZO-SGD-Conserve)"

    def check(self, zo):
        if zo.candidates < 2:
            raise ZolibError(f"conservative ZO needs >= 2 candidates, got {zo.candidates}")

    def multipliers(self, zo):
        return candidate_multipliers(zo.candidates)


class Update:
    """Adds ``alpha * u`` into a tensor, ``u`` the update of one ZO parameter under ``zo``'s sign and base."""

    def __init__(self, zo: ZOConfig):
        self.zo, self.sign, self.base = zo, SIGNS[zo.sign], BASES[zo.base]
        self.streaming = not self.base.stateful and self.sign.streams(zo.q)

    def add_(self, target: torch.Tensor | None, entry: ZOEntry, est: Estimate, state: dict,
             alpha: float, commit: bool = False) -> None:
        """``target += alpha * u`` (skipped when ``target`` is None or ``alpha == 0``).

        ``commit`` writes the base optimizer's state; candidate evaluations pass ``False``.
        The same call on a clone and on the parameter gives bit-identical results.
        """
        if self.streaming:
            if target is not None and alpha != 0:
                coefs = est.coefs[entry.group]
                for k, c in enumerate(coefs):
                    self.sign.add_direction(target, est.direction(entry, k), c, len(coefs), alpha)
            return
        u = self.base.update(self.sign.direction(entry, est), state, self.zo, commit)
        if target is not None and alpha != 0:
            target.add_(u, alpha=alpha)
