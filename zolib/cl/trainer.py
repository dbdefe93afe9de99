"""The class-incremental harness: train task by task, evaluate on all seen classes,
write results atomically, resume after an interruption.

Per task (MoE-Adapters4CL's protocol, paper.md section 2): a fresh optimizer
(:func:`zolib.cl.factory.make_optimizer`), a warm-up (``warmup_steps``, or ``warmup_fraction`` of the
task's steps) then cosine decay to 0, ``epochs`` passes over the task's training data; training
logits cover the current task's classes only; after the task, accuracy is measured on every seen
class with the prompt template (:mod:`zolib.cl.evaluation`).

What a run records besides accuracy, so that a claim about ZO can be tested (zolib.claims):
``movement`` and ``zo_effect`` (:mod:`zolib.cl.diagnostics`), and ``picks``: per task, how often the
conservative rule kept each candidate (``0`` = theta, ``-1`` = the descent step, ``1`` = the
opposite step).

Determinism: every task draws its shuffling, ZO directions and dropout masks from generators
seeded by (seed, task), so a run resumed after task t ends with the same numbers as an
uninterrupted one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..errors import NanLossError, ZolibError
from ..models import clip_loss, tokenizer
from ..models.units import HEAD
from ..optim.zo import loss_value
from ..runtime import atomic_save_checkpoint, atomic_write_json, load_checkpoint, provenance, seed_everything
from .config import ExperimentConfig, from_dict
from .diagnostics import adapter_state, movement, zo_effect
from .evaluation import classifier, evaluate, label_map
from .factory import build_model, load_benchmark, make_optimizer, resolve_device, world
from .metrics import summarise


def task_indices(cfg: ExperimentConfig, bench, task: int, gen: torch.Generator) -> np.ndarray:
    """Training image indices of ``task`` (a ``train_fraction`` share of them, drawn with ``gen``)."""
    idx = np.flatnonzero(np.isin(bench.train_targets, list(bench.scenario.tasks[task])))
    if cfg.train_fraction < 1:
        keep = torch.randperm(len(idx), generator=gen)[: max(1, round(cfg.train_fraction * len(idx)))]
        idx = np.sort(idx[keep.numpy()])
    return idx


def task_steps(cfg: ExperimentConfig, n_batches: int) -> int:
    """Optimizer steps for one task: ``epochs`` passes, capped by ``max_steps_per_task``."""
    steps = cfg.epochs * n_batches
    return min(steps, cfg.max_steps_per_task) if cfg.max_steps_per_task else steps


def train_task(cfg: ExperimentConfig, model: torch.nn.Module, bench, task: int, tok, device: torch.device,
               progress: bool = True, indices: np.ndarray | None = None) -> dict[str, Any]:
    """Train on one task (on ``indices`` if given, else its training images). Returns the loss of
    every step and the conservative rule's ``picks``; raises NanLossError on a NaN/inf loss."""
    gen = seed_everything(cfg.seed * 1000 + task)
    idx = task_indices(cfg, bench, task, gen) if indices is None else indices
    loader = DataLoader(Subset(bench.train, idx.tolist()), batch_size=cfg.batch_size, shuffle=True,
                        generator=gen, num_workers=cfg.num_workers, drop_last=False)
    classes = list(bench.scenario.tasks[task])
    if hasattr(model, "head"):  # ZO-FC: only the current classes' rows train; older rows are frozen
        model.head.freeze_rows(classes)
    logits = classifier(model, bench, classes, tok, device)
    remap = label_map(len(bench.class_names), classes)
    total = task_steps(cfg, len(loader))
    opt = make_optimizer(cfg, model, seed=cfg.seed * 1000 + task, total_steps=total)
    head_steps = cfg.fc_epochs * len(loader) if cfg.fc_epochs and hasattr(model, "head") else None
    losses: list[float] = []
    picks: dict[str, int] = {}
    bar = tqdm(total=total, desc=f"task {task + 1}/{bench.scenario.num_tasks}", disable=not progress, leave=False)
    while len(losses) < total:
        for images, labels in loader:
            images, target = images.to(device), remap[torch.as_tensor(labels)].to(device)
            if head_steps is not None and len(losses) == head_steps:  # ZO-FC: the head trains its first fc_epochs
                opt.hold(HEAD)
            try:
                result = opt.step(lambda: clip_loss(logits(images), target))
                loss_value(result.loss, len(losses), "reported")
            except NanLossError as err:
                raise NanLossError(f"task {task + 1}, step {len(losses) + 1}: {err} (lr {cfg.lr}, zo_lr "
                                   f"{cfg.zo.zo_lr}); finished tasks 1..{task} are kept") from None
            losses.append(result.loss)
            if "candidate_losses" in result.info:
                key = str(result.info["multiplier"])
                picks[key] = picks.get(key, 0) + 1
            bar.update()
            bar.set_postfix(loss=f"{result.loss:.3f}", refresh=False)
            if len(losses) == total:
                break
    bar.close()
    return {"losses": losses, "picks": picks}


