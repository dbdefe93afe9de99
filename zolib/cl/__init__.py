"""Continual-learning harness: configs and profiles, training, evaluation, metrics."""
from .config import BENCHMARKS, PROFILES, ExperimentConfig, make_config, profile_config
from .metrics import average_accuracy, backward_transfer, forgetting, last_accuracy, summarise
from .trainer import evaluate, run_experiment, warmup_cosine

__all__ = ["BENCHMARKS", "PROFILES", "ExperimentConfig", "make_config", "profile_config", "average_accuracy",
           "backward_transfer", "forgetting", "last_accuracy", "summarise", "evaluate", "run_experiment",
           "warmup_cosine"]
