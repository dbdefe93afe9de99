"""Notebook 04 (gradient variance): no runs; its claim is checked on the paired 5-run design it measures."""
from __future__ import annotations

from typing import Any

from .. import claims
from ..analysis.runs import AllRuns
from ..cl.profiles import Profile
from . import Notebook, Params, register


@register
class GradientVariance(Notebook):
    stem = "04_gradient_variance"

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """``measured["per_run"]``: :func:`zolib.analysis.variance.per_run` of the notebook's runs."""
        return claims.gradient_variance(measured["per_run"])
