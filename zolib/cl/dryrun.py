"""Dry run: the benchmark's real architecture with random weights on synthetic inputs of
the benchmark's real shapes, a few steps per task. It checks a cluster set-up, memory and
time before anything is downloaded (``zolib experiment ... --dry-run``)."""
from __future__ import annotations

import resource
import time
from typing import Any

import torch
import torch.nn.functional as F

from ..models import clip_logits, tokenizer
from ..runtime import provenance, seed_everything
from .config import ExperimentConfig
from ..models.head import attach_head, head_logits
from .trainer import build_model, make_optimizer, resolve_device


def benchmark_shape(cfg: ExperimentConfig) -> tuple[list[list[int]], list[str], int]:
    """Tasks (label ids), class names and image size of ``cfg``'s benchmark, without its data."""
    if cfg.benchmark == "synthetic":
        from ..data.scenarios import task_sizes
        from ..data.synthetic import class_names, class_order
        order, k = class_order(cfg.seed), task_sizes("synthetic", cfg.protocol, 100)[0]
        return [order[i:i + k] for i in range(0, 100, k)], class_names(), 32
    from ..data.manifests import load_manifest
    from ..data.scenarios import make_scenario
    m = load_manifest(cfg.benchmark)
    names = list(m.class_names) or [f"class {i}" for i in range(m.num_classes)]
    return [list(t) for t in make_scenario(cfg.benchmark, cfg.protocol).tasks], names, 224


def dry_run(cfg: ExperimentConfig, steps: int = 2, progress: bool = True) -> dict[str, Any]:
    """Train ``steps`` steps per task on random inputs; report seconds per step and peak memory."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    tasks, names, size = benchmark_shape(cfg)
    model = build_model(cfg.replace(classifier="text") if cfg.classifier == "head" else cfg, device,
                        pretrained="none").train()
    if cfg.classifier == "head":  # random rows: a dry run checks memory and time, not accuracy
        attach_head(model, len(names))
    tok = tokenizer(cfg.model_name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for t, classes in enumerate(tasks):
        text = tok([f"a bad photo of a {names[c]}." for c in classes]).to(device)
        logits = (lambda images, classes=classes: head_logits(model, images, classes)) if cfg.classifier == "head" \
            else (lambda images, text=text: clip_logits(model, images, text))
        opt = make_optimizer(cfg, model, steps, seed=t)
        for _ in range(steps):
            images = torch.randn(cfg.batch_size, 3, size, size, device=device)
            target = torch.randint(len(classes), (cfg.batch_size,), device=device)
            start = time.perf_counter()
            opt.step(lambda: F.cross_entropy(logits(images), target))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        if progress:
            print(f"dry run: task {t + 1}/{len(tasks)} ({len(classes)} classes), {steps} steps, "
                  f"last step {times[-1]:.3f} s", flush=True)
    report = {"dry_run": True, "model": cfg.model_name, "num_tasks": len(tasks), "batch_size": cfg.batch_size,
              "image_size": size, "steps_per_task": steps,
              "median_step_seconds": float(torch.tensor(times).median()),
              "peak_cpu_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "peak_cuda_mb": torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None,
              "config": cfg.as_dict(), **provenance()}
    return report
