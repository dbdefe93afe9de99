"""One way to style and save figures: PDF + PNG into ``figures/<profile>/``.

Figures made on synthetic data carry ``synthetic`` in their file name and title. Saving is
deterministic (no timestamps in the metadata, TrueType fonts embedded) so a rerun gives the
same bytes.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .runtime import REPO_ROOT

FIGURES = REPO_ROOT / "figures"


def setup_style() -> None:
    """Plot style shared by every notebook (seaborn whitegrid, embedded TrueType fonts)."""
    import seaborn as sns
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams.update({"pdf.fonttype": 42, "ps.fonttype": 42, "figure.dpi": 100, "savefig.dpi": 150,
                         "svg.hashsalt": "zolib", "figure.autolayout": False})


def title(text: str, profile: str, synthetic: bool) -> str:
    """A figure title that marks its profile and, where relevant, synthetic data."""
    return f"{text}\n[{profile} profile{', SYNTHETIC data' if synthetic else ''}]"


def savefig(fig: plt.Figure, name: str, profile: str, synthetic: bool, folder: Path | None = None) -> list[Path]:
    """Save ``fig`` as ``<folder or figures/<profile>>/<name>[_synthetic].{pdf,png}``; returns the paths."""
    folder = Path(folder) if folder else FIGURES / profile
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_synthetic" if synthetic and not name.endswith("_synthetic") else name
    paths = [folder / f"{stem}.pdf", folder / f"{stem}.png"]
    fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                                          "Creator": None})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Software": None})
    return paths


def smooth(values, window: int):
    """Moving average over ``window`` steps (``window <= 1``: unchanged), same length as ``values``."""
    import numpy as np
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) < window:
        return values
    kernel = np.ones(window) / window
    head = np.cumsum(values[: window - 1]) / np.arange(1, window)
    return np.concatenate([head, np.convolve(values, kernel, mode="valid")])


def plot_losses(ax, results: dict, window: int = 1, styles: dict | None = None) -> None:
    """Training loss of every step, tasks concatenated, one line per labelled result;
    dotted vertical lines mark task boundaries (those of the first result). ``styles``: extra
    ``ax.plot`` keywords per label (e.g. a dashed line that stays visible on top of another)."""
    for label, res in results.items():
        flat = [loss for task in res["losses"] for loss in task]
        ax.plot(smooth(flat, window), label=label, **({"lw": 1.2} | (styles or {}).get(label, {})))
    first = next(iter(results.values()))
    edge = 0
    for task in first["losses"][:-1]:
        edge += len(task)
        ax.axvline(edge, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("optimizer step (tasks concatenated; dotted lines: task boundaries)")
    ax.set_ylabel("training loss" + (f" (moving average of {window})" if window > 1 else ""))
    ax.legend()


def plot_accuracy_curves(ax, results: dict, styles: dict | None = None) -> None:
    """Pooled accuracy on all seen classes after each task, one line per labelled result,
    with the zero-shot accuracy on all classes as a dashed reference; ``styles`` as in
    :func:`plot_losses`."""
    for label, res in results.items():
        ax.plot(range(1, len(res["pooled"]) + 1), res["pooled"], label=label,
                **({"marker": "o", "ms": 3} | (styles or {}).get(label, {})))
    zero_shot = next(iter(results.values()))["zero_shot"]
    ax.axhline(zero_shot, color="grey", ls="--", lw=1, label=f"zero-shot, all classes ({zero_shot:.1f}%)")
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("accuracy on all seen classes (%)")
    ax.legend()
