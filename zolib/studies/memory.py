"""Notebook 06 (memory): no runs; its claims are checked on the bytes it measures."""
from __future__ import annotations

from typing import Any

from .. import claims
from ..analysis.runs import AllRuns
from ..cl.profiles import Profile
from . import Notebook, Params, register

ADAPTERS = ["moe", "lora"]  # the adapter kinds measured on the larger profiles
GPU = {"models": ["ViT-B-16"], "batch_sizes": {"ViT-B-16": [128, 64]}, "adapters": ADAPTERS, "device": "cuda",
       "mask_model": "ViT-B-16", "mask_batch": 32}
"""ViT-B/16 at the paper's batches on a GPU."""


@register
class Memory(Notebook):
    stem = "06_memory"
    grids = {
        "smoke": {"models": ["zolib-tiny"], "batch_sizes": {"zolib-tiny": [4]}, "adapters": ["moe"]},
        "cpu": {"models": ["zolib-tiny", "ViT-B-16"], "batch_sizes": {"zolib-tiny": [4], "ViT-B-16": [2]},
                "adapters": ADAPTERS},
        "workshop": GPU,
        "paper": GPU,
    }

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """``measured["ratios"]``: :func:`zolib.analysis.footprint.ratio_table` of the measured steps; the
        paper's two memory claims per (model, batch, adapter), on the step peak."""
        verdicts = []
        for (name, batch, adapter), part in measured["ratios"].groupby(["model", "batch", "adapter"], sort=False):
            r = part.set_index("method")["ours: step peak / FO"]
            verdicts += claims.memory(r, adapter, context=f"{name}, batch {batch}, step peak")
        return verdicts
