"""Update rules: how a ZO estimate becomes a parameter update.

Pipeline per ZO parameter (ZeroFlow's order: sign first, then the base optimizer)::

    g_hat  --sign-->  d  --sgd | momentum | adam-->  u,    update = m * lr * mix * u

- sign ``"none"``: ``d = g_hat``; ``"elementwise"``: ``d = sign(g_hat)`` (per entry);
  ``"projected"``: ``d = 1/q sum_k sign(c_k) z_k``, the sign of the projected scalar times the
  direction, as ZeroFlow/ZO-Bench code "ZO-SGD-Sign".
- rule ``"aggressive"`` (the paper's ZO*): ``m = -1``, one estimate, one step.
- rule ``"conservative"``: candidates ``theta + m * Delta`` (``Delta = lr * mix * u``) for
  ``m`` in :func:`candidate_multipliers` (default 3: ``{theta, theta - Delta, theta + Delta}``);
  the one with the lowest loss is kept, ``L(theta)`` reused from the step's first forward;
  ties keep the earlier candidate, so ``theta`` wins a tie.

Memory: SGD with sign ``none``/``projected``, and ``elementwise`` with ``q = 1``, stream: the
update is added direction by direction (one direction tensor at a time, nothing stored).
``elementwise`` with ``q > 1`` materialises ``g_hat`` for one parameter at a time (a
transient buffer of that parameter's size). Momentum and Adam keep persistent state buffers
(one or two per ZO parameter, like any optimizer); their state is updated once per step
whichever conservative candidate wins (the estimate is information either way).
"""
from __future__ import annotations

import math

import torch

from .zo import Estimate, ZOConfig, ZOEntry


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


class UpdateRule:
    """Adds ``alpha * u`` into a tensor, ``u`` the rule's direction for one ZO parameter."""

    def __init__(self, zo: ZOConfig):
        self.zo = zo
        self.streaming = (not zo.momentum and zo.adam_betas is None
                          and (zo.sign != "elementwise" or zo.q == 1))

    def add_(self, target: torch.Tensor | None, entry: ZOEntry, est: Estimate, state: dict,
             alpha: float, commit: bool = False) -> None:
        """``target += alpha * u`` (skipped when ``target`` is None or ``alpha == 0``).

        ``commit`` writes the momentum/Adam state; candidate evaluations pass ``False``.
        The same call on a clone and on the parameter gives bit-identical results.
        """
        if self.streaming:
            if target is not None and alpha != 0:
                self._stream(target, entry, est, alpha)
            return
        u = self._stateful(self._signed(entry, est), state, commit)
        if target is not None and alpha != 0:
            target.add_(u, alpha=alpha)

    def _stream(self, target: torch.Tensor, entry: ZOEntry, est: Estimate, alpha: float) -> None:
        coefs = est.coefs[entry.group]
        q = len(coefs)
        for k, c in enumerate(coefs):
            z = est.direction(entry, k)
            if self.zo.sign == "none":
                target.add_(z, alpha=alpha * c / q)
            elif self.zo.sign == "projected":
                target.add_(z, alpha=alpha * _sign(c) / q)
            else:  # elementwise with q == 1: sign(c z) = sign(c) sign(z)
                target.add_(z.sign_(), alpha=alpha * _sign(c))

    def _signed(self, entry: ZOEntry, est: Estimate) -> torch.Tensor:
        if self.zo.sign == "projected":
            coefs = est.coefs[entry.group]
            d = torch.zeros_like(entry.param)
            for k, c in enumerate(coefs):
                d.add_(est.direction(entry, k), alpha=_sign(c) / len(coefs))
            return d
        g = est.gradient(entry)
        return g.sign_() if self.zo.sign == "elementwise" else g

    def _stateful(self, d: torch.Tensor, state: dict, commit: bool) -> torch.Tensor:
        zo = self.zo
        if zo.momentum:
            buf = state.get("momentum_buffer")
            m = d if buf is None else buf.mul(zo.momentum).add_(d)
            if commit:
                state["momentum_buffer"] = m
            return m
        if zo.adam_betas is not None:
            b1, b2 = zo.adam_betas
            t = state.get("step", 0) + 1
            m = d.mul(1 - b1) if "exp_avg" not in state else state["exp_avg"].mul(b1).add_(d, alpha=1 - b1)
            v = (d * d).mul_(1 - b2) if "exp_avg_sq" not in state else \
                state["exp_avg_sq"].mul(b2).addcmul_(d, d, value=1 - b2)
            if commit:
                state.update(step=t, exp_avg=m, exp_avg_sq=v)
            denom = (v / (1 - b2 ** t)).sqrt_().add_(zo.adam_eps)
            return (m / (1 - b1 ** t)).div_(denom)
        return d
