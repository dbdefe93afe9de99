"""Notebook 04 (gradient variance): no runs; its claim is checked on the paired 5-run design it measures."""
from __future__ import annotations

from typing import Any

from .. import claims
from ..analysis.runs import AllRuns
from ..cl.profiles import Profile
from . import Notebook, Params, register

RUNS = 5  # independent runs per branch on the larger profiles: the paper's significance design


@register
class GradientVariance(Notebook):
    stem = "04_gradient_variance"
    grids = {
        "smoke": {"dims": [10, 30, 100, 300], "quad_samples": 200, "samples": 4, "warm_steps": 5, "runs": 3},
        "cpu": {"dims": [10, 30, 100, 300, 1000, 3000], "quad_samples": 1000, "samples": 24, "warm_steps": 20,
                "runs": RUNS},
        "workshop": {"dims": [10, 30, 100, 300, 1000], "quad_samples": 2000, "samples": 64, "warm_steps": 30,
                     "runs": RUNS},
        "paper": {"dims": [10, 30, 100, 300, 1000, 3000], "quad_samples": 4000, "samples": 128, "warm_steps": 30,
                  "runs": RUNS},
    }

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """``measured["per_run"]``: :func:`zolib.analysis.variance.per_run` of the notebook's runs."""
        return claims.gradient_variance(measured["per_run"])
