"""The calibrated regime: the ZO step of a configuration, picked before its runs by a rule that sees
forgetting, without a test image.

The protocol is A-GEM's (Chaudhry et al., ICLR 2019: cross-validate a hyperparameter on the first
tasks of the stream with the continual metric, then fix it for the whole stream), with two guards a
ZO step needs. :func:`calibrate`, for a configuration and its :class:`Calibration`:

1. The first ``tasks`` tasks (3) of the stream are split once: ``val_fraction`` (a fifth) of each task's
   training images is held out; the rest is what the calibration trains on.
2. The **control**: the same configuration with its ZO units held fixed (``zo_lr = 0``; for Dual, the
   frozen model) trains through those tasks; after each task its accuracy over every seen class on the
   held-out images is measured, and their mean is the control's **Avg**.
3. Each ``zo_lr`` of the grid trains the same stream from the same start and gets its Avg the same way,
   plus the share of held-out predictions that putting its ZO units back to their initial values changes.
4. A step **qualifies** when its ZO units acted (that share is at least ``acted``, 1%: the threshold of
   :data:`zolib.cl.diagnostics.ZO_ACTED`) and its Avg is no worse than the control's by more than
   ``margin`` (1 point) and it did not diverge. The qualifying step with the best Avg wins (ties within
   1e-9: the smaller step). A win at the edge of the grid extends the grid by one step of its own ratio,
   at most ``extend`` times per side.
5. If no step qualifies, the calibration says so (``qualified: false`` and why) and falls back to the
   largest step no worse than the control (the closest to acting without harm), or, if every step is
   worse, to the smallest.

Picked once, on ``seed``, then fixed for every seed and task of the runs. Task 1 alone, the rule zolib
used before, cannot see forgetting: on it the largest step lowers the loss most and wins, and the
damage it does builds over the later tasks (tests/test_calibration.py builds such a case).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import NanLossError, ZolibError
from ..models import tokenizer
from ..runtime import provenance, seed_everything
from .config import ExperimentConfig
from .diagnostics import ZO_ACTED, adapter_state, revert_zo
from .evaluation import held_out, predict
from .factory import build_model, load_benchmark, resolve_device
from .trainer import task_indices, train_task


@dataclass(frozen=True)
class Calibration:
    """How the calibrated regime picks its ZO step (the module docstring); every part is a profile parameter."""

    grid: tuple[float, ...] = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2, 2e-2, 3e-2, 5e-2, 1e-1)
    tasks: int = 3             # the first tasks of the stream it trains and scores (A-GEM: 3)
    val_fraction: float = 0.2  # held out of each of those tasks' training images
    margin: float = 1.0        # points of held-out Avg a step may lose against the control and still qualify
    acted: float = ZO_ACTED    # share of held-out predictions its ZO units must change (zolib.cl.diagnostics)
    extend: int = 2            # grid extensions per side when the pick sits at an edge
    seed: int = 0

    def __post_init__(self) -> None:
        if len(self.grid) < 2 or any(g <= 0 for g in self.grid) or list(self.grid) != sorted(set(self.grid)):
            raise ZolibError(f"a calibration grid needs at least two increasing positive steps, got {self.grid}")
        if self.tasks < 1 or not 0 < self.val_fraction < 1:
            raise ZolibError("a calibration needs tasks >= 1 and a val_fraction in (0, 1)")


def choose(table: Sequence[dict[str, Any]], control_avg: float, cal: Calibration) -> dict[str, Any]:
    """The pick of step 4-5 of the module docstring from scored rows (``zo_lr``, ``avg``, ``flip_rate``,
    ``diverged``): ``{"zo_lr", "qualified", "reason"}``, each row's ``qualifies`` set."""
    for row in table:
        fine = row["diverged"] is None
        row["no_worse"] = fine and row["avg"] >= control_avg - cal.margin
        row["qualifies"] = row["no_worse"] and row["flip_rate"] >= cal.acted
    ok = [r for r in table if r["qualifies"]]
    if ok:
        best = max(r["avg"] for r in ok)
        pick = min((r for r in ok if r["avg"] >= best - 1e-9), key=lambda r: r["zo_lr"])
        return {"zo_lr": pick["zo_lr"], "qualified": True, "reason": ""}
    harmless = [r for r in table if r["no_worse"]]
    acted = [r["zo_lr"] for r in table if r["diverged"] is None and r["flip_rate"] >= cal.acted]
    why = (f"no step of {[r['zo_lr'] for r in table]} both acted (changed >= {cal.acted:.0%} of held-out predictions) "
           f"and stayed within {cal.margin:g} points of the control's held-out Avg {control_avg:.2f}; "
           f"steps that acted: {acted or 'none'}")
    fallback = max(r["zo_lr"] for r in harmless) if harmless else min(r["zo_lr"] for r in table)
    return {"zo_lr": fallback, "qualified": False, "reason": why}


def _extension(grid: list[float], upward: bool) -> float:
    """The next step beyond the grid's edge, at the ratio of its last (or first) two steps."""
    a, b = (grid[-2], grid[-1]) if upward else (grid[1], grid[0])
    return float(f"{b * b / a:.3g}")


