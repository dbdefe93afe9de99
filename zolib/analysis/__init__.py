"""Measurements around the optimizers: memory accounting (and, elsewhere, estimator variance)."""
from .footprint import (MEMORY_CONFIGS, clip_batch, extrapolate_batch, fo_layer_sweep, inference_peak,
                        measure_method, memory_table, predict_mask_memory)
from .memory import (MemoryReport, PeakMemory, SavedTensors, branch_gates, clip_loss, gradient_bytes,
                     measure_step, optimizer_state_bytes, parameter_bytes, tensor_bytes)
from .variance import (QuadraticProblem, compare_branches, estimator_mse, estimator_stats, expected_cosine,
                       fo_warmup, quadratic_check, sample_estimates, task_batches, theory_curve, unit_summary,
                       unit_variance)

__all__ = ["MEMORY_CONFIGS", "clip_batch", "extrapolate_batch", "fo_layer_sweep", "inference_peak",
           "measure_method", "memory_table", "predict_mask_memory", "MemoryReport", "PeakMemory", "SavedTensors",
           "branch_gates", "clip_loss", "gradient_bytes", "measure_step", "optimizer_state_bytes", "parameter_bytes",
           "tensor_bytes",
           "QuadraticProblem", "compare_branches", "estimator_mse", "estimator_stats", "expected_cosine",
           "fo_warmup", "quadratic_check", "sample_estimates", "task_batches", "theory_curve", "unit_summary",
           "unit_variance"]
