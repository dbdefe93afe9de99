"""Measurements around the optimizers: memory, estimator variance, what ZO units did, statistics over seeds."""
from .footprint import (MEMORY_METHODS, extrapolate_batch, fo_layer_sweep, inference_peak, measure, memory_table,
                        predict_mask_memory, run_footprint)
from .memory import (MemoryReport, PeakMemory, SavedTensors, branch_gates, gradient_bytes,
                     measure_step, optimizer_state_bytes, parameter_bytes, tensor_bytes)
from .degeneracy import TwoModalityQuadratic, eps_sensitivity
from .dynamics import OSCILLATES, ZO_ACTED, flips, loss_jumps, moved, oscillation, pick_shares
from .stats import Paired, bootstrap_ci, mean_ci, paired
from .variance import (QuadraticProblem, compare_branches, estimator_mse, estimator_stats, expected_cosine,
                       fo_warmup, quadratic_check, sample_estimates, task_batches, theory_curve, unit_summary,
                       unit_variance)

__all__ = ["MEMORY_METHODS", "extrapolate_batch", "fo_layer_sweep", "inference_peak", "measure", "memory_table",
           "predict_mask_memory", "run_footprint", "MemoryReport", "PeakMemory", "SavedTensors",
           "branch_gates", "gradient_bytes", "measure_step", "optimizer_state_bytes", "parameter_bytes",
           "tensor_bytes",
           "QuadraticProblem", "compare_branches", "estimator_mse", "estimator_stats", "expected_cosine",
           "fo_warmup", "quadratic_check", "sample_estimates", "task_batches", "theory_curve", "unit_summary",
           "unit_variance", "TwoModalityQuadratic", "eps_sensitivity", "OSCILLATES", "ZO_ACTED", "flips", "loss_jumps",
           "moved", "oscillation", "pick_shares", "Paired", "bootstrap_ci", "mean_ci", "paired"]
