"""The method registry: every method name, which (branch, layer) units it makes ZO, the
optimizer settings it fixes, and one line of help. The method grammar lives here and nowhere
else: the CLI's help, the experiment config, the widgets' masks, the claims and the notebooks
all ask this module (:func:`parse`).

Names (layers are 0-based everywhere: ``hop-odd`` = layers 1, 3, ..., 11):

- ``fo``: every unit first-order (AdamW), the MoE-Adapters4CL baseline;
- ``frozen``: no unit trained; the reference run every gain is measured against;
- branch-wise: ``dual`` (both branches ZO), ``vision`` (vision ZO, text FO), ``language``;
- layer-wise ``<pattern>-<side>``: pattern ``hop-odd``, ``hop-even``, ``prefix<k>``,
  ``suffix<k>``; side ``vision``, ``language`` (the text branch) or ``both``; ZO on the
  selected layers of the side, FO on every other unit (the whole other branch too);
- ``mozo``: MoZO's settings (:data:`MOZO`) on the ``hop-even-both`` assignment;
- ``custom:vision=0101...,text=0000...``: ZO where the mask has a 1 (one digit per layer,
  layer 0 first; ``language`` is accepted for ``text``; a branch left out is all FO).

A method resolves to a mask string in the ``custom:`` grammar, which the experiment config
stores (so two names for the same assignment are the same computation), plus settings.
Setting ``zo_lr=0`` on any method holds its ZO units fixed: the *control* of that method.

MoZO (paper: conservative rule + sign normalisation + ``eps_v < eps_l``). The paper gives no
values and no direction count. With conservative + sign + ``q = 1`` the candidate set
``{theta, theta -+ eta sign(z)}`` does not depend on the estimate (see
:meth:`~zolib.optim.zo.ZOConfig.degeneracy`), so neither the estimate nor eps could act. zolib's
MoZO therefore uses ``q = 2``, the cheapest setting in which all three ingredients act: the
element-wise sign of ``c_1 z_1 + c_2 z_2`` depends on the measured differences, and with the
default joint perturbation ``c_k`` is ``(eps_v <g_v, z_v> + eps_l <g_l, z_l>) / eps_unit``, so the
ratio ``eps_v / eps_l`` decides how much each modality's perturbation steers every unit's
update. Cost: one forward more than ``q = 1`` (5 a step). ``eps_text = 1e-3`` is the paper's
eps; ``eps_vision = 5e-4`` halves it (fp32 rounding of a loss near 1 stays ~1e4 times below the
difference). notebooks/05_mozo.ipynb explains the algebra and sweeps them.
"""
from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..errors import ZolibError, unknown_value

BRANCHES = ("vision", "text")
SIDES: dict[str, tuple[str, ...]] = {"vision": ("vision",), "language": ("text",), "both": ("vision", "text")}
MOZO: dict[str, Any] = {"rule": "conservative", "sign": "elementwise", "q": 2, "eps_vision": 5e-4, "eps_text": 1e-3}

Mask = dict[str, str]  # {"vision": "0101...", "text": "0000..."}, one digit per layer, "1" = ZO

# The ZeroFlow / ZO-Bench optimizer family (ZeroFlow, ICML 2025; its optimizer is `infty` on PyPI), as
# ZO settings for whatever units a method makes ZO: `zolib experiment --method vision --zo-optimizer zo-adam`.
ZO_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "zo-sgd": ("MeZO's ZO-SGD: two-sided, q = 1, one step per estimate, constant learning rate",
               {"estimator": "two-sided", "q": 1, "rule": "aggressive", "sign": "none", "schedule": "constant"}),
    "zo-sgd-momentum": ("ZO-SGD with momentum 0.9 on the estimate (ZeroFlow's zo_sgd with a momentum base)",
                        {"estimator": "two-sided", "rule": "aggressive", "base": "momentum", "momentum": 0.9}),
    "zo-sgd-sign": ("ZO-SGD-Sign: the sign of the projected difference times the direction (ZeroFlow, ZO-Bench)",
                    {"estimator": "two-sided", "rule": "aggressive", "sign": "projected"}),
    "zo-sgd-conserve": ("ZO-SGD-Conserve: keep the best of theta, theta -+ step (ZeroFlow, ZO-Bench)",
                        {"estimator": "two-sided", "rule": "conservative"}),
    "zo-adam": ("ZO-Adam: Adam moments on the estimate, betas 0.9, 0.999 (ZeroFlow, ZO-Bench)",
                {"estimator": "two-sided", "rule": "aggressive", "base": "adam", "adam_betas": (0.9, 0.999)}),
    "forward-grad": ("forward gradient: the exact directional derivative by forward-mode AD (ZeroFlow)",
                     {"estimator": "forward-grad", "rule": "aggressive"}),
}


