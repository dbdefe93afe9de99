"""Notebook 06 (memory): no runs; its claims are checked on the bytes it measures."""
from __future__ import annotations

from typing import Any

from .. import claims
from ..analysis.runs import AllRuns
from ..cl.profiles import Profile
from . import Notebook, Params, register


@register
class Memory(Notebook):
    stem = "06_memory"

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """``measured["ratios"]``: :func:`zolib.analysis.footprint.ratio_table` of the measured steps; the
        paper's two memory claims per (model, batch, adapter), on the step peak."""
        verdicts = []
        for (name, batch, adapter), part in measured["ratios"].groupby(["model", "batch", "adapter"], sort=False):
            r = part.set_index("method")["ours: step peak / FO"]
            verdicts += claims.memory(r, adapter, context=f"{name}, batch {batch}, step peak")
        return verdicts
