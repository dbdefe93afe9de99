"""Small ipywidgets helpers for the notebooks' interactive cells (notebooks 03 and 06).

- :func:`mask_picker`: a 2 x L grid of toggle buttons (vision row, text row; layers 0..L-1 left
  to right, zolib numbers layers from 0); a pressed button = that unit is ZO. Its callback gets
  the mask ``{"vision": [bool] * L, "text": [bool] * L}`` and its ``custom:`` method string.
- :func:`mask_to_method` / :func:`method_to_mask`: between such masks and method names
  (``custom:vision=0101...,text=...`` or any preset such as ``hop-odd-vision``).
- :func:`has_frontend`: False under papermill, plain Python or a terminal IPython, so a cell can
  do ``if widgets.has_frontend(): display(picker) else: print("interactive cell: open in Jupyter")``.

ipywidgets is imported only by :func:`mask_picker`, so the mask functions work without it.
"""
from __future__ import annotations

import os
import sys
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

from .models.units import BRANCHES
from .optim.presets import resolve_method

Mask = dict[str, list[bool]]
ROW_LABELS = {"vision": "vision", "text": "text"}


def mask_to_method(mask: Mapping[str, Sequence[bool]]) -> str:
    """``{"vision": [True = ZO, ...], "text": [...]}`` -> ``"custom:vision=0101...,text=0000..."``
    (``language`` is accepted for ``text``; digits are layers 0, 1, ... left to right), the string
    :func:`zolib.optim.build_optimizer` and :func:`zolib.optim.parse_mask` read."""
    parts = []
    for branch, bits in mask.items():
        branch = {"language": "text"}.get(branch, branch)
        if branch not in BRANCHES:
            raise ValueError(f"mask branches are {', '.join(BRANCHES)}; got {branch!r}")
        parts.append(f"{branch}=" + "".join("1" if b else "0" for b in bits))
    return "custom:" + ",".join(parts)


def method_to_mask(method: str, layers: int | Mapping[str, int] = 12) -> Mask:
    """The ZO mask of any method name (``fo``, ``hop-odd-vision``, ``custom:...``, ...) for a CLIP
    with ``layers`` blocks per branch (an int or ``{"vision": n, "text": m}``)."""
    counts = {b: layers for b in BRANCHES} if isinstance(layers, int) else dict(layers)
    units = OrderedDict(((b, l), {}) for b in BRANCHES for l in range(counts[b]))
    modes, _ = resolve_method(method, units)
    return {b: [modes[(b, l)] == "zo" for l in range(counts[b])] for b in BRANCHES}


def has_frontend() -> bool:
    """Whether widgets can be shown: an IPython kernel driven by an interactive frontend.

    False in plain Python, in a terminal IPython, and under papermill / nbclient (which send
    their execute requests without metadata, where JupyterLab, Notebook 7 and VS Code send a
    cell id). ``ZOLIB_FRONTEND=0`` or ``=1`` in the environment overrides the guess.
    """
    forced = os.environ.get("ZOLIB_FRONTEND")
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "")
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython
    ip = get_ipython()
    kernel = getattr(ip, "kernel", None)
    if ip is None or kernel is None or type(ip).__name__ != "ZMQInteractiveShell":
        return False
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # noqa: BLE001 - older ipykernel: no get_parent
        parent = getattr(ip, "parent_header", {}) or {}
    return bool((parent or {}).get("metadata"))


def mask_picker(on_change: Callable[[Mask, str], Any], layers: int = 12, initial: Mask | str | None = None,
                description: str = "pressed = ZO"):
    """A 2 x ``layers`` grid of ToggleButtons (rows vision, text; columns layers 0..L-1).

    ``on_change(mask, method)`` is called once at creation and after every toggle, with the mask
    (``{"vision": [bool] * L, "text": [...]}``, True = ZO) and its ``custom:`` method string.
    ``initial`` is a mask or a method name (default ``"dual"``: every unit ZO). Returns the widget
    (an ``ipywidgets.VBox``); its ``.mask`` attribute is the current mask.
    """
    import ipywidgets as w

    start = method_to_mask(initial or "dual", layers) if initial is None or isinstance(initial, str) else \
        {b: list(map(bool, initial[b])) for b in BRANCHES}
    buttons = {b: [w.ToggleButton(value=start[b][l], description=str(l), tooltip=f"{b} layer {l}",
                                  layout=w.Layout(width="38px"))
                   for l in range(layers)] for b in BRANCHES}
    rows = [w.HBox([w.Label(ROW_LABELS[b], layout=w.Layout(width="60px")), *buttons[b]]) for b in BRANCHES]
    box = w.VBox([w.Label(f"{description}; layers 0..{layers - 1} left to right"), *rows])

    def current() -> Mask:
        return {b: [btn.value for btn in buttons[b]] for b in BRANCHES}

    def changed(_=None) -> None:
        box.mask = current()
        on_change(box.mask, mask_to_method(box.mask))

    for b in BRANCHES:
        for btn in buttons[b]:
            btn.observe(changed, names="value")
    changed()
    return box
