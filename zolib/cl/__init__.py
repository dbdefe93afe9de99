"""Continual-learning harness: configs and profiles, training, evaluation, metrics, the run store and sweeps."""
from .config import BENCHMARKS, ExperimentConfig, flat, from_dict, resolve
from .metrics import average_accuracy, backward_transfer, forgetting, last_accuracy, summarise
from .profiles import PROFILES, Calibration, Profile, get_profile, profile_config

__all__ = ["BENCHMARKS", "ExperimentConfig", "flat", "from_dict", "resolve", "average_accuracy", "backward_transfer",
           "forgetting", "last_accuracy", "summarise", "PROFILES", "Calibration", "Profile", "get_profile",
           "profile_config"]