def zo_optimizer(name: str) -> dict[str, Any]:
    """The settings of a ZO optimizer of :data:`ZO_OPTIMIZERS` (one-line error listing them otherwise)."""
    if name not in ZO_OPTIMIZERS:
        raise unknown_value("ZO optimizer", name, ZO_OPTIMIZERS)
    return dict(ZO_OPTIMIZERS[name][1])

_PATTERN_HELP = {"hop-odd": "ZO on odd layers (1, 3, ..., 11)", "hop-even": "ZO on even layers (0, 2, ..., 10)",
                 "prefix<k>": "ZO on the first k layers", "suffix<k>": "ZO on the last k layers"}
_SIDE_HELP = {"vision": "of the vision branch, all else FO", "language": "of the text branch, all else FO",
              "both": "of both branches, the other layers FO"}
_LAYERWISE = re.compile(r"^(hop-odd|hop-even|prefix(\d+)|suffix(\d+))-(vision|language|both)$")


@dataclass(frozen=True)
class Method:
    """One parsed method name.

    ``family``: ``fo``, ``frozen``, ``branch``, ``layer``, ``mozo`` or ``custom``; for layer-wise
    methods ``pattern`` (``hop-odd``, ``hop-even``, ``prefix``, ``suffix``), ``k`` and ``side``.
    ``settings``: the experiment/ZO fields the method fixes (a user's explicit override wins).
    """

    name: str
    family: str
    help: str
    select: Callable[[str, int, int], bool] = field(repr=False, compare=False)  # (branch, layer, n) -> ZO?
    settings: Mapping[str, Any] = field(default_factory=dict)
    pattern: str | None = None
    k: int | None = None
    side: str | None = None

    @property
    def interleaved(self) -> bool:
        """Hop patterns: every ZO layer sits between FO layers."""
        return self.pattern in ("hop-odd", "hop-even")

    @property
    def consecutive(self) -> bool:
        """Prefix/Suffix patterns: a block of adjacent ZO layers."""
        return self.pattern in ("prefix", "suffix")

    def mask(self, layers: Mapping[str, int]) -> Mask:
        """The ZO mask over a model with ``layers[branch]`` blocks per branch."""
        return {b: "".join("1" if self.select(b, l, layers[b]) else "0" for l in range(layers[b]))
                for b in BRANCHES}


def _simple(name: str, family: str, help: str, select, **settings) -> Method:
    return Method(name, family, help, select, settings)


FIXED: dict[str, Method] = {m.name: m for m in [
    _simple("fo", "fo", "all units first-order (AdamW): the MoE-Adapters4CL baseline", lambda b, l, n: False),
    _simple("frozen", "frozen", "nothing trained: the frozen model, the reference of every gain",
            lambda b, l, n: True, zo_lr=0.0),
    _simple("dual", "branch", "all units zeroth-order, both branches", lambda b, l, n: True),
    _simple("vision", "branch", "vision branch ZO, text branch FO", lambda b, l, n: b == "vision"),
    _simple("language", "branch", "text branch ZO, vision branch FO", lambda b, l, n: b == "text"),
]}


# ZO-FC (arXiv 2510.21019) in CLIP form: ZO on every vision adapter, FO on a linear head over the image
# features (rows initialised from the class prompts' text features; zolib.models.head). Its public code:
# Rademacher directions, two-sided, q in 1..32 (zolib: 4), eps 1e-3, gradient-norm clipping at 1.0, SGD
# with momentum 0.9 at lr 0.01 for both the ZO module and the classifier, old-class logits masked and
# old-class rows frozen. The text adapters are not trained (the text encoder only initialises rows).
ZO_FC: dict[str, Any] = {"classifier": "head", "fo_optimizer": "sgd", "lr": 0.01, "zo_lr": 0.01,
                         "estimator": "two-sided", "distribution": "rademacher", "q": 4, "rule": "aggressive",
                         "base": "momentum", "momentum": 0.9, "clip_norm": 1.0}
