"""The class-incremental harness: train task by task, evaluate on all seen classes,
write results atomically, resume after an interruption.

Per task (MoE-Adapters4CL's protocol, paper.md section 2): a fresh optimizer, a
``warmup_steps`` linear warm-up then cosine decay to 0, ``epochs`` passes over the
task's training data; training logits cover the current task's classes only; after the
task, accuracy is measured on every seen class with the prompt template.

Determinism: every task draws its shuffling and ZO directions from generators seeded by
(seed, task), so a run resumed after task t ends with the same numbers as an
uninterrupted one.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..errors import NanLossError, ZolibError
from ..optim.zo import loss_value
from ..models import LoRAConfig, MoEConfig, build_adapted_clip, clip_logits, tokenizer, trainable_units
from ..runtime import atomic_torch_save, atomic_write_json, provenance, seed_everything
from .config import ExperimentConfig
from .metrics import summarise


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA if available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def warmup_cosine(warmup: int, total: int) -> Callable[[int], float]:
    """lr factor at step s: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``."""
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        span = max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / span)))
    return factor


def load_benchmark(cfg: ExperimentConfig):
    """The :class:`~zolib.data.benchmark.Benchmark` a config asks for."""
    if cfg.benchmark == "synthetic":
        from ..data.synthetic import SyntheticConfig, load_synthetic
        return load_synthetic(SyntheticConfig(cfg.synthetic_train_per_class, cfg.synthetic_test_per_class,
                                              cfg.synthetic_tasks, seed=cfg.seed, hue_shift=cfg.synthetic_hue_shift))
    from ..data.real import load_benchmark as load_real
    return load_real(cfg.benchmark, protocol=cfg.protocol)


def build_model(cfg: ExperimentConfig, device: torch.device, pretrained: str | None = None) -> torch.nn.Module:
    """The adapted CLIP of ``cfg`` (``pretrained`` overrides the benchmark's weights, e.g. ``none``)."""
    return build_adapted_clip(cfg.model_name, pretrained or cfg.pretrained, cfg.adapter,
                              moe=MoEConfig(num_experts=cfg.moe_experts, top_k=cfg.moe_experts,
                                            bottleneck=cfg.bottleneck),
                              lora=LoRAConfig(rank=cfg.lora_rank, alpha=cfg.lora_alpha), device=device)


@torch.no_grad()
def evaluate(model: torch.nn.Module, bench, tasks_seen: int, tok, device: torch.device,
             batch_size: int = 256) -> tuple[list[float], float]:
    """Accuracy (%) on each seen task's test classes, and pooled over all of them.

    Predictions are the argmax over every class of tasks ``0..tasks_seen-1``.
    """
    was_training = model.training
    model.eval()
    seen = bench.scenario.seen_classes(tasks_seen - 1)
    text = model.encode_text(tok(bench.prompts(seen)).to(device), normalize=True)
    lookup = torch.full((len(bench.class_names),), -1, dtype=torch.long)
    lookup[torch.tensor(seen)] = torch.arange(len(seen))
    idx = np.flatnonzero(np.isin(bench.test_targets, seen))
    correct = torch.zeros(len(bench.class_names))
    count = torch.zeros(len(bench.class_names))
    for images, labels in DataLoader(Subset(bench.test, idx.tolist()), batch_size=batch_size):
        img = model.encode_image(images.to(device), normalize=True)
        pred = torch.tensor(seen)[(img @ text.T).argmax(1).cpu()]
        labels = torch.as_tensor(labels)
        correct.index_add_(0, labels, (pred == labels).float())
        count.index_add_(0, labels, torch.ones(len(labels)))
    model.train(was_training)
    per_task = [100 * float(correct[list(t)].sum() / count[list(t)].sum())
                for t in bench.scenario.tasks[:tasks_seen]]
    return per_task, 100 * float(correct.sum() / count.sum())


def make_optimizer(cfg: ExperimentConfig, model: torch.nn.Module, total_steps: int, seed: int):
    """The optimizer of ``cfg.method`` with the harness's warm-up + cosine schedule."""
    from ..optim import build_optimizer
    return build_optimizer(model, cfg.method, units=trainable_units(model), lr=cfg.lr,
                           weight_decay=cfg.weight_decay, mix=cfg.mix,
                           schedule=warmup_cosine(cfg.warmup_steps, total_steps), zo_rule=cfg.zo_rule,
                           sign=cfg.sign, eps=cfg.eps, eps_vision=cfg.eps_vision, eps_text=cfg.eps_text, q=cfg.q,
                           zo_lr=cfg.zo_lr, seed=seed)


def _task_loader(cfg: ExperimentConfig, bench, task: int, gen: torch.Generator) -> DataLoader:
    classes = list(bench.scenario.tasks[task])
    idx = np.flatnonzero(np.isin(bench.train_targets, classes))
    if cfg.train_fraction < 1:
        keep = torch.randperm(len(idx), generator=gen)[: max(1, round(cfg.train_fraction * len(idx)))]
        idx = np.sort(idx[keep.numpy()])
    return DataLoader(Subset(bench.train, idx.tolist()), batch_size=cfg.batch_size, shuffle=True,
                      generator=gen, num_workers=cfg.num_workers, drop_last=False)


def task_steps(cfg: ExperimentConfig, n_batches: int) -> int:
    """Optimizer steps for one task: ``epochs`` passes, capped by ``max_steps_per_task``."""
    steps = cfg.epochs * n_batches
    return min(steps, cfg.max_steps_per_task) if cfg.max_steps_per_task else steps


def train_task(cfg: ExperimentConfig, model: torch.nn.Module, bench, task: int, tok,
               device: torch.device, progress: bool = True) -> list[float]:
    """Train on one task; returns the loss of every step. Raises NanLossError on NaN/inf."""
    gen = seed_everything(cfg.seed * 1000 + task)
    loader = _task_loader(cfg, bench, task, gen)
    classes = list(bench.scenario.tasks[task])
    text = tok(bench.prompts(classes)).to(device)
    remap = torch.full((len(bench.class_names),), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    total = task_steps(cfg, len(loader))
    opt = make_optimizer(cfg, model, total, seed=cfg.seed * 1000 + task)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc=f"task {task + 1}/{bench.scenario.num_tasks}", disable=not progress, leave=False)
    while len(losses) < total:
        for images, labels in loader:
            images, target = images.to(device), remap[torch.as_tensor(labels)].to(device)
            try:
                result = opt.step(lambda: F.cross_entropy(clip_logits(model, images, text), target))
                loss_value(result.loss, len(losses), "reported")
            except NanLossError as err:
                lrs = f"lr {cfg.lr}" + (f", zo_lr {cfg.zo_lr}" if cfg.zo_lr is not None else "")
                raise NanLossError(f"task {task + 1}, step {len(losses) + 1}: {err} ({lrs}); "
                                   f"finished tasks 1..{task} are kept") from None
            losses.append(result.loss)
            bar.update()
            bar.set_postfix(loss=f"{result.loss:.3f}", refresh=False)
            if len(losses) == total:
                break
    bar.close()
    return losses


def _adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def run_experiment(cfg: ExperimentConfig, out: str | Path, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) a class-incremental experiment and write its result JSON to ``out``.

    The JSON holds ``last``, ``avg``, ``forgetting``, ``bwt``, ``zero_shot`` (accuracy on all
    classes before training), ``acc_matrix``, ``pooled``, per-task ``losses`` and
    ``seconds``, the ``config``, ``versions`` and ``git_commit``. After each finished task a
    checkpoint ``<out>.ckpt`` is written atomically; rerunning with the same ``out``
    resumes after the last finished task.
    """
    out = Path(out)
    ckpt_path = out.with_name(out.name + ".ckpt")
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    bench = load_benchmark(cfg)
    model = build_model(cfg, device)
    tok = tokenizer(cfg.model_name)
    state: dict[str, Any] = {"config": cfg.as_dict(), "acc_matrix": [], "pooled": [], "losses": [], "seconds": []}
    if ckpt_path.exists():
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if saved["config"] != cfg.as_dict():
            raise ZolibError(f"{ckpt_path} was written by another config; delete it or choose another --out")
        state = saved
        model.load_state_dict(state.pop("adapters"), strict=False)
    if "zero_shot" not in state:
        state["zero_shot"] = evaluate(model, bench, bench.scenario.num_tasks, tok, device, cfg.eval_batch_size)[1]
    for task in range(len(state["acc_matrix"]), bench.scenario.num_tasks):
        start = time.perf_counter()
        losses = train_task(cfg, model, bench, task, tok, device, progress)
        per_task, pooled = evaluate(model, bench, task + 1, tok, device, cfg.eval_batch_size)
        state["losses"].append(losses)
        state["acc_matrix"].append(per_task)
        state["pooled"].append(pooled)
        state["seconds"].append(time.perf_counter() - start)
        atomic_torch_save(state | {"adapters": _adapter_state(model)}, ckpt_path)
        if progress:
            tqdm.write(f"task {task + 1}/{bench.scenario.num_tasks}: acc on seen classes {pooled:.2f}%")
    result = {**summarise(state["acc_matrix"], state["pooled"]), "zero_shot": state["zero_shot"],
              "acc_matrix": state["acc_matrix"], "pooled": state["pooled"], "losses": state["losses"],
              "seconds": state["seconds"], "num_tasks": bench.scenario.num_tasks, "scenario": bench.scenario.name,
              "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}
    atomic_write_json(out, result)
    ckpt_path.unlink(missing_ok=True)
    return result
