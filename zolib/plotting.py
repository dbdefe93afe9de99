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


def merge_identical(runs: dict, key: str) -> dict:
    """``runs`` (``{label: {seed: result}}``) with the labels whose ``key`` (``losses``, ``pooled``) is the same in
    every seed merged under the first one's label, which then reads ``"a = b (identical)"``: a line drawn under
    another must not hide in the legend. Returns ``{first label: (shown label, runs)}``."""
    groups: dict = {}
    for label, by_seed in runs.items():
        values = [by_seed[s].get(key) for s in sorted(by_seed)]
        first = next((f for f, (v, _, _) in groups.items() if v == values), None)
        if first is None:
            groups[label] = (values, [label], by_seed)
        else:
            groups[first][1].append(label)
    return {first: (" = ".join(names) + (" (identical)" if len(names) > 1 else ""), by_seed)
            for first, (_, names, by_seed) in groups.items()}


def plot_losses(ax, runs: dict, window: int = 1, styles: dict | None = None, reference: str | None = None) -> None:
    """Training loss of every step (mean over seeds), tasks concatenated, one line per label of
    ``runs`` (``{label: {seed: result}}``), smoothed within each task only (a window never mixes two
    tasks' losses). ``reference`` (e.g. the frozen model, whose "training" loss is its loss on the
    same batches) is drawn grey and dashed. Dotted vertical lines mark task boundaries."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator
    for label, (shown, by_seed) in merge_identical(runs, "losses").items():
        flat = np.concatenate([smooth(task, window) for task in seed_mean(by_seed, "losses")])
        style = {"lw": 1.2} | ({"color": "grey", "ls": "--", "lw": 1.0} if label == reference else {})
        ax.plot(flat, label=shown, **(style | (styles or {}).get(label, {})))
    first = next(iter(runs.values()))
    edge = 0
    for task in seed_mean(first, "losses")[:-1]:
        edge += len(task)
        ax.axvline(edge, color="grey", lw=0.6, ls=":")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("optimizer step (tasks concatenated; dotted lines: task boundaries)")
    ax.set_ylabel("training loss" + (f" (moving average of {window} within each task)" if window > 1 else ""))
    ax.legend()


def plot_accuracy_curves(ax, runs: dict, styles: dict | None = None, reference: str | None = None) -> None:
    """Pooled accuracy on all seen classes after each task, mean over seeds with its 95% t
    interval (band), one line per label of ``runs`` (``{label: {seed: result}}``). ``reference``
    (the frozen model: its accuracy falls as the label space grows) is drawn grey and dashed."""
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    from .analysis.stats import mean_ci
    for label, (shown, by_seed) in merge_identical(runs, "pooled").items():
        pooled = [r["pooled"] for r in by_seed.values()]
        tasks = min(len(p) for p in pooled)
        stats = np.array([mean_ci([p[t] for p in pooled]) for t in range(tasks)])
        x = np.arange(1, tasks + 1)
        style = {"marker": "o", "ms": 3} | ({"color": "grey", "ls": "--", "marker": None} if label == reference else {})
        line, = ax.plot(x, stats[:, 0], label=shown, **(style | (styles or {}).get(label, {})))
        if len(pooled) > 1:
            ax.fill_between(x, stats[:, 1], stats[:, 2], color=line.get_color(), alpha=0.15, lw=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("tasks learned")
    ax.set_ylabel("accuracy on all seen classes (%)\nmean over seeds, 95% CI band")
    ax.legend()


def _yerr(mean, lo, hi):
    """Error-bar lengths below and above ``mean`` for an interval ``[lo, hi]``: 0 where there is no
    interval (NaN: one seed) and never negative (a bound that float rounding put past the mean)."""
    import numpy as np
    mean, lo, hi = (np.asarray(v, dtype=float) for v in (mean, lo, hi))
    return np.clip(np.nan_to_num(np.array([mean - lo, hi - mean])), 0, None)


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
        bars = ax.bar(pos, mean, width, label=h, yerr=_yerr(mean, lo, hi), capsize=3)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in mean], fontsize=7, padding=2)
    ax.set_xticks(np.arange(len(order)), order)
    if hue:
        ax.legend(fontsize=7)


# --------------------------------------------------------------------------- figures of several panels

def loss_panels(panels: dict, window: int = 1, styles: dict | None = None, reference: str | None = None,
                literal: str | None = None, seeds: int | None = None):
    """One row per step of ``panels`` (``{step name: {line label: runs}}``): :func:`plot_losses`, the legend
    beside the first panel only. ``literal`` names the step that is the harness lr (said in its title)."""
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 2.6 * len(panels)), sharex=True, squeeze=False)
    for ax, (step, shown) in zip(axes[:, 0], panels.items()):
        plot_losses(ax, shown, window=window, styles=styles, reference=reference)
        ax.set_title("ZO step calibrated" if step == "calibrated" else
                     f"ZO step {step}" + (" (the harness lr: literal)" if step == literal else ""), fontsize=9)
        ax.set_ylabel("")
        if ax is axes[0, 0]:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        else:
            ax.get_legend().remove()
        if ax is not axes[-1, 0]:
            ax.set_xlabel("")
    fig.supylabel(f"training loss (mean over {seeds} seeds; moving average of {window} within tasks)", fontsize=9)
    return fig


def accuracy_panels(panels: dict, styles: dict | None = None, reference: str | None = None):
    """One panel per step of ``panels`` (``{step name: {line label: runs}}``): :func:`plot_accuracy_curves`."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), sharey=True, squeeze=False)
    for ax, (step, shown) in zip(axes[0], panels.items()):
        plot_accuracy_curves(ax, shown, styles=styles, reference=reference)
        ax.set_title("calibrated" if step == "calibrated" else f"ZO step {step}", fontsize=9)
        ax.legend(fontsize=6)
    return fig


