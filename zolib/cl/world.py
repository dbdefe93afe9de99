"""Is the synthetic world a fair stand-in for CLIP on CIFAR-100? The three figures that say so.

The offline world (:mod:`zolib.data.synthetic` + the tiny CLIP of :mod:`zolib.models.tiny`)
must behave like the real setting in the ways the paper's argument needs:

- zero-shot accuracy over all classes clearly above chance (at least 3 times),
- yet far from solved: at least 15 points below what FO adapter training on all classes at
  once (joint training, one task of 100 classes, the same budget per image) reaches,
- and sequential FO training, task by task, visibly forgets (forgetting > 0).

:func:`world_check` measures the three with the harness itself; notebooks/00_setup.ipynb shows
them and tests/test_harness.py asserts the inequalities.
"""
from __future__ import annotations

from typing import Any

from .config import profile_config


def world_check(profile: str = "smoke", seed: int = 0, **overrides: Any) -> dict[str, float]:
    """Zero-shot, chance, joint-FO and sequential-FO figures of the synthetic world (cached runs)."""
    from ..nb import cached_experiment
    cfg = profile_config(profile, benchmark="synthetic", method="fo", seed=seed, **overrides)
    sequential = cached_experiment(cfg, progress=False)
    joint = cached_experiment(cfg.replace(synthetic_tasks=1), progress=False)
    return {"chance": 100 / 100, "zero_shot": sequential["zero_shot"], "joint_fo": joint["last"],
            "sequential_fo_last": sequential["last"], "sequential_fo_avg": sequential["avg"],
            "sequential_fo_forgetting": sequential["forgetting"]}
