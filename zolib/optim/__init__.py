"""Zeroth-order and hybrid FO/ZO optimization (paper sections on ZO, MoZO).

- :mod:`.directions`: seeded direction regeneration (MeZO's seed trick).
- :mod:`.zo`: :class:`ZOConfig`, the estimator (paper Eq. 2) and point-of-use perturbation.
- :mod:`.rules`: aggressive (ZO*) / conservative rules, sign variants, momentum, Adam.
- :mod:`.hybrid`: :class:`HybridOptimizer`, AdamW on FO units and ZO on ZO units.
- :mod:`.presets`: the method registry (fo, dual, vision, language, layer-wise, mozo, custom).
"""
from .directions import DISTRIBUTIONS, direction_seed, sample_direction, step_seed
from .hybrid import HybridOptimizer, StepResult, forwards_per_step
from .presets import METHODS, MOZO, build_optimizer, check_method, parse_mask, resolve_method
from .rules import UpdateRule, candidate_multipliers
from .zo import ESTIMATORS, PERTURBATIONS, RULES, SIGNS, ZOConfig, zo_gradient

__all__ = ["DISTRIBUTIONS", "direction_seed", "sample_direction", "step_seed", "HybridOptimizer",
           "StepResult", "forwards_per_step", "METHODS", "MOZO", "build_optimizer", "check_method",
           "parse_mask", "resolve_method", "UpdateRule", "candidate_multipliers", "ESTIMATORS",
           "PERTURBATIONS", "RULES", "SIGNS", "ZOConfig", "zo_gradient"]
