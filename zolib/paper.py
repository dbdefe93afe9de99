"""The numbers the paper REPORTS (arXiv 2506.12409, MoZO), as data for side-by-side tables.

Nothing here is computed by zolib: every value is copied from a third-party note of the paper
(``paper.md`` section 1.1 of the project's reference notes). Every table carries
``source = "reported"`` so a notebook can never present these numbers as ours. The note warns
that the dataset labels of the rows may be shuffled (its "TinyImg Inc10" FO baseline equals
MoE-Adapters' own CIFAR-100 10-step result), so compare *differences to the FO baseline*
rather than absolute accuracies, and never a synthetic run with a real benchmark's row.

Notebooks 02 (branch-wise), 03 (layer-wise), 05 (MoZO) and 06 (memory) use it.
"""
from __future__ import annotations

from statistics import mean
from typing import Any

SOURCE = "reported"
CITATION = ("Branch, or Layer? Zeroth-Order Optimization for Continual Learning of Vision-Language Models "
            "(arXiv 2506.12409), numbers as given by a third-party note; row labels may be shuffled")

# Rows of the branch-wise table: benchmark label as reported, and our (benchmark, protocol) reading of it.
BENCHMARK_ROWS: dict[str, dict[str, str]] = {
    "CIFAR Inc10": {"benchmark": "cifar100", "protocol": "10-steps"},
    "TinyImg Inc10": {"benchmark": "tinyimagenet", "protocol": "inc10"},
    "TinyImg Inc20": {"benchmark": "tinyimagenet", "protocol": "inc20"},
    "ImgR Inc20": {"benchmark": "imagenet-r", "protocol": "inc20"},
}

# (benchmark label, metric) -> method -> accuracy (%). "best_layerwise" names its method in
# zolib's spelling (0-based layers: the paper's index base is unknown, see zolib.optim.methods).
BRANCH_WISE: dict[tuple[str, str], dict[str, Any]] = {
    ("CIFAR Inc10", "last"): {"fo": 80.47, "dual": 69.29, "vision": 76.05, "language": 80.94,
                              "best_layerwise": 82.41, "best_layerwise_method": "hop-even-vision"},
    ("CIFAR Inc10", "avg"): {"fo": 86.97, "dual": 77.36, "vision": 83.93, "language": 87.00,
                             "best_layerwise": 88.51, "best_layerwise_method": "hop-odd-language"},
    ("TinyImg Inc10", "last"): {"fo": 77.52, "dual": 67.64, "vision": 72.98, "language": 76.74,
                                "best_layerwise": 79.39, "best_layerwise_method": "hop-odd-vision"},
    ("TinyImg Inc10", "avg"): {"fo": 85.21, "dual": 75.88, "vision": 82.08, "language": 85.03,
                               "best_layerwise": 87.05, "best_layerwise_method": "hop-odd-language"},
    ("TinyImg Inc20", "last"): {"fo": 52.13, "dual": 42.40, "vision": 49.65, "language": 49.14,
                                "best_layerwise": 52.27, "best_layerwise_method": "hop-even-vision"},
    ("TinyImg Inc20", "avg"): {"fo": 60.55, "dual": 47.64, "vision": 57.90, "language": 58.69,
                               "best_layerwise": 60.98, "best_layerwise_method": "hop-even-vision"},
    ("ImgR Inc20", "last"): {"fo": 65.36, "dual": 58.56, "vision": 62.54, "language": 64.38,
                             "best_layerwise": 65.68, "best_layerwise_method": "hop-odd-vision"},
    ("ImgR Inc20", "avg"): {"fo": 71.53, "dual": 65.92, "vision": 69.84, "language": 70.38,
                            "best_layerwise": 72.16, "best_layerwise_method": "hop-even-language"},
}

# MoZO on top of Dual + Hop-even: (benchmark label, metric) -> (before, after MoZO).
MOZO: dict[tuple[str, str], tuple[float, float]] = {
    ("CIFAR Inc10", "last"): (79.12, 79.87), ("CIFAR Inc10", "avg"): (86.81, 87.25),
    ("TinyImg Inc20", "last"): (51.95, 52.46), ("TinyImg Inc20", "avg"): (60.53, 61.23),
    ("ImgR Inc20", "last"): (64.99, 65.80), ("ImgR Inc20", "avg"): (71.29, 71.82),
}

# The ablation as far as the note gives it (Last accuracy, %; the benchmark is not named).
ABLATION: dict[str, float] = {"dual aggressive (ZO*)": 66.67, "language + sign": 78.52}
ABLATION_ORDER = "aggressive ZO* worst; conservative better; + sign best"

# Peak training memory (GB) per configuration and adapter; batch and measuring method unknown.
MEMORY_GB: dict[str, dict[str, float]] = {
    "fo": {"moe": 19.96, "lora": 15.11},
    "dual": {"moe": 2.17, "lora": 1.73},
    "vision": {"moe": 6.93, "lora": 5.71},
    "language": {"moe": 12.39, "lora": 11.09},
}


def branch_rows() -> list[dict[str, Any]]:
    """The branch-wise table as flat rows (one per benchmark, metric and method), ``source`` set."""
    rows = []
    for (bench, metric), values in BRANCH_WISE.items():
        for method in ("fo", "dual", "vision", "language", "best_layerwise"):
            rows.append({"source": SOURCE, "benchmark": bench, "metric": metric, "method": method,
                         "accuracy": values[method],
                         "delta_vs_fo": round(values[method] - values["fo"], 2),
                         "detail": values["best_layerwise_method"] if method == "best_layerwise" else ""})
    return rows


def mean_delta_vs_fo(method: str, metric: str) -> float:
    """Mean over the reported benchmarks of ``accuracy(method) - accuracy(fo)`` for ``metric``.

    From these rows Dual gives about -9.4 (Last) and -9.4 (Avg); the note's prose says "about
    -8.5 Last / -9.5 Avg", so its average was taken over rows not all listed here.
    """
    if metric not in ("last", "avg"):
        raise ValueError(f"metric must be 'last' or 'avg', got {metric!r}")
    return mean(v[method] - v["fo"] for (_, m), v in BRANCH_WISE.items() if m == metric)


def memory_ratios(adapter: str = "moe") -> dict[str, float]:
    """Reported peak memory of each configuration divided by FO's, for ``adapter`` (moe | lora)."""
    fo = MEMORY_GB["fo"][adapter]
    return {k: v[adapter] / fo for k, v in MEMORY_GB.items()}


def frame(rows: list[dict[str, Any]]):
    """``rows`` as a pandas DataFrame (pandas comes with seaborn)."""
    import pandas as pd
    return pd.DataFrame(rows)
