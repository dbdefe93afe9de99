"""Method registry: which (branch, layer) units are ZO, and the ZO settings a method implies.

Layers are 0-based everywhere: ``hop-odd`` = layers 1, 3, ..., 11; ``hop-even`` = 0, 2, ..., 10;
``prefix6`` = 0..5; ``suffix6`` = 6..11 (generally ``prefix<k>`` / ``suffix<k>``). Branch
suffixes: ``-vision``, ``-language`` (the text branch), ``-both``. Layer-wise methods follow
the paper: ZO on the selected layers, FO on every other unit (including the whole other
branch for ``-vision`` / ``-language``).

MoZO (:data:`MOZO`) = conservative rule + element-wise sign + ``eps_vision < eps_text``. The
``mozo`` method puts it on the ``hop-even-both`` assignment, our reading of the paper's "MoZO
on top of Dual + Hop-even" (its MoZO numbers sit near the layer-wise ones, far above Dual).
The MoZO settings can be put on any assignment with the CLI-style options of
:func:`build_optimizer` (``sign``, ``eps_vision``, ``eps_text``). eps defaults: ``eps_text =
1e-3`` is the paper's eps (kept for the branch it works well on); ``eps_vision = 5e-4`` halves
it, the smallest clearly "smaller" choice that keeps the fp32 finite difference well above
rounding noise (loss ~ 1, fp32 rounding ~ 1e-7, so relative noise ~ 1e-7 / (5e-4 |<g, z>|)).
The paper gives no values; notebooks/05_mozo.ipynb sweeps them. Note: with the default joint
perturbation, element-wise sign and q = 1, a unit's eps cancels from its update (sign of
``dL / eps_g * z_g``); what ``eps_vision < eps_text`` changes is the shared ``dL``, which then
reflects the text perturbation more than the vision one (see :mod:`zolib.optim.zo`).
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Hashable, Mapping

from torch import nn

from ..errors import ZolibError, unknown_value
from ..models.units import BRANCHES, trainable_units
from .hybrid import HybridOptimizer
from .zo import Units, ZOConfig

MOZO: dict[str, Any] = {"rule": "conservative", "sign": "elementwise", "eps_vision": 5e-4, "eps_text": 1e-3}

_SIDES = {"vision": ("vision",), "language": ("text",), "both": ("vision", "text")}
_SELECT = {"hop-odd": "ZO on odd layers (1, 3, ..., 11)", "hop-even": "ZO on even layers (0, 2, ..., 10)",
           "prefix6": "ZO on the first six layers (0-5)", "suffix6": "ZO on the last six layers (6-11)"}
_SIDE_TEXT = {"vision": "of the vision branch, all else FO", "language": "of the text branch, all else FO",
              "both": "of both branches, the other layers FO"}
_LAYERWISE = re.compile(r"^(hop-odd|hop-even|prefix(\d+)|suffix(\d+))-(vision|language|both)$")

METHODS: dict[str, str] = {
    "fo": "all units first-order (AdamW): the MoE-Adapters4CL baseline",
    "dual": "all units zeroth-order, both branches",
    "vision": "vision branch ZO, text branch FO",
    "language": "text branch ZO, vision branch FO",
    **{f"{sel}-{side}": f"{text} {_SIDE_TEXT[side]}" for sel, text in _SELECT.items() for side in _SIDES},
    "prefix<k>-<side>": "ZO on the first k layers of a side (vision, language, both)",
    "suffix<k>-<side>": "ZO on the last k layers of a side (vision, language, both)",
    "mozo": "MoZO (conservative + element-wise sign + eps_vision 5e-4 < eps_text 1e-3) on hop-even-both",
    "custom:<mask>": "ZO where the mask has 1, e.g. custom:vision=010101010101,text=000000000000",
}


def _layers(units: Mapping[Hashable, Any]) -> dict[str, int]:
    counts = {b: 0 for b in BRANCHES}
    for key in units:
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in BRANCHES and isinstance(key[1], int)):
            raise ZolibError(f"methods need (branch, layer) units such as ('vision', 0); got {key!r}")
        counts[key[0]] = max(counts[key[0]], key[1] + 1)
    return counts


def parse_mask(mask: str, layers: Mapping[str, int]) -> Callable[[str, int], bool]:
    """``"vision=0101...,text=0000..."`` -> predicate ``(branch, layer) -> is ZO``.

    One string of 0/1 per branch, one digit per layer (0-based, left to right); ``language``
    is accepted for ``text``; a branch left out is all FO.
    """
    bits: dict[str, str] = {}
    for part in filter(None, mask.split(",")):
        branch, _, digits = part.partition("=")
        branch = {"language": "text"}.get(branch.strip(), branch.strip())
        if branch not in BRANCHES:
            raise unknown_value("mask branch", branch, BRANCHES)
        digits = digits.strip()
        if len(digits) != layers[branch] or set(digits) - {"0", "1"}:
            raise ZolibError(f"mask for {branch} must be {layers[branch]} digits of 0/1 "
                             f"(one per layer, layer 0 first); got {digits!r}")
        bits[branch] = digits
    if not bits:
        raise ZolibError("empty custom mask; write e.g. custom:vision=010101010101,text=000000000000")
    return lambda b, l: b in bits and bits[b][l] == "1"


def _predicate(name: str, layers: Mapping[str, int]) -> Callable[[str, int], bool]:
    simple = {"fo": lambda b, l: False, "dual": lambda b, l: True,
              "vision": lambda b, l: b == "vision", "language": lambda b, l: b == "text"}
    if name in simple:
        return simple[name]
    if name.startswith("custom:"):
        return parse_mask(name[len("custom:"):], layers)
    m = _LAYERWISE.match(name)
    if m is None:
        raise unknown_value("method", name, METHODS)
    sel, prefix_k, suffix_k, side = m.groups()
    k = int(prefix_k or suffix_k or 0)
    if (prefix_k or suffix_k) and not 1 <= k <= min(layers[b] for b in _SIDES[side]):
        raise ZolibError(f"{name}: k must be between 1 and the number of layers; got {k}")
    chosen = {"hop-odd": lambda l, n: l % 2 == 1, "hop-even": lambda l, n: l % 2 == 0,
              "prefix": lambda l, n: l < k, "suffix": lambda l, n: l >= n - k}
    pick = chosen[sel if sel.startswith("hop") else sel.rstrip("0123456789")]
    return lambda b, l: b in _SIDES[side] and pick(l, layers[b])


def check_method(name: str) -> None:
    """Raise the standard unknown-method error unless ``name`` is a method (masks and k are
    checked against the model's layers later, by :func:`resolve_method`)."""
    if not (name in ("fo", "dual", "vision", "language", "mozo") or name.startswith("custom:")
            or _LAYERWISE.match(name)):
        raise unknown_value("method", name, METHODS)


def resolve_method(name: str, units: Units) -> tuple["OrderedDict[Hashable, str]", dict[str, Any]]:
    """``(modes, zo_overrides)`` of method ``name`` over (branch, layer) ``units``.

    ``modes`` maps every unit to ``"fo"`` or ``"zo"``; ``zo_overrides`` are
    :class:`~zolib.optim.zo.ZOConfig` fields the method fixes (only ``mozo`` has any).
    """
    layers = _layers(units)
    base, overrides = ("hop-even-both", dict(MOZO)) if name == "mozo" else (name, {})
    is_zo = _predicate(base, layers)
    return OrderedDict((k, "zo" if is_zo(*k) else "fo") for k in units), overrides


def build_optimizer(model: nn.Module, method: str, *, units: Units | None = None, lr: float = 1e-3,
                    weight_decay: float = 0.0, mix: float = 1.0, schedule: Callable[[int], float] | None = None,
                    zo: ZOConfig | None = None, zo_rule: str | None = None, sign: str | None = None,
                    eps: float | None = None, eps_vision: float | None = None, eps_text: float | None = None,
                    q: int | None = None, zo_lr: float | None = None, seed: int | None = None) -> HybridOptimizer:
    """A :class:`HybridOptimizer` for ``method`` over ``units`` (default: the model's trainable units).

    The ZO options that are not None (the CLI's ``--zo-rule``, ``--sign``, ``--eps``, ...) win
    over the method's own settings, which win over ``zo`` (default :class:`ZOConfig`).
    """
    units = trainable_units(model) if units is None else units
    modes, overrides = resolve_method(method, units)
    cli = dict(rule=zo_rule, sign=sign, eps=eps, eps_vision=eps_vision, eps_text=eps_text, q=q, lr=zo_lr, seed=seed)
    overrides.update({k: v for k, v in cli.items() if v is not None})
    cfg = replace(zo or ZOConfig(), **overrides)
    return HybridOptimizer(model, units, modes, lr=lr, weight_decay=weight_decay, zo=cfg, mix=mix,
                           schedule=schedule)