FIXED["zo-fc"] = Method("zo-fc", "peer", "ZO-FC: ZO (Rademacher, two-sided, q 4, clipped, SGD momentum) on the vision "
                        "adapters, FO (SGD) on a linear head; lr 0.01", lambda b, l, n: b == "vision", ZO_FC)


# SharpZO (arXiv 2506.20990) and its baselines: CLIP prompt tuning, the adapters untouched, the prompt
# context through a 512-d vector (zolib.models.prompt). SharpZO's stage 2 (and ZO-SGD alone): two-sided,
# q 1, eps 1e-3, lr 1e-3. In the class-incremental harness each task restarts the two stages, stage 1
# taking half of the task's steps (SharpZO: 100-500 steps, in a few-shot run of hundreds).
_PROMPT_ZO = {"classifier": "prompt", "estimator": "two-sided", "q": 1, "eps": 1e-3, "rule": "aggressive",
              "zo_lr": 1e-3}
for _name, _help, _settings in [
        ("coop", "CoOp: the prompt context (through SharpZO's 512-d vector) trained FO (AdamW)",
         {"classifier": "prompt", "prompt_mode": "fo"}),
        ("prompt-zo-sgd", "ZO-SGD alone on the prompt vector (SharpZO's stage 2 without its mask)",
         {**_PROMPT_ZO, "prompt_mode": "zo"}),
        ("prompt-cma-es", "CMA-ES alone on the prompt vector (SharpZO's stage 1 without sharpness)",
         {"classifier": "prompt", "prompt_mode": "cmaes", "rho": 0.0}),
        ("sharpzo", "SharpZO: sharpness-aware CMA-ES, then sparse ZO-SGD, on the prompt vector",
         {**_PROMPT_ZO, "prompt_mode": "sharpzo", "stage1_fraction": 0.5})]:
    FIXED[_name] = Method(_name, "peer", _help, lambda b, l, n: False, _settings)


def _layerwise(name: str) -> Method | None:
    m = _LAYERWISE.match(name)
    if m is None:
        return None
    sel, prefix_k, suffix_k, side = m.groups()
    k = int(prefix_k or suffix_k or 0) or None
    pattern = sel if sel.startswith("hop") else sel.rstrip("0123456789")
    picks = {"hop-odd": lambda l, n: l % 2 == 1, "hop-even": lambda l, n: l % 2 == 0,
             "prefix": lambda l, n: l < k, "suffix": lambda l, n: l >= n - k}
    pick = picks[pattern]
    branches = SIDES[side]
    help = f"{_PATTERN_HELP[pattern if k is None else pattern + '<k>'].replace('k layers', f'{k} layers')} " \
           f"{_SIDE_HELP[side]}"
    return Method(name, "layer", help, lambda b, l, n: b in branches and pick(l, n), {}, pattern, k, side)


def parse_mask(text: str) -> Mask:
    """``"vision=0101...,text=0000..."`` -> ``{"vision": "0101...", "text": "0000..."}`` (digits checked
    for 0/1 only; their count is checked against the model by :func:`resolve_mask`)."""
    bits: Mask = {}
    for part in filter(None, text.split(",")):
        branch, _, digits = part.partition("=")
        branch = {"language": "text"}.get(branch.strip(), branch.strip())
        if branch not in BRANCHES:
            raise unknown_value("mask branch", branch, BRANCHES)
        digits = digits.strip()
        if not digits or set(digits) - {"0", "1"}:
            raise ZolibError(f"mask for {branch} must be digits 0/1 (one per layer, layer 0 first); got {digits!r}")
        bits[branch] = digits
    if not bits:
        raise ZolibError("empty custom mask; write e.g. custom:vision=010101010101,text=000000000000")
    return bits


def _custom(name: str) -> Method:
    bits = parse_mask(name[len("custom:"):])
    return Method(name, "custom", "ZO where the mask has 1", lambda b, l, n: b in bits and bits[b][l] == "1")


def parse(name: str) -> Method:
    """The :class:`Method` called ``name``; one line listing the valid names if there is none."""
    if name in FIXED:
        return FIXED[name]
    if name == "mozo":
        base = _layerwise("hop-even-both")
        return Method("mozo", "mozo", "MoZO (conservative, element-wise sign, q = 2, eps_vision 5e-4 < eps_text "
                      "1e-3) on hop-even-both", base.select, dict(MOZO), "hop-even", None, "both")
    if name.startswith("custom:"):
        return _custom(name)
    method = _layerwise(name)
    if method is None:
        raise unknown_value("method", name, listing())
    return method