def metric_vs_step(table, lines: dict, steps: list, references: dict):
    """Last and Avg against the ZO step: one errorbar line per entry of ``lines`` (``{line label: [run label
    per step]}``) from a :func:`zolib.analysis.runs.summary` ``table`` indexed by label, a cross on the axis
    where a run diverged, and ``references`` (``{label: line style}``) as horizontal lines with their bands."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, metric in zip(axes, ("last", "avg")):
        for name, labels in lines.items():
            rows = table.loc[labels]
            err = _yerr(rows[metric], rows[f"{metric}_lo"], rows[f"{metric}_hi"])
            line = ax.errorbar(steps, rows[metric], yerr=err, fmt="o-", capsize=3, label=name)
            gone = [s for s, l in zip(steps, labels) if table.loc[l, "diverged"] > 0]
            if gone:
                ax.plot(gone, [0] * len(gone), "X", ms=10, color=line[0].get_color(), clip_on=False,
                        label=f"{name}: diverged (NaN loss)")
        for ref, style in references.items():
            ax.axhline(table.loc[ref, metric], label=f"{ref} ({table.loc[ref, metric]:.1f}%)", **style)
            ax.axhspan(table.loc[ref, f"{metric}_lo"], table.loc[ref, f"{metric}_hi"], color=style["color"], alpha=0.1)
        ax.set_xscale("log")
        ax.set_xlabel("ZO step size (zo_lr)")
        ax.set_ylabel(f"{metric.capitalize()} accuracy (%), 95% CI")
        ax.set_title(metric.capitalize(), fontsize=9)
        ax.legend(fontsize=7)
    return fig


# --------------------------------------------------------------------------- notebook 04

def variance_vs_dimension(quad, cases: dict, dims: list):
    """Section (a) of notebook 04: relative variance and mean cosine against the dimension, theory (lines)
    against sampled estimates (dots, error bars of two standard errors), one colour per case."""
    import numpy as np

    from .analysis.variance import estimator_mse, expected_cosine
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    grid = np.unique(np.geomspace(min(dims), max(dims), 50).round().astype(int))
    for (label, zo), color in zip(cases.items(), ["tab:green", "tab:purple"]):
        q = quad[quad.case == label]
        axes[0].plot(grid, estimator_mse(grid, q=zo.q, distribution=zo.distribution), color=color, label=f"theory: {label}")
        axes[0].errorbar(q.d, q.relative_mse, yerr=2 * q.rel_sem, fmt="o", color=color, label=f"sampled: {label}")
        axes[1].plot(grid, expected_cosine(grid, zo.q, zo.distribution), color=color, label=f"theory: {label}")
        axes[1].plot(q.d, q.mean_cosine, "o", color=color, label=f"sampled: {label}")
    for ax in axes:
        ax.set_xscale("log"); ax.set_yscale("log"); ax.set_xlabel("dimension d of the perturbed parameters")
        ax.legend(fontsize=7)
    axes[0].set_ylabel(r"relative variance $E\|\hat g - g\|^2 / \|g\|^2$")
    axes[1].set_ylabel(r"mean cosine$(\hat g, g)$")
    return fig


def variance_vs_eps(sweep, eps_grid: list, dim: int, seed: int):
    """Section (a) of notebook 04, the eps sweep: the one-sided theory (and the two-sided one, flat) against
    the sampled relative variance of each case of :func:`zolib.analysis.variance.eps_table`."""
    import numpy as np

    from .analysis.variance import QuadraticProblem, estimator_mse
    problem = QuadraticProblem(dim, seed)
    grad_sq = float(problem.gradient().square().sum())
    fine = np.geomspace(min(eps_grid), max(eps_grid), 60)
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    ax.plot(fine, [estimator_mse(dim, grad_sq, eps=e, hessian=problem.hessian) / grad_sq for e in fine],
            color="k", label="theory, one-sided")
    ax.axhline(estimator_mse(dim), color="k", ls="--", lw=1, label=r"theory, two-sided (and $\epsilon \to 0$)")
    for (label, g), marker in zip(sweep.groupby("case", sort=False), ["o", "x", "s"]):
        ax.plot(g.eps, g.relative_mse, marker, ms=6, mfc="none", label=f"sampled: {label}")
    ax.axvline(1e-3, color="grey", lw=0.8, ls=":")
    ax.text(1.2e-3, 0.95, "paper's eps", fontsize=7, transform=ax.get_xaxis_transform(), va="top")
    ax.set_xscale("log"); ax.set_yscale("log")
    ax.set_xlabel(r"perturbation scale $\epsilon$"); ax.set_ylabel(r"relative variance $E\|\hat g - g\|^2 / \|g\|^2$")
    ax.legend(fontsize=7)
    return fig


PALETTE = {"vision": "tab:blue", "language": "tab:orange"}


def branch_distributions(rows: list, names: dict, samples: int):
    """Sections (b) of notebook 04: the cosine of every single estimate per branch (violins, the theory's mean
    as a black mark) and the relative variance of each unit per branch (log scale, the theory d + 1 dashed)."""
    import pandas as pd
    import seaborn as sns

    from .analysis.variance import unit_summary
    df = pd.DataFrame(rows).assign(branch=lambda d: d.branch.map(names))
    units = pd.DataFrame(unit_summary(rows)).assign(branch=lambda d: d.branch.map(names))
    order = ["vision", "language"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    sns.violinplot(data=df, x="branch", y="cosine", hue="branch", order=order, palette=PALETTE, cut=0,
                   inner="quartile", ax=axes[0], legend=False)
    for i, b in enumerate(order):
        axes[0].hlines(units[units.branch == b].theory_cosine.iloc[0], i - 0.35, i + 0.35, color="k", lw=2,
                       label="theory E cos (Gaussian, q = 1)" if i == 0 else None)
        axes[0].plot(i, df[df.branch == b].cosine.mean(), "D", color="white", mec="k", ms=7,
                     label="sampled mean" if i == 0 else None)
    axes[0].set_ylabel(r"cosine$(\hat g, g)$ of one estimate"); axes[0].set_xlabel("branch")
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_title(f"cosine similarity ({samples} estimates x 12 layers per branch)", fontsize=9)
    sns.boxplot(data=units, x="branch", y="rel_variance", hue="branch", order=order, palette=PALETTE, ax=axes[1],
                showfliers=False, legend=False, boxprops={"alpha": 0.4})
    sns.stripplot(data=units, x="branch", y="rel_variance", hue="branch", order=order, palette=PALETTE, ax=axes[1],
                  size=6, legend=False, jitter=0.15)
    for i, b in enumerate(order):
        axes[1].hlines(units[units.branch == b].theory_rel.iloc[0], i - 0.4, i + 0.4, color="k", ls="--",
                       label="theory d + 1" if i == 0 else None)
    axes[1].set_yscale("log"); axes[1].set_xlabel("branch")
    axes[1].set_ylabel(r"relative variance $\overline{\|\hat g - g\|^2} / \|g\|^2$ per unit")
    axes[1].legend(fontsize=7, loc="upper right")
    axes[1].set_title("relative variance per (branch, layer) unit", fontsize=9)
    return fig


def per_layer(rows: list, names: dict):
    """Section (b) of notebook 04, layer by layer: each unit's true gradient norm, relative variance and mean
    cosine, with the theory dashed."""
    import pandas as pd

    from .analysis.variance import unit_summary
    units = pd.DataFrame(unit_summary(rows)).assign(branch=lambda d: d.branch.map(names))
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for b in ("vision", "language"):
        u = units[units.branch == b].sort_values("layer")
        axes[0].plot(u.layer, u.grad_norm, "o-", color=PALETTE[b], label=b)
        axes[1].plot(u.layer, u.rel_variance, "o-", color=PALETTE[b], label=f"{b} (sampled)")
        axes[1].plot(u.layer, u.theory_rel, "--", color=PALETTE[b], label=f"{b} theory d + 1 (d = {u.dim.iloc[0]})")
        axes[2].plot(u.layer, u.mean_cosine, "o-", color=PALETTE[b], label=f"{b} (sampled)")
        axes[2].plot(u.layer, u.theory_cosine, "--", color=PALETTE[b], label=f"{b} theory")
    axes[0].set_yscale("log"); axes[1].set_yscale("log")
    axes[0].set_ylabel(r"autograd $\|g\|$ of the unit")
    axes[1].set_ylabel(r"relative variance $\overline{\|\hat g - g\|^2} / \|g\|^2$")
    axes[2].set_ylabel(r"mean cosine$(\hat g, g)$")
    for ax in axes:
        ax.set_xlabel("layer (0-based)"); ax.set_xticks(sorted(units.layer.unique()))
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    return fig


# --------------------------------------------------------------------------- notebook 06

STEP_PARTS = [("gradient_bytes", "gradients"), ("optimizer_state_bytes", "optimizer state"),
              ("saved_vision_bytes", "saved activations, vision"), ("saved_text_bytes", "saved activations, text")]
ADAPTER_NAMES = {"moe": "MoE", "lora": "LoRA"}


def step_bytes(table, adapters: list):
    """Notebook 06: the bytes of one step per configuration (rows of :func:`zolib.analysis.footprint.memory_table`
    for one model and batch), stacked by part, one panel per adapter, the step peak as a black mark."""
    import pandas as pd
    mib = 2 ** 20
    fig, axes = plt.subplots(1, len(adapters), figsize=(5.2 * len(adapters), 3.8), sharey=True, squeeze=False)
    for ax, adapter in zip(axes[0], adapters):
        sub = table[table.adapter == adapter].set_index("config")
        bottom = pd.Series(0.0, index=sub.index)
        for column, name in STEP_PARTS:
            ax.bar(sub.index, sub[column] / mib, bottom=bottom, label=name)
            bottom += sub[column] / mib
        ax.plot(sub.index, sub.peak_bytes / mib, "k_", markersize=22, mew=2, label="step peak (PeakMemory)")
        ax.set_title(f"{ADAPTER_NAMES.get(adapter, adapter)} adapters")
        ax.set_xlabel("configuration")
        ax.tick_params(axis="x", rotation=35)
    axes[0][0].set_ylabel("MiB in one training step")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def ratio_bars(bars, adapters: list, order: tuple = ("Dual", "Vision", "Language")):
    """Notebook 06: peak memory over FO's per configuration, one bar per source of
    :func:`zolib.analysis.footprint.ratio_rows` (the paper's reported ratio hatched), one panel per adapter."""
    sources = list(dict.fromkeys(bars.source))
    fig, axes = plt.subplots(1, len(adapters), figsize=(5.2 * len(adapters), 3.6), sharey=True, squeeze=False)
    width = 0.8 / len(sources)
    for ax, adapter in zip(axes[0], adapters):
        for i, source in enumerate(sources):
            sub = bars[(bars.adapter == adapter) & (bars.source == source)].set_index("config").reindex(list(order))
            ax.bar([k + i * width for k in range(len(order))], sub.ratio, width, label=source,
                   hatch="//" if source.startswith("reported") else None)
        ax.set_xticks([k + width * (len(sources) - 1) / 2 for k in range(len(order))], list(order))
        ax.axhline(1, color="black", lw=0.8)
        ax.set_title(f"{ADAPTER_NAMES.get(adapter, adapter)} adapters")
        ax.set_xlabel("configuration")
    axes[0][0].set_ylabel("peak memory / FO's")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


# --------------------------------------------------------------------------- notebook 00

def sample_grid(bench, n: int, cols: int = 10, seed: int = 0):
    """``n`` test images of ``bench`` (drawn with ``seed``), un-normalised, each titled with its class name."""
    import numpy as np
    import torch

    from .data.transforms import CLIP_MEAN, CLIP_STD
    idx = np.random.RandomState(seed).choice(len(bench.test), size=min(n, len(bench.test)), replace=False)
    rows = int(np.ceil(len(idx) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, 1.35 * rows), squeeze=False)
    mean, std = torch.tensor(CLIP_MEAN).view(3, 1, 1), torch.tensor(CLIP_STD).view(3, 1, 1)
    for ax, i in zip(axes.flat, idx):
        image, label = bench.test[int(i)]
        ax.imshow((image * std + mean).clamp(0, 1).permute(1, 2, 0).numpy())
        ax.set_title(bench.class_names[int(label)], fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def units_heatmap(counts: dict, layers: int = 12):
    """The trainable parameters of each (branch, layer) unit (:func:`zolib.models.count_parameters`'s ``per_unit``)."""
    import pandas as pd
    import seaborn as sns
    grid = pd.DataFrame({b: [counts["per_unit"][f"{b}/{l}"] for l in range(layers)] for b in ("vision", "text")}).T
    fig, ax = plt.subplots(figsize=(9, 1.9))
    sns.heatmap(grid, annot=True, fmt=",", cbar_kws={"label": "trainable parameters"}, ax=ax, annot_kws={"fontsize": 6})
    ax.set_xlabel("layer (0-based)"); ax.set_ylabel("branch")
    return fig


# --------------------------------------------------------------------------- the claim map

VERDICT_COLOURS = {"agrees": "#4c9a5b", "disagrees": "#c0504d", "inconclusive": "#d9d9d9",
                   "not testable here": "#ffffff", "one seed: no interval": "#f2e6c9"}
STATE_MARKS = {"acts and holds": "holds", "inert": "inert", "collapses": "COLLAPSES"}


def state_summary(states: dict) -> str:
    """One word for the states of a verdict's ZO runs: the shared one, or ``mixed: ...``."""
    found = list(dict.fromkeys(STATE_MARKS.get(s, s) for s in states.values()))
    return "" if not found else found[0] if len(found) == 1 else "mixed: " + "/".join(found)


def claim_map(records: list):
    """Claims (rows) against points of the map (columns): each cell coloured by its verdict, with the mean
    difference and the state of the ZO runs it compares (*holds*, *inert*, *COLLAPSES*, or mixed)."""
    import textwrap

    from matplotlib.patches import Patch
    claims = list(dict.fromkeys(r["claim"] for r in records))
    records = [{**r, "regime": r["regime"] or "measured (no ZO step)"} for r in records]
    points = list(dict.fromkeys(r["regime"] for r in records))
    cell = {(r["claim"], r["regime"]): r for r in records}
    fig, ax = plt.subplots(figsize=(1.9 * len(points) + 4.5, 0.62 * len(claims) + 1.6))
    for i, claim in enumerate(claims):
        for j, point in enumerate(points):
            r = cell.get((claim, point))
            if r is None:
                ax.add_patch(plt.Rectangle((j, i), 1, 1, color="#f7f7f7", hatch="xx", ec="#bbbbbb"))
                continue
            ax.add_patch(plt.Rectangle((j, i), 1, 1, color=VERDICT_COLOURS[r["verdict"]], ec="white", lw=2))
            diff = r.get("mean_diff")
            text = ("" if diff is None or diff != diff else f"{diff:+.2f}\n") + state_summary(r.get("states") or {})
            ax.text(j + 0.5, i + 0.5, text, ha="center", va="center", fontsize=6.5)
    ax.set_xlim(0, len(points)); ax.set_ylim(len(claims), 0)
    ax.set_xticks([j + 0.5 for j in range(len(points))], [textwrap.fill(p, 14) for p in points], fontsize=7)
    ax.set_yticks([i + 0.5 for i in range(len(claims))], [textwrap.fill(c, 70) for c in claims], fontsize=7)
    ax.tick_params(length=0)
    ax.legend(handles=[Patch(color=c, label=v, ec="#999999") for v, c in VERDICT_COLOURS.items()],
              fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), title="verdict", title_fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))  # room for the caller's suptitle
    return fig


