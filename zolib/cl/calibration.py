"""The calibrated regime: pick the ZO step size of a configuration before its runs, without test images.

:func:`calibrate` implements :class:`zolib.cl.profiles.Calibration`. Task 1's training images are
split once (seeded by ``cfg.seed``): ``val_fraction`` of them are held out. For each ``zo_lr`` of the
grid a fresh model trains on the rest of task 1, then is scored on the held-out images (accuracy
over task 1's classes, and mean loss). The best accuracy wins; ties go to the lower loss, then to
the smaller step; a diverged step never wins.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import NanLossError
from ..models import tokenizer
from ..runtime import provenance, seed_everything
from .config import ExperimentConfig
from .evaluation import held_out
from .factory import build_model, load_benchmark, resolve_device
from .trainer import task_indices, train_task


def calibrate(cfg: ExperimentConfig, grid: Sequence[float], val_fraction: float = 0.2,
              progress: bool = False) -> dict[str, Any]:
    """Pick the ZO step size of ``cfg`` on task 1 only (see the module docstring).
    Returns ``{"zo_lr": chosen, "table": [...], ...}``."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    bench = load_benchmark(cfg)
    tok = tokenizer(cfg.model_name)
    all_idx = task_indices(cfg, bench, 0, torch.Generator().manual_seed(cfg.seed * 1000))
    perm = torch.randperm(len(all_idx), generator=torch.Generator().manual_seed(cfg.seed * 7919 + 1)).numpy()
    n_val = max(1, round(val_fraction * len(all_idx)))
    val, train = np.sort(all_idx[perm[:n_val]]), np.sort(all_idx[perm[n_val:]])
    classes = list(bench.scenario.tasks[0])
    table = []
    for zo_lr in grid:
        trial = cfg.replace(zo_lr=zo_lr)
        seed_everything(cfg.seed)
        model = build_model(trial, device, bench=bench)
        row: dict[str, Any] = {"zo_lr": float(zo_lr)}
        try:
            train_task(trial, model, bench, 0, tok, device, progress, indices=train)
        except NanLossError as err:
            row.update(accuracy=None, loss=None, diverged=str(err))
            table.append(row)
            continue
        row.update(held_out(model, bench, classes, val, tok, device, cfg.eval_batch_size), diverged=None)
        table.append(row)
    ok = [r for r in table if r["diverged"] is None]
    if not ok:
        raise NanLossError(f"every ZO step size of the calibration grid {list(grid)} diverged on task 1; "
                           f"try a grid of smaller steps")
    best = max(ok, key=lambda r: (r["accuracy"], -r["loss"], -r["zo_lr"]))
    return {"zo_lr": best["zo_lr"], "grid": [float(g) for g in grid], "val_fraction": val_fraction,
            "val_images": int(n_val), "train_images": int(len(train)), "table": table,
            "config": cfg.as_dict(), **provenance()}