class _Stream:
    """The first ``cal.tasks`` tasks of ``cfg``'s stream, split once into training and held-out images."""

    def __init__(self, cfg: ExperimentConfig, cal: Calibration):
        self.cfg, self.cal = cfg, cal
        self.device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        self.bench = load_benchmark(cfg)
        if cal.tasks > self.bench.scenario.num_tasks:
            raise ZolibError(f"a calibration over {cal.tasks} tasks needs a stream of at least that many; "
                             f"{self.bench.scenario.name} has {self.bench.scenario.num_tasks}")
        self.tok = tokenizer(cfg.model_name)
        self.train, self.val = [], []
        for t in range(cal.tasks):
            idx = task_indices(cfg, self.bench, t, torch.Generator().manual_seed(cfg.seed * 1000 + t))
            perm = torch.randperm(len(idx), generator=torch.Generator().manual_seed(cfg.seed * 7919 + 1 + t)).numpy()
            n_val = max(1, round(cal.val_fraction * len(idx)))
            self.val.append(np.sort(idx[perm[:n_val]]))
            self.train.append(np.sort(idx[perm[n_val:]]))

    def score(self, trial: ExperimentConfig, progress: bool = False) -> dict[str, Any]:
        """Train ``trial`` through the tasks; held-out accuracy over the seen classes after each, their mean
        (Avg), and the share of held-out predictions its ZO units changed (0 without moving ZO units)."""
        seed_everything(self.cfg.seed)
        model = build_model(trial, self.device, bench=self.bench)
        initial = adapter_state(model)
        accs, losses = [], []
        row: dict[str, Any] = {"zo_lr": float(trial.zo.zo_lr)}
        try:
            for t in range(self.cal.tasks):
                train_task(trial, model, self.bench, t, self.tok, self.device, progress, indices=self.train[t])
                seen = self.bench.scenario.seen_classes(t)
                score = held_out(model, self.bench, seen, np.concatenate(self.val[: t + 1]), self.tok, self.device,
                                 self.cfg.eval_batch_size)
                accs.append(score["accuracy"])
                losses.append(score["loss"])
        except NanLossError as err:
            return {**row, "held_out": accs, "held_out_loss": losses, "avg": None, "flip_rate": None,
                    "diverged": str(err)}
        flips = 0.0
        if trial.has_zo:
            seen, idx = self.bench.scenario.seen_classes(self.cal.tasks - 1), np.concatenate(self.val)
            now = predict(model, self.bench, seen, idx, self.tok, self.device, self.cfg.eval_batch_size, split="train")[0]
            with revert_zo(trial, model, initial):
                before = predict(model, self.bench, seen, idx, self.tok, self.device, self.cfg.eval_batch_size,
                                 split="train")[0]
            flips = float(np.mean(now != before))
        return {**row, "held_out": accs, "held_out_loss": losses, "avg": float(np.mean(accs)), "flip_rate": flips,
                "diverged": None}


def calibrate(cfg: ExperimentConfig, cal: Calibration = Calibration(), progress: bool = False) -> dict[str, Any]:
    """The calibrated ZO step of ``cfg`` (see the module docstring). Returns ``zo_lr``, ``qualified`` and
    ``reason``, the ``control`` and every scored step (``table``), the grid as extended, and provenance."""
    stream = _Stream(cfg, cal)
    control = stream.score(cfg.replace(zo_lr=0.0), progress)
    if control["diverged"]:
        raise NanLossError(f"the calibration's control (ZO units held fixed) diverged: {control['diverged']}")
    grid = [float(g) for g in cal.grid]
    table = [stream.score(cfg.replace(zo_lr=g), progress) for g in grid]
    pick = choose(table, control["avg"], cal)
    for upward in (True, False):
        for _ in range(cal.extend):
            edge = grid[-1] if upward else grid[0]
            if not (pick["qualified"] and pick["zo_lr"] == edge):
                break
            step = _extension(grid, upward)
            grid = grid + [step] if upward else [step] + grid
            table.append(stream.score(cfg.replace(zo_lr=step), progress))
            table.sort(key=lambda r: r["zo_lr"])
            pick = choose(table, control["avg"], cal)
    return {**pick, "control": control, "table": table, "grid": grid, "tasks": cal.tasks,
            "val_fraction": cal.val_fraction, "margin": cal.margin, "acted": cal.acted,
            "val_images": int(sum(len(v) for v in stream.val)), "train_images": int(sum(len(t) for t in stream.train)),
            "config": cfg.as_dict(), **provenance()}


def task1_rule(table: Sequence[dict[str, Any]]) -> float:
    """The rule zolib used before, kept for the record and the tests: the best held-out accuracy after task 1
    alone (a row's ``held_out[0]``), ties to the lower held-out loss, then to the smaller step."""
    ok = [r for r in table if r["held_out"] and math.isfinite(r["held_out_loss"][0])]
    return max(ok, key=lambda r: (r["held_out"][0], -r["held_out_loss"][0], -r["zo_lr"]))["zo_lr"]
