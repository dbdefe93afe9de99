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


def seed_mean(by_seed: dict, key: str):
    """The mean over seeds of a per-task list field (``losses``: per-step losses of each task), per
    task; seeds whose task has a different length (a diverged run) are left out of that task."""
    import numpy as np
    tasks = max(len(r[key]) for r in by_seed.values())
    out = []
    for t in range(tasks):
        rows = [r[key][t] for r in by_seed.values() if len(r[key]) > t]
        n = max(len(x) for x in rows)
        out.append(np.mean([x for x in rows if len(x) == n], axis=0))
    return out


def plot_losses(ax, runs: dict, window: int = 1, styles: dict | None = None, reference: str | None = None) -> None:
    """Training loss of every step (mean over seeds), tasks concatenated, one line per label of
    ``runs`` (``{label: {seed: result}}``), smoothed within each task only (a window never mixes two
    tasks' losses). ``reference`` (e.g. the frozen model, whose "training" loss is its loss on the
    same batches) is drawn grey and dashed. Dotted vertical lines mark task boundaries."""
    import numpy as np
    for label, by_seed in runs.items():
        flat = np.concatenate([smooth(task, window) for task in seed_mean(by_seed, "losses")])
        style = {"lw": 1.2} | ({"color": "grey", "ls": "--", "lw": 1.0} if label == reference else {})
        ax.plot(flat, label=label, **(style | (styles or {}).get(label, {})))
    first = next(iter(runs.values()))
    edge = 0
    for task in seed_mean(first, "losses")[:-1]:
        edge += len(task)
        ax.axvline(edge, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("optimizer step (tasks concatenated; dotted lines: task boundaries)")
    ax.set_ylabel("training loss" + (f" (moving average of {window} within each task)" if window > 1 else ""))
    ax.legend()


def plot_accuracy_curves(ax, runs: dict, styles: dict | None = None, reference: str | None = None) -> None:
    """Pooled accuracy on all seen classes after each task, mean over seeds with its 95% bootstrap
    interval (band), one line per label of ``runs`` (``{label: {seed: result}}``). ``reference``
    (the frozen model: its accuracy falls as the label space grows) is drawn grey and dashed."""
    import numpy as np
    from .analysis.stats import mean_ci
    for label, by_seed in runs.items():
        pooled = [r["pooled"] for r in by_seed.values()]
        tasks = min(len(p) for p in pooled)
        stats = np.array([mean_ci([p[t] for p in pooled]) for t in range(tasks)])
        x = np.arange(1, tasks + 1)
        style = {"marker": "o", "ms": 3} | ({"color": "grey", "ls": "--", "marker": None} if label == reference else {})
        line, = ax.plot(x, stats[:, 0], label=label, **(style | (styles or {}).get(label, {})))
        if len(pooled) > 1:
            ax.fill_between(x, stats[:, 1], stats[:, 2], color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("accuracy on all seen classes (%)\nmean over seeds, 95% CI band")
    ax.legend()


def bars_with_ci(ax, table, x: str, metric: str, hue: str | None = None, order=None, hue_order=None) -> None:
    """Bars of ``metric`` (mean over seeds) with its 95% interval (columns ``<metric>_lo``/``_hi`` of
    :meth:`zolib.nb.Session.summary`) as error bars, labelled with the mean."""
    import numpy as np
    order = list(order if order is not None else dict.fromkeys(table[x]))
    hues = list(hue_order if hue_order is not None else (dict.fromkeys(table[hue]) if hue else [None]))
    width = 0.8 / len(hues)
    for i, h in enumerate(hues):
        part = table if h is None else table[table[hue] == h]
        part = part.set_index(x).reindex(order)
        pos = np.arange(len(order)) + (i - (len(hues) - 1) / 2) * width
        mean, lo, hi = part[metric].to_numpy(float), part[f"{metric}_lo"].to_numpy(float), part[f"{metric}_hi"].to_numpy(float)
        err = np.array([mean - lo, hi - mean])
        bars = ax.bar(pos, mean, width, label=h, yerr=np.where(np.isnan(err), 0, err), capsize=3)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in mean], fontsize=7, padding=2)
    ax.set_xticks(np.arange(len(order)), order)
    if hue:
        ax.legend(fontsize=7)
