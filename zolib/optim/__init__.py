"""Zeroth-order and hybrid FO/ZO optimization (paper sections on ZO, MoZO).

- :mod:`.directions`: seeded direction regeneration (MeZO's seed trick).
- :mod:`.zo`: :class:`ZOConfig`, the estimator (paper Eq. 2) and perturbation by data swap (:class:`.zo.Substitution`).
- :mod:`.rules`: the registries of rules (aggressive (ZO*), conservative), signs and base optimizers (sgd,
  momentum, Adam).
- :mod:`.hybrid`: :class:`HybridOptimizer`, AdamW on FO units and ZO on ZO units.
- :mod:`.methods`: the method registry (fo, frozen, dual, vision, language, layer-wise, mozo, custom).
- the optimizer of a run is built from its resolved config: :func:`zolib.cl.factory.make_optimizer`
  (:func:`zolib.cl.factory.build_optimizer` from a method name, for tests and notebooks).
"""
from . import methods
from .directions import DISTRIBUTIONS, direction_seed, sample_direction, step_seed
from .hybrid import HybridOptimizer, StepResult, forwards_per_step
from .methods import MOZO, unit_modes
from .rules import BASES, RULES, SIGNS, Base, Rule, Sign, candidate_multipliers, register
from .zo import ESTIMATORS, PERTURBATIONS, ZO_FIELDS, ZOConfig, zo_gradient

__all__ = ["methods", "ZO_FIELDS", "unit_modes", "DISTRIBUTIONS",
           "direction_seed", "sample_direction", "step_seed", "HybridOptimizer", "StepResult", "forwards_per_step",
           "MOZO", "BASES", "RULES", "SIGNS", "Base", "Rule", "Sign", "candidate_multipliers", "register",
           "ESTIMATORS", "PERTURBATIONS", "ZOConfig", "zo_gradient"]
