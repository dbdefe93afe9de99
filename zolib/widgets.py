"""Small ipywidgets helpers for the notebooks' interactive cells (notebooks 03 and 06).

- :func:`layer_explorer` (03) and :func:`mask_memory` (06): a mask picker whose result is shown inside
  its cell (:func:`explorer`), a plain note and one example under papermill;
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


def explorer(describe: Callable[[Mask, str], str], initial: str, note: str, layers: int = 12):
    """A :func:`mask_picker` whose result, ``describe(mask, method)``, is shown *inside the cell* (an
    ``ipywidgets.Output`` below the grid: a callback's bare ``print`` would land in JupyterLab's log
    console instead), or, without a frontend (papermill, a static viewer), ``note`` and the text of
    ``initial`` printed once. Returns the widget (None without a frontend)."""
    if not has_frontend():
        print(f"interactive cell: {note}; for example, {initial}:\n{describe(method_to_mask(initial, layers), initial)}")
        return None
    import ipywidgets
    from IPython.display import display
    out = ipywidgets.Output()

    def show(mask: Mask, method: str) -> None:
        out.clear_output(wait=True)
        with out:
            print(describe(mask, method))
    box = ipywidgets.VBox([mask_picker(show, layers=layers, initial=initial), out])
    display(box)
    return box


def layer_explorer(session, initial: str = "hop-odd-vision"):
    """Notebook 03: pick ZO layers; shows the stored result of that assignment (literal regime, the
    notebook's first seed), or the command that runs it."""
    def describe(mask: Mask, method: str) -> str:
        result = session.store.get(session.config(method=method, seed=session.seeds[0]))
        if result is None:
            return (f"{method}: not run yet in the {session.profile.name} profile; run it with\n  zolib experiment "
                    f"--profile {session.profile.name} --method {method}")
        return (f"{method}: Last {result['last']:.2f}%, Avg {result['avg']:.2f}%, forgetting "
                f"{result['forgetting']:.2f} (seed {session.seeds[0]}, literal regime)")
    return explorer(describe, initial, "open this notebook in JupyterLab to pick ZO layers on a 2 x 12 grid")


def mask_memory(step, initial: str = "hop-odd-vision"):
    """Notebook 06: pick a mask; measures one step of it on ``step``'s model (:mod:`zolib.cl.randomstep`)
    and shows the bytes it saves per branch."""
    from .analysis.footprint import predict_mask_memory
    mib = 2 ** 20

    def describe(mask: Mask, method: str) -> str:
        r = predict_mask_memory(step, mask)
        return (f"{method}\n  saved vision {r['saved_vision_bytes'] / mib:.2f} MiB, text {r['saved_text_bytes'] / mib:.2f} "
                f"MiB; lowest FO layer {r['lowest_fo_layer']}; gradients + optimizer state "
                f"{(r['gradient_bytes'] + r['optimizer_state_bytes']) / mib:.2f} MiB")
    return explorer(describe, initial, "open this notebook in JupyterLab to pick a mask")
