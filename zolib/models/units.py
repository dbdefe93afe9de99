"""The trainable-units view: adapter parameters grouped by (branch, layer).

Every optimizer in :mod:`zolib.optim` sees the model only through this view, so it
must cover exactly the trainable parameters. ``branch`` is ``"vision"`` or ``"text"``;
``layer`` is the 0-based block index (0..11 for ViT-B/16). zolib numbers layers from 0
everywhere: code, notebooks and figures. A classifier head (:mod:`zolib.models.head`, ZO-FC) is
the unit ``("head", 0)`` and a learned prompt context (:mod:`zolib.models.prompt`, SharpZO, CoOp)
the unit ``("prompt", 0)``, after the blocks.
"""
from __future__ import annotations

import re
from collections import OrderedDict

from torch import nn

BRANCHES = ("vision", "text")
HEAD = ("head", 0)
PROMPT = ("prompt", 0)
UnitKey = tuple[str, int]
Units = "OrderedDict[UnitKey, OrderedDict[str, nn.Parameter]]"

# Trainable parameters that a ZO forward cannot inform: the MoE router-noise matrix acts only through
# train-mode routing noise, and every ZO forward runs in eval mode (zolib.optim.hybrid), so its
# finite difference is exactly 0 and a ZO rule would only make it drift. Such parameters are held
# fixed in ZO units and trained only where their unit is FO.
ZO_INERT = (".adapter.noise",)

_BLOCK = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.")


def unit_of(param_name: str) -> UnitKey | None:
    """The (branch, layer) a parameter name belongs to, or None outside the blocks."""
    if param_name.startswith("head."):
        return HEAD
    if param_name.startswith("prompt."):
        return PROMPT
    m = _BLOCK.match(param_name)
    if m is None:
        return None
    return ("vision" if m.group(1) else "text", int(m.group(2)))


def trainable_units(model: nn.Module) -> "OrderedDict[UnitKey, OrderedDict[str, nn.Parameter]]":
    """Group the trainable parameters of an adapted CLIP by (branch, layer).

    Units are ordered vision 0..L-1, then text 0..L-1. Raises ``ValueError`` if a
    trainable parameter lies outside the transformer blocks, so the view can never
    silently miss one.
    """
    units: dict[UnitKey, OrderedDict[str, nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        key = unit_of(name)
        if key is None:
            raise ValueError(f"trainable parameter {name!r} is outside the transformer blocks")
        units.setdefault(key, OrderedDict())[name] = p
    order = sorted(units, key=lambda k: (BRANCHES.index(k[0]) if k[0] in BRANCHES else len(BRANCHES), k[1]))
    return OrderedDict((k, units[k]) for k in order)


def zo_inert(param_name: str) -> bool:
    """Whether a parameter gets no signal in a ZO (eval-mode) forward (see :data:`ZO_INERT`)."""
    return param_name.endswith(ZO_INERT)


def count_parameters(units) -> dict:
    """Parameter counts: per unit ``"vision/3"``, per branch, and ``total``."""
    per_unit = {f"{b}/{l}": sum(p.numel() for p in ps.values()) for (b, l), ps in units.items() if b in BRANCHES}
    per_branch = {b: sum(n for k, n in per_unit.items() if k.startswith(b + "/")) for b in BRANCHES}
    return {"total": sum(per_unit.values()), "per_branch": per_branch, "per_unit": per_unit}
