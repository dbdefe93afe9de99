"""Measurements around the optimizers: memory accounting (and, elsewhere, estimator variance)."""
from .memory import (MemoryReport, PeakMemory, SavedTensors, branch_gates, clip_loss, gradient_bytes,
                     measure_step, optimizer_state_bytes, parameter_bytes, tensor_bytes)

__all__ = ["MemoryReport", "PeakMemory", "SavedTensors", "branch_gates", "clip_loss", "gradient_bytes",
           "measure_step", "optimizer_state_bytes", "parameter_bytes", "tensor_bytes"]
