"""Continual-learning harness: configs and profiles, training, evaluation, metrics, the run store and sweeps.

Modules: :mod:`.config` (the resolved config), :mod:`.profiles` (scales of the companion), :mod:`.factory`
(benchmark, model and optimizer of a config), :mod:`.trainer` (the class-incremental loop),
:mod:`.evaluation`, :mod:`.diagnostics` (what the ZO units did), :mod:`.calibration` (the calibrated ZO
step), :mod:`.fewshot` (SharpZO's own setting), :mod:`.randomstep` (one random-weight step: dry runs and
footprints), :mod:`.store` and :mod:`.sweep` (runs as jobs).
"""
from .config import ExperimentConfig, benchmarks, flat, from_dict, resolve
from .metrics import average_accuracy, backward_transfer, forgetting, last_accuracy, summarise

__all__ = ["ExperimentConfig", "benchmarks", "flat", "from_dict", "resolve", "average_accuracy", "backward_transfer",
           "forgetting", "last_accuracy", "summarise"]
