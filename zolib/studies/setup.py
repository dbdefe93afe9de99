"""Notebook 00 (setup): the world check's runs (:data:`zolib.cl.world.RUNS`), on the first seed."""
from __future__ import annotations

from ..cl import world
from ..cl.profiles import Profile
from . import Notebook, Params, Study, register


@register
class Setup(Notebook):
    stem = "00_setup"

    def study(self, params: Params) -> Study:
        from ..cl.profiles import get_profile
        synthetic = get_profile(params["profile"]).benchmarks == ("synthetic",)
        return {label: dict(over) for label, over in world.RUNS.items()} if synthetic else {}

    def seeds(self, profile: Profile, params: Params) -> tuple[int, ...]:
        return profile.seeds[:1]
