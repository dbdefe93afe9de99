"""Small ipywidgets helpers for the notebooks' interactive cells (notebooks 03 and 06).

- :func:`mask_picker`: a 2 x L grid of toggle buttons (vision row, text row; layers 0..L-1 left
  to right, zolib numbers layers from 0); a pressed button = that unit is ZO. Its callback gets
  the mask ``{"vision": [bool] * L, "text": [bool] * L}`` and its ``custom:`` method string
  (:func:`zolib.optim.methods.custom`).
- :func:`method_to_mask`: the mask of any method name, from the method registry.
- :func:`has_frontend`: False under papermill, plain Python or a terminal IPython, so a cell can
  do ``if widgets.has_frontend(): display(picker) else: print("interactive cell: open in Jupyter")``.

ipywidgets is imported only by :func:`mask_picker`, so the mask functions work without it.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable

from .optim.methods import BRANCHES, custom, resolve_mask

Mask = dict[str, list[bool]]
ROW_LABELS = {"vision": "vision", "text": "text"}


def method_to_mask(method: str, layers: int = 12) -> Mask:
    """The ZO mask (True = ZO) of any method name (``fo``, ``hop-odd-vision``, ``custom:...``, ...)
    for a CLIP with ``layers`` blocks per branch."""
    bits = resolve_mask(method, {b: layers for b in BRANCHES})
    return {b: [c == "1" for c in bits[b]] for b in BRANCHES}


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
        on_change(box.mask, custom(box.mask))

    for b in BRANCHES:
        for btn in buttons[b]:
            btn.observe(changed, names="value")
    changed()
    return box
