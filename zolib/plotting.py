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
    stem = f"{name}_synthetic" if synthetic else name
    paths = [folder / f"{stem}.pdf", folder / f"{stem}.png"]
    fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None, "ModDate": None, "Producer": None,
                                                          "Creator": None})
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Software": None})
    return paths