# --------------------------------------------------------------------------- notebook 07

def annotate_points(ax, x, y, labels, fontsize: int = 7) -> None:
    """Label scattered points without overlaps: points that coincide (within 1% in x and 0.05 in y) share one
    label ``"a = b"``; the others are nudged upwards until no two labels overlap."""
    groups: list[list[int]] = []
    for i in range(len(labels)):
        home = next((g for g in groups if abs(x[g[0]] - x[i]) <= 0.01 * abs(x[g[0]]) and abs(y[g[0]] - y[i]) <= 0.05),
                    None)
        (home.append(i) if home is not None else groups.append([i]))
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    placed = []
    for g in sorted(groups, key=lambda g: (y[g[0]], x[g[0]])):
        text = " = ".join(labels[i] for i in g)
        dy = 4
        while True:
            t = ax.annotate(text, (x[g[0]], y[g[0]]), textcoords="offset points", xytext=(4, dy), fontsize=fontsize)
            box = t.get_window_extent(renderer)
            if not any(box.overlaps(p) for p in placed) or dy > 200:
                placed.append(box)
                break
            t.remove()
            dy += 6



def accuracy_memory(table, memory_batch: int, seeds: int):
    """Notebook 07: Last (mean over seeds, 95% interval) against one step's peak bytes over FO's, each method
    labelled (coinciding methods share a label), with the Pareto front. Returns ``(figure, front labels)``."""

    from .analysis.stats import pareto
    t = table.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(9, 5))
    x = t["peak / FO"].to_numpy(float)
    err = _yerr(t["last"], t.last_lo, t.last_hi)
    ax.errorbar(x, t["last"], yerr=err, fmt="o", capsize=3, color="tab:blue")
    ax.set_xscale("log")
    annotate_points(ax, list(x), list(t["last"]), list(t.label))
    front = pareto(list(x), list(t["last"]))
    ax.plot(x[front], t["last"].to_numpy()[front], "-", color="tab:red", lw=1, label="Pareto front")
    ax.set_xlabel(f"peak bytes of one step / FO's (log; batch {memory_batch}, random weights, optimizer state included)")
    ax.set_ylabel(f"Last (%), mean over {seeds} seeds, 95% CI")
    ax.legend(fontsize=8)
    return fig, [t.label[i] for i in front]
