"""One call from a method name (:mod:`zolib.optim.methods`) to a :class:`HybridOptimizer`."""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import fields, replace
from typing import Any, Callable, Hashable, Mapping

from torch import nn

from ..errors import ZolibError
from ..models.units import HEAD, PROMPT, trainable_units
from .hybrid import HybridOptimizer
from .methods import parse, resolve_mask
from .zo import Units, ZOConfig, normalize_units

ZO_FIELDS = tuple(f.name for f in fields(ZOConfig))


def unit_layers(units: Mapping[Hashable, Any]) -> dict[str, int]:
    """``{"vision": n, "text": m}``: the number of (branch, layer) units per branch."""
    counts = {"vision": 0, "text": 0}
    for key in units:
        if key in (HEAD, PROMPT):
            continue
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in counts and isinstance(key[1], int)):
            raise ZolibError(f"methods need (branch, layer) units such as ('vision', 0); got {key!r}")
        counts[key[0]] = max(counts[key[0]], key[1] + 1)
    return counts


def unit_modes(mask: Mapping[str, str], units: Mapping[Hashable, Any]) -> "OrderedDict[Hashable, str]":
    """``{unit: "zo" | "fo"}`` from a mask ``{"vision": "0101...", "text": ...}`` (a branch missing is FO;
    a classifier head is FO)."""
    return OrderedDict((k, "zo" if k[0] in mask and mask[k[0]][k[1]] == "1" else "fo") for k in units)


def zo_config(method: str = "fo", zo: ZOConfig | None = None, **settings: Any) -> ZOConfig:
    """The method's ZO settings, then ``settings`` (ZOConfig field names; None values ignored) on top
    of ``zo`` (default :class:`ZOConfig`)."""
    unknown = sorted(set(settings) - set(ZO_FIELDS))
    if unknown:
        raise ZolibError(f"unknown ZO setting(s) {', '.join(unknown)}; valid: {', '.join(ZO_FIELDS)}")
    chosen = {k: v for k, v in parse(method).settings.items() if k in ZO_FIELDS}
    chosen.update({k: v for k, v in settings.items() if v is not None})
    return replace(zo or ZOConfig(), **chosen)


def build_optimizer(model: nn.Module, method: str = "fo", *, units: Units | None = None, lr: float = 1e-3,
                    weight_decay: float = 0.0, mix: float = 1.0, schedule: Callable[[int], float] | None = None,
                    seed: int = 0, fo_train_mode: bool = True, partial: bool = True, zo: ZOConfig | None = None,
                    **settings: Any) -> HybridOptimizer:
    """A :class:`HybridOptimizer` for ``method`` over ``units`` (default: the model's trainable units).

    ``settings`` are :class:`ZOConfig` fields (``rule``, ``sign``, ``q``, ``eps_vision``, ``zo_lr``,
    ...); they win over the method's own settings (e.g. MoZO's), which win over ``zo``. An unset
    ``zo_lr`` becomes ``lr`` (:meth:`ZOConfig.with_step`).
    """
    units = normalize_units(trainable_units(model) if units is None else units)
    modes = unit_modes(resolve_mask(method, unit_layers(units)), units)
    return HybridOptimizer(model, units, modes, lr=lr, weight_decay=weight_decay, mix=mix, schedule=schedule,
                           zo=zo_config(method, zo, **settings).with_step(lr), seed=seed, fo_train_mode=fo_train_mode,
                           partial=partial)
