"""Experiment configuration and the profiles that scale it from a CI smoke run to the
paper protocol.

A profile fixes the training budget (batch size, steps, data size); the benchmark fixes
the model (synthetic -> the tiny CLIP pretrained on synthetic captions; the real
benchmarks -> OpenAI ViT-B/16). Defaults where the paper is silent are documented on the
fields below and in ``notebooks/00_setup.ipynb``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..errors import ZolibError, check_choice

BENCHMARKS = ("synthetic", "cifar100", "tinyimagenet", "imagenet-r")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers (and keys its cache)."""

    benchmark: str = "synthetic"
    protocol: str | None = None        # e.g. CIFAR-100 "10-steps"; None = the benchmark's default
    method: str = "fo"                 # see `zolib experiment --help` / zolib.optim.presets.METHODS
    adapter: str = "moe"               # moe | lora
    moe_bottleneck: int | None = None  # None: 64 (paper) for ViT-B/16, 16 for the tiny CLIP
    moe_experts: int = 2
    lora_rank: int = 8
    lora_alpha: float = 16.0
    # training (MoE-Adapters4CL: AdamW lr 1e-3, wd 0, 30-step warm-up then cosine, 1 epoch)
    batch_size: int = 128
    epochs: int = 1
    max_steps_per_task: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 30
    # zeroth-order options (None = the method's default; see zolib.optim)
    zo_rule: str | None = None
    sign: str | None = None
    eps: float | None = None
    eps_vision: float | None = None
    eps_text: float | None = None
    q: int | None = None
    zo_lr: float | None = None
    mix: float = 1.0                   # the paper's lambda: ZO update scale relative to FO
    # data size
    train_fraction: float = 1.0        # share of each task's training set (workshop profile)
    synthetic_train_per_class: int = 60
    synthetic_test_per_class: int = 20
    synthetic_tasks: int = 10
    synthetic_hue_shift: float = 50.0  # domain shift of the benchmark vs the pretraining (zolib.data.synthetic)
    eval_batch_size: int = 256
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"

    @property
    def model_name(self) -> str:
        return "zolib-tiny" if self.benchmark == "synthetic" else "ViT-B-16"

    @property
    def pretrained(self) -> str:
        return "synthetic" if self.benchmark == "synthetic" else "openai"

    @property
    def bottleneck(self) -> int:
        if self.moe_bottleneck is not None:
            return self.moe_bottleneck
        return 16 if self.benchmark == "synthetic" else 64

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """A short hash of every field except ``device``: the experiment cache key."""
        d = {k: v for k, v in self.as_dict().items() if k not in ("device", "num_workers", "eval_batch_size")}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "ExperimentConfig":
        return make_config(self.as_dict() | changes)


# Profiles: training budgets. smoke = CI on 2 CPU cores; cpu = a laptop workshop run;
# workshop = ViT-B/16 on CIFAR-100 within an hour on one GPU; paper = the full protocol.
PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(batch_size=32, synthetic_train_per_class=24, synthetic_test_per_class=10,
                  warmup_steps=2, eval_batch_size=500),
    "cpu": dict(batch_size=32, synthetic_train_per_class=80, synthetic_test_per_class=20,
                warmup_steps=5, eval_batch_size=500),
    "workshop": dict(benchmark="cifar100", batch_size=128, train_fraction=0.2, num_workers=4),
    "paper": dict(batch_size=128, num_workers=8),
}


def field_names() -> list[str]:
    return [f.name for f in fields(ExperimentConfig)]


def make_config(values: dict[str, Any]) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a dict, rejecting unknown keys and bad choices."""
    unknown = sorted(set(values) - set(field_names()))
    if unknown:
        raise ZolibError(f"unknown experiment parameter(s) {', '.join(unknown)}; valid: {', '.join(field_names())}")
    cfg = ExperimentConfig(**values)
    check_choice("benchmark", cfg.benchmark, BENCHMARKS)
    check_choice("adapter", cfg.adapter, ("moe", "lora"))
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise ZolibError("batch_size and epochs must be positive integers")
    if not 0 < cfg.train_fraction <= 1:
        raise ZolibError(f"train_fraction must be in (0, 1], got {cfg.train_fraction}")
    return cfg


def profile_config(profile: str, **overrides: Any) -> ExperimentConfig:
    """The config of ``profile`` with ``overrides`` (None values are ignored)."""
    check_choice("profile", profile, PROFILES)
    values = dict(PROFILES[profile])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_config(values)


