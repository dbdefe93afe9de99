"""Profiles: one object per scale of the companion, from a CI smoke run to the paper protocol.

A :class:`Profile` holds everything that scales and is not specific to one notebook: the training
budget (experiment fields), the benchmarks and seeds the notebooks cover, per-benchmark settings and
the ZO step-size calibration. It is the one source for the CLI, the sweep planner, the notebook
runner, notebook 00's table and the README (``zolib profiles`` prints them). Each notebook's
parameters per profile (its grids) live with the notebook, in :mod:`zolib.studies`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import check_choice
from .calibration import Calibration
from .config import ExperimentConfig, resolve


@dataclass(frozen=True)
class Profile:
    """A scale of the companion (see the module docstring)."""

    name: str
    summary: str                       # benchmark and model, one line
    budget: str                        # expected wall time, and on what
    config: Mapping[str, Any]          # experiment fields: the training budget
    benchmarks: tuple[str, ...]
    seeds: tuple[int, ...]             # every run's, and the coarse claim map's (zolib.studies)
    per_benchmark: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    decisive_seeds: tuple[int, ...] = ()  # the claim map's calibrated points and their references (empty: seeds)
    calibration: Calibration = Calibration()
    gpu: bool = False                  # expects a CUDA GPU: without one the preflight says so (zolib.cl.preflight)

    def experiment(self, benchmark: str | None = None, **overrides: Any) -> ExperimentConfig:
        """The resolved config of ``benchmark`` (default: the profile's first) with ``overrides``."""
        benchmark = benchmark or overrides.pop("benchmark", None) or self.benchmarks[0]
        return resolve({**self.config, **self.per_benchmark.get(benchmark, {}), "benchmark": benchmark,
                        **overrides})

    @property
    def judged_seeds(self) -> tuple[int, ...]:
        """The seeds of the points where the claims are judged (the calibrated ones) and of the references."""
        return self.decisive_seeds or self.seeds


SMOKE = Profile(
    "smoke", "synthetic world, tiny CLIP, 2 seeds, reduced notebook grids",
    "all notebooks within 5 minutes on 2 CPU cores (CI)",
    # Every code path, not a result: 2 steps of 16 images a task.
    config=dict(benchmark="synthetic", protocol="5-steps", batch_size=16, max_steps_per_task=2,
                synthetic_train_per_class=6, synthetic_test_per_class=3, warmup_steps=1, eval_batch_size=500),
    benchmarks=("synthetic",), seeds=(0, 1),
    calibration=Calibration(grid=(1e-3, 1e-1), tasks=2, extend=0))

CPU = Profile(
    "cpu", "synthetic world, tiny CLIP, 2 + 5 seeds, the claim map at 1 epoch (and 2 for notebook 01)",
    "the workshop run without a GPU: about an hour on 2 CPU cores",
    # 24 training images per class (8 steps a task at batch 32) and 10 test images keep the map within 90
    # minutes on 2 cores; the map's fixed steps run on seeds 0-1, its calibrated points and references on 0-4.
    config=dict(benchmark="synthetic", batch_size=32, synthetic_train_per_class=24, synthetic_test_per_class=10,
                warmup_steps=3, eval_batch_size=500),
    benchmarks=("synthetic",), seeds=(0, 1), decisive_seeds=(0, 1, 2, 3, 4),
    calibration=Calibration(grid=(1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1e-1)))

WORKSHOP = Profile(
    "workshop", "CIFAR-100 (10 steps), OpenAI ViT-B/16, 20% of each task's images, 3 + 5 seeds",
    "about an hour per seed on one GPU",
    # 20% of a task is 8 steps of 128 images: warm up over 75% of them, the share of MoE-Adapters'
    # literal 30-of-40 steps on CIFAR-100, so the learning rate reaches its peak as in the paper.
    config=dict(benchmark="cifar100", batch_size=128, train_fraction=0.2, warmup_fraction=0.75, num_workers=4),
    benchmarks=("cifar100",), seeds=(0, 1, 2), decisive_seeds=(0, 1, 2, 3, 4), gpu=True)

PAPER = Profile(
    "paper", "CIFAR-100, TinyImageNet, ImageNet-R, OpenAI ViT-B/16, full protocols, 5 seeds",
    "a GPU cluster (zolib sweep --executor slurm)",
    config=dict(batch_size=128, num_workers=8),
    benchmarks=("cifar100", "tinyimagenet", "imagenet-r"), seeds=(0, 1, 2, 3, 4),
    per_benchmark={"tinyimagenet": {"batch_size": 64}},  # MoE-Adapters4CL's TinyImageNet configs use 64
    gpu=True)

PROFILES: dict[str, Profile] = {p.name: p for p in (SMOKE, CPU, WORKSHOP, PAPER)}


def get_profile(name: str | Profile) -> Profile:
    """The profile called ``name`` (a one-line error lists the valid ones)."""
    if isinstance(name, Profile):
        return name
    check_choice("profile", name, PROFILES)
    return PROFILES[name]


def profile_config(profile: str | Profile, benchmark: str | None = None, **overrides: Any) -> ExperimentConfig:
    """Shorthand for ``get_profile(profile).experiment(benchmark, **overrides)``."""
    return get_profile(profile).experiment(benchmark, **overrides)


def profile_table():
    """One row per profile: what it runs, benchmarks, seeds, budget, calibration grid and training fields
    (notebook 00; ``zolib profiles`` prints the same)."""
    import pandas as pd
    return pd.DataFrame([{"profile": p.name, "what": p.summary, "benchmarks": ", ".join(p.benchmarks),
                          "seeds": list(p.seeds), "budget": p.budget, "calibration grid": list(p.calibration.grid),
                          **p.config} for p in PROFILES.values()]).set_index("profile").fillna("")