def checkpoint_config_key(state: dict[str, Any]) -> str | None:
    """The config key a checkpoint's state records, or None where it records no readable config."""
    try:
        return from_dict(state["config"]).key()
    except Exception:  # a missing or malformed config: whatever it is, it is not this run's
        return None


def run_experiment(cfg: ExperimentConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a class-incremental experiment and write its result JSON to ``out``.

    The JSON holds ``last``, ``avg``, ``forgetting``, ``bwt``, ``zero_shot`` (accuracy on all
    classes before training), ``acc_matrix``, ``pooled``, per-task ``losses``, ``picks``,
    ``movement`` and ``seconds``, ``zo_effect`` (runs with moving ZO units), the ``world``
    (weights' and data's SHA-256), the ``config``, ``versions`` and ``git_commit``. After each
    finished task a checkpoint ``<out>.ckpt`` is written atomically; rerunning with the same
    ``out`` resumes after the last finished task.
    """
    out = Path(out)
    ckpt_path = out.with_name(out.name + ".ckpt")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    bench = load_benchmark(cfg)
    model = build_model(cfg, device, bench=bench)
    initial = adapter_state(model)
    tok = tokenizer(cfg.model_name)
    state: dict[str, Any] = {"config": cfg.as_dict(), "acc_matrix": [], "pooled": [], "losses": [], "picks": [],
                             "movement": [], "seconds": []}
    if ckpt_path.exists():
        try:
            saved, adapters = load_checkpoint(ckpt_path)
        except ValueError as err:
            raise ZolibError(f"{ckpt_path} is {err}; delete it (the run then starts over) or choose another --out") \
                from None
        if checkpoint_config_key(saved) != cfg.key():
            raise ZolibError(f"{ckpt_path} was written by another config; delete it or choose another --out")
        state = saved
        model.load_state_dict(adapters, strict=False)
    if "zero_shot" not in state:
        state["zero_shot"] = evaluate(model, bench, bench.scenario.num_tasks, tok, device, cfg.eval_batch_size)[1]
    final: dict = {}
    for task in range(len(state["acc_matrix"]), bench.scenario.num_tasks):
        start = time.perf_counter()
        trained = train_task(cfg, model, bench, task, tok, device, progress)
        per_task, pooled = evaluate(model, bench, task + 1, tok, device, cfg.eval_batch_size, final)
        state["losses"].append(trained["losses"])
        state["picks"].append(trained["picks"])
        state["movement"].append(movement(cfg, model, initial))
        state["acc_matrix"].append(per_task)
        state["pooled"].append(pooled)
        state["seconds"].append(time.perf_counter() - start)
        atomic_save_checkpoint(state, adapter_state(model), ckpt_path)
        if progress:
            tqdm.write(f"task {task + 1}/{bench.scenario.num_tasks}: acc on seen classes {pooled:.2f}%")
    result = {**summarise(state["acc_matrix"], state["pooled"]), "zero_shot": state["zero_shot"],
              "acc_matrix": state["acc_matrix"], "pooled": state["pooled"], "losses": state["losses"],
              "picks": state["picks"], "movement": state["movement"], "seconds": state["seconds"],
              "zo_effect": zo_effect(cfg, model, bench, tok, device, initial, final) if cfg.has_zo else None,
              "num_tasks": bench.scenario.num_tasks, "scenario": bench.scenario.name, "world": world(cfg, bench, model),
              "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}
    atomic_write_json(out, result)
    ckpt_path.unlink(missing_ok=True)
    return result