def resolve_mask(name: str, layers: Mapping[str, int]) -> Mask:
    """The ZO mask of method ``name`` on a model with ``layers[branch]`` blocks, checked against it."""
    method = parse(name)
    if method.family == "custom":
        bits = parse_mask(name[len("custom:"):])
        for b, digits in bits.items():
            if len(digits) != layers[b]:
                raise ZolibError(f"mask for {b} must be {layers[b]} digits of 0/1 (one per layer, layer 0 first); "
                                 f"got {digits!r}")
    if method.k is not None and not 1 <= method.k <= min(layers[b] for b in SIDES[method.side]):
        raise ZolibError(f"{name}: k must be between 1 and the number of layers; got {method.k}")
    return method.mask(layers)


def mask_text(mask: Mapping[str, Any]) -> str:
    """``{"vision": "0101..." or [True, ...], "text": ...}`` -> ``"vision=0101...,text=..."``
    (``language`` is accepted for ``text``; branches in the order vision, text)."""
    out = {}
    for branch, bits in mask.items():
        branch = {"language": "text"}.get(branch, branch)
        if branch not in BRANCHES:
            raise ZolibError(f"mask branches are {', '.join(BRANCHES)}; got {branch!r}")
        out[branch] = bits if isinstance(bits, str) else "".join("1" if b else "0" for b in bits)
    return ",".join(f"{b}={out[b]}" for b in BRANCHES if b in out)


def unit_modes(mask: Mapping[str, str], units: Mapping[Any, Any]) -> "OrderedDict[Any, str]":
    """``{unit: "zo" | "fo"}`` from a mask ``{"vision": "0101...", "text": ...}`` (a branch missing is FO;
    a classifier head or prompt is FO). Which units a run holds fixed is the config's to say
    (:meth:`zolib.cl.config.ExperimentConfig.unit_modes`)."""
    return OrderedDict((k, "zo" if k[0] in mask and mask[k[0]][k[1]] == "1" else "fo") for k in units)


def custom(mask: Mapping[str, Any]) -> str:
    """The ``custom:`` method name of a mask (see :func:`mask_text`)."""
    return "custom:" + mask_text(mask)


def listing() -> dict[str, str]:
    """Every method name (parametrised ones in their general form) with its line of help."""
    out = {name: m.help for name, m in FIXED.items()}
    for pattern in ("hop-odd", "hop-even"):
        for side in SIDES:
            out[f"{pattern}-{side}"] = parse(f"{pattern}-{side}").help
    out["prefix<k>-<side>"] = "ZO on the first k layers of a side (vision, language, both), all else FO"
    out["suffix<k>-<side>"] = "ZO on the last k layers of a side (vision, language, both), all else FO"
    out["mozo"] = parse("mozo").help
    out["custom:<mask>"] = "ZO where the mask has 1, e.g. custom:vision=010101010101,text=000000000000"
    return out


LABELS = {"fo": "FO", "frozen": "frozen", "dual": "Dual", "vision": "Vision", "language": "Language", "mozo": "MoZO",
          "zo-fc": "ZO-FC", "coop": "CoOp", "prompt-zo-sgd": "prompt ZO-SGD", "prompt-cma-es": "prompt CMA-ES",
          "sharpzo": "SharpZO"}


def setting_names() -> set[str]:
    """Every field some method of the registry (or a ZO optimizer of :data:`ZO_OPTIMIZERS`) sets."""
    return {k for m in FIXED.values() for k in m.settings} | set(MOZO) | \
        {k for _, settings in ZO_OPTIMIZERS.values() for k in settings}


def label(name: str) -> str:
    """How tables and figures name a method: ``FO``, ``Dual``, ``Vision``, ``MoZO``, ``Hop-odd-vision``, ...
    (the one table of method labels; a ``custom:`` mask keeps its name)."""
    parse(name)
    if name in LABELS:
        return LABELS[name]
    return name if name.startswith("custom:") else name[:1].upper() + name[1:]


def layerwise(patterns: list[str], sides: list[str]) -> list[str]:
    """The layer-wise method names of ``patterns`` x ``sides`` (e.g. ``["hop-odd"] x ["vision"]``), checked."""
    names = [f"{p}-{s}" for p in patterns for s in sides]
    for name in names:
        parse(name)
    return names
