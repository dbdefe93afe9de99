"""Dry run: the benchmark's real architecture with random weights on random inputs of the
benchmark's real shapes, a few steps per task (:mod:`zolib.cl.randomstep`). It checks a cluster
set-up, memory and time before anything is downloaded (``zolib experiment ... --dry-run``)."""
from __future__ import annotations

import resource
import time
from typing import Any

import torch

from ..runtime import provenance, seed_everything
from .config import ExperimentConfig
from .randomstep import random_step


def dry_run(cfg: ExperimentConfig, steps: int = 2, progress: bool = True) -> dict[str, Any]:
    """Train ``steps`` steps per task on random inputs; report seconds per step and peak memory."""
    seed_everything(cfg.seed)
    first = random_step(cfg, seed=cfg.seed)
    device = first.images.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    times = []
    for t in range(len(first.shape.tasks)):
        step = first if t == 0 else first.for_task(t, gen)
        opt = step.optimizer(total_steps=steps, seed=t)
        for _ in range(steps):
            start = time.perf_counter()
            opt.step(step.closure)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        if progress:
            print(f"dry run: task {t + 1}/{len(first.shape.tasks)} ({len(step.classes)} classes), {steps} steps, "
                  f"last step {times[-1]:.3f} s", flush=True)
    return {"dry_run": True, "model": cfg.model_name, "num_tasks": len(first.shape.tasks),
            "batch_size": cfg.batch_size, "image_size": first.shape.image_size, "steps_per_task": steps,
            "median_step_seconds": float(torch.tensor(times).median()),
            "peak_cpu_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
            "config": cfg.as_dict(), **provenance()}
