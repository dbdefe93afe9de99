"""The class-incremental harness: train task by task, evaluate on all seen classes,
write results atomically, resume after an interruption.

Per task (MoE-Adapters4CL's protocol, paper.md section 2): a fresh optimizer, a warm-up
(``warmup_steps``, or ``warmup_fraction`` of the task's steps) then cosine decay to 0,
``epochs`` passes over the task's training data; training logits cover the current task's
classes only; after the task, accuracy is measured on every seen class with the prompt template.

What a run records besides accuracy, so that a claim about ZO can be tested (zolib.claims):

- ``movement``: after each task, how far the parameters moved from their initial values,
  ``|theta_t - theta_0| / |theta_0|``, per branch and per unit mode (``zo`` / ``fo``);
- ``picks``: per task, how often the conservative rule kept each candidate (``0`` = theta,
  ``-1`` = the descent step, ``1`` = the opposite step);
- ``zo_effect``: after the final task, the share of test images whose predicted class changes
  when the ZO units are put back to their initial values (``flip_rate``), and the accuracy of
  that reverted model: for Dual the reverted model is the frozen one, for a hybrid the FO
  units' learning alone.

Determinism: every task draws its shuffling, ZO directions and dropout masks from generators
seeded by (seed, task), so a run resumed after task t ends with the same numbers as an
uninterrupted one.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from ..data.scenarios import task_sizes
from ..errors import NanLossError, ZolibError
from ..models import LoRAConfig, MoEConfig, build_adapted_clip, clip_logits, tokenizer, trainable_units
from ..models.head import attach_head, head_logits
from ..models.prompt import attach_prompt
from ..models.units import HEAD, PROMPT
from ..optim.build import unit_modes
from ..optim.hybrid import HybridOptimizer
from ..optim.zo import loss_value
from ..runtime import atomic_torch_save, atomic_write_json, provenance, seed_everything
from .config import ExperimentConfig, from_dict
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
        tasks = len(task_sizes("synthetic", cfg.protocol, 100))
        return load_synthetic(SyntheticConfig(cfg.synthetic_train_per_class, cfg.synthetic_test_per_class,
                                              tasks, seed=cfg.seed, hue_shift=cfg.synthetic_hue_shift))
    from ..data.real import load_benchmark as load_real
    return load_real(cfg.benchmark, protocol=cfg.protocol)


def world(cfg: ExperimentConfig, bench) -> dict[str, Any]:
    """What fixes the world a run sees: the model weights' and the data's fingerprints."""
    if cfg.benchmark == "synthetic":
        from ..data.synthetic import GENERATOR_VERSION
        from ..models.tiny import weights_record
        return {"model": cfg.model_name, "weights_sha256": weights_record()["sha256"],
                "generator_version": GENERATOR_VERSION, "data_sha256": bench.info["data_sha256"]}
    return {"model": cfg.model_name, "weights": cfg.pretrained, "dataset": bench.name}


def build_model(cfg: ExperimentConfig, device: torch.device, pretrained: str | None = None,
                bench=None) -> torch.nn.Module:
    """The adapted CLIP of ``cfg`` (``pretrained`` overrides the benchmark's weights, e.g. ``none``). With
    ``cfg.classifier == "head"`` it gets a classifier head whose row for each class of ``bench`` starts
    at its prompt's normalised text feature (so it starts as zero-shot CLIP; :mod:`zolib.models.head`)."""
    model = build_adapted_clip(cfg.model_name, pretrained or cfg.pretrained, cfg.adapter,
                               moe=MoEConfig(num_experts=cfg.moe_experts, top_k=cfg.moe_experts,
                                             bottleneck=cfg.moe_bottleneck or 64),
                               lora=LoRAConfig(rank=cfg.lora_rank, alpha=cfg.lora_alpha), device=device)
    if cfg.classifier == "prompt":
        tok = tokenizer(cfg.model_name)
        template = tok([bench.template.format(bench.class_names[0])] if bench is not None else ["a photo of a x."])
        attach_prompt(model, template.to(device), cfg.sharpzo.n_ctx, cfg.sharpzo.prompt_dim, seed=cfg.seed)
    if cfg.classifier == "head":
        if bench is None:
            raise ValueError("a classifier head needs the benchmark (its classes' prompts)")
        head = attach_head(model, len(bench.class_names))
        classes = list(range(len(bench.class_names)))
        with torch.no_grad():
            head.init_rows(classes, model.eval().encode_text(tokenizer(cfg.model_name)(bench.prompts(classes)).to(device),
                                                             normalize=True))
    return model


def classifier(model: torch.nn.Module, bench, classes: Sequence[int], tok,
               device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``images -> logits`` over ``classes``: CLIP's text prompts, or the classifier head's rows when the
    model has one (ZO-FC, :mod:`zolib.models.head`)."""
    if hasattr(model, "head"):
        return lambda images: head_logits(model, images, classes)
    text = tok(bench.prompts(classes)).to(device)
    return lambda images: clip_logits(model, images, text)


def class_matrix(model: torch.nn.Module, bench, classes: Sequence[int], tok, device: torch.device) -> torch.Tensor:
    """One row per class that image features are compared with: normalised prompt features, or head rows."""
    if hasattr(model, "head"):
        return model.head.weight[torch.as_tensor(list(classes), dtype=torch.long, device=device)]
    return model.encode_text(tok(bench.prompts(classes)).to(device), normalize=True)


@torch.no_grad()
def predict(model: torch.nn.Module, bench, classes: Sequence[int], idx: Sequence[int], tok, device: torch.device,
            batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Predicted label ids (argmax over ``classes``) and true label ids of the test images ``idx``."""
    was_training = model.training
    model.eval()
    text = class_matrix(model, bench, classes, tok, device)
    classes_t = torch.tensor(list(classes))
    preds, labels = [], []
    for images, y in DataLoader(Subset(bench.test, list(idx)), batch_size=batch_size):
        img = model.encode_image(images.to(device), normalize=True)
        preds.append(classes_t[(img @ text.T).argmax(1).cpu()])
        labels.append(torch.as_tensor(y))
    model.train(was_training)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def accuracy(correct: int, total: int) -> float:
    """``100 * correct / total`` from integer counts (no float32 sums: 64% is 64.0, not 63.9999986)."""
    return 100.0 * int(correct) / int(total)


def evaluate(model: torch.nn.Module, bench, tasks_seen: int, tok, device: torch.device,
             batch_size: int = 256, predictions: dict | None = None) -> tuple[list[float], float]:
    """Accuracy (%) on each seen task's test classes, and pooled over all of them.

    Predictions are the argmax over every class of tasks ``0..tasks_seen-1``; they are stored in
    ``predictions`` (``pred``, ``labels``) when it is given.
    """
    seen = bench.scenario.seen_classes(tasks_seen - 1)
    idx = np.flatnonzero(np.isin(bench.test_targets, seen))
    pred, labels = predict(model, bench, seen, idx, tok, device, batch_size)
    if predictions is not None:
        predictions.update(pred=pred, labels=labels)
    hit = pred == labels
    per_task = [accuracy(hit[np.isin(labels, t)].sum(), np.isin(labels, t).sum())
                for t in bench.scenario.tasks[:tasks_seen]]
    return per_task, accuracy(hit.sum(), len(hit))


def make_optimizer(cfg: ExperimentConfig, model: torch.nn.Module, total_steps: int, seed: int) -> HybridOptimizer:
    """The optimizer of ``cfg`` with the harness's warm-up + cosine schedule."""
    units = trainable_units(model)
    warmup = round(cfg.warmup_fraction * total_steps) if cfg.warmup_fraction else cfg.warmup_steps
    schedule = warmup_cosine(max(1, warmup), total_steps) if cfg.schedule == "warmup-cosine" else (lambda step: 1.0)
    modes = run_modes(cfg, units)
    if cfg.classifier == "prompt" and cfg.sharpzo.prompt_mode in ("cmaes", "sharpzo"):
        from ..models.partial import PartialForward
        from ..optim.sharpzo import SharpZO
        return SharpZO(model.prompt.z, cfg.sharpzo, lr=cfg.zo.zo_lr or cfg.lr, eps=cfg.zo.eps, schedule=schedule,
                       seed=seed, partial=PartialForward(model, {"text": {0}, "vision": set()}), total_steps=total_steps)
    if cfg.zo_backend == "infty":
        from ..optim.infty import InftyZeroFlow
        return InftyZeroFlow(model, units, modes, lr=cfg.lr, zo=cfg.zo, schedule=schedule, seed=seed)
    return HybridOptimizer(model, units, modes, lr=cfg.lr, weight_decay=cfg.weight_decay, mix=cfg.mix, zo=cfg.zo,
                           schedule=schedule, seed=seed, fo_train_mode=cfg.fo_train_mode,
                           fo_optimizer=cfg.fo_optimizer)


def run_modes(cfg: ExperimentConfig, units) -> "OrderedDict":
    """``{unit: "fo" | "zo" | "frozen"}`` of a run: the method's mask; with a classifier head (ZO-FC) the
    text adapters are held fixed (the text encoder only initialised the head's rows); ZO units with a
    ZO step of 0 are held fixed (a control, or the frozen model)."""
    if cfg.classifier == "prompt":  # only the context trains: FO (CoOp) or forward-only (ZO-SGD, CMA-ES, SharpZO)
        return OrderedDict((k, ("fo" if cfg.sharpzo.prompt_mode == "fo" else "zo") if k == PROMPT else "frozen")
                           for k in units)
    modes = unit_modes(cfg.mask, units)
    return OrderedDict((k, "frozen" if (cfg.classifier == "head" and k[0] == "text") or (m == "zo" and not cfg.has_zo)
                        else m) for k, m in modes.items())


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
    remap = torch.full((len(bench.class_names),), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    total = task_steps(cfg, len(loader))
    opt = make_optimizer(cfg, model, total, seed=cfg.seed * 1000 + task)
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
                result = opt.step(lambda: F.cross_entropy(logits(images), target))
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


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the trainable (adapter) parameters."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}


def movement(cfg: ExperimentConfig, model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict[str, dict]:
    """``|theta - theta_0| / |theta_0|`` of the trainable parameters, per branch and unit mode (``|theta -
    theta_0|`` itself for a unit that starts at zero: a prompt vector)."""
    modes = run_modes(cfg, trainable_units(model))
    sums: dict[str, dict[str, list[float]]] = {}
    for key, params in trainable_units(model).items():
        for name, p in params.items():
            d = sums.setdefault(key[0], {}).setdefault(modes[key], [0.0, 0.0])
            d[0] += float((p.detach().cpu() - initial[name]).double().square().sum())
            d[1] += float(initial[name].double().square().sum())
    return {b: {m: math.sqrt(v[0] / v[1]) if v[1] else math.sqrt(v[0]) for m, v in by_mode.items()}
            for b, by_mode in sums.items()}


def zo_effect(cfg: ExperimentConfig, model: torch.nn.Module, bench, tok, device: torch.device,
              initial: dict[str, torch.Tensor], final: dict | None = None) -> dict[str, float]:
    """Put the ZO units back to their initial values and compare predictions over all test images
    (see the module docstring); the model is left as it was. ``final``: the predictions of the
    final task's evaluation (over all classes), when at hand."""
    classes = bench.scenario.seen_classes(bench.scenario.num_tasks - 1)
    idx = np.flatnonzero(np.isin(bench.test_targets, classes))
    if final:
        pred, labels = final["pred"], final["labels"]
    else:
        pred, labels = predict(model, bench, classes, idx, tok, device, cfg.eval_batch_size)
    modes = run_modes(cfg, trainable_units(model))
    zo_params = [(n, p) for k, ps in trainable_units(model).items() if modes[k] == "zo" for n, p in ps.items()]
    saved = [p.detach().clone() for _, p in zo_params]
    with torch.no_grad():
        for (name, p) in zo_params:
            p.copy_(initial[name].to(p.device))
        reverted, _ = predict(model, bench, classes, idx, tok, device, cfg.eval_batch_size)
        for (_, p), value in zip(zo_params, saved):
            p.copy_(value)
    return {"flip_rate": float(np.mean(pred != reverted)), "flips": int(np.sum(pred != reverted)),
            "test_images": int(len(pred)), "last_reverted": accuracy(np.sum(reverted == labels), len(labels))}


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
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        if from_dict(saved["config"]).key() != cfg.key():
            raise ZolibError(f"{ckpt_path} was written by another config; delete it or choose another --out")
        state = saved
        model.load_state_dict(state.pop("adapters"), strict=False)
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
        atomic_torch_save(state | {"adapters": adapter_state(model)}, ckpt_path)
        if progress:
            tqdm.write(f"task {task + 1}/{bench.scenario.num_tasks}: acc on seen classes {pooled:.2f}%")
    result = {**summarise(state["acc_matrix"], state["pooled"]), "zero_shot": state["zero_shot"],
              "acc_matrix": state["acc_matrix"], "pooled": state["pooled"], "losses": state["losses"],
              "picks": state["picks"], "movement": state["movement"], "seconds": state["seconds"],
              "zo_effect": zo_effect(cfg, model, bench, tok, device, initial, final) if cfg.has_zo else None,
              "num_tasks": bench.scenario.num_tasks, "scenario": bench.scenario.name, "world": world(cfg, bench),
              "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}
    atomic_write_json(out, result)
    ckpt_path.unlink(missing_ok=True)
    return result


def calibrate(cfg: ExperimentConfig, grid: Sequence[float], val_fraction: float = 0.2,
              progress: bool = False) -> dict[str, Any]:
    """Pick the ZO step size of ``cfg`` on task 1 only (the calibrated regime, zolib.cl.profiles.Calibration).

    Task 1's training images are split once (seeded by ``cfg.seed``): ``val_fraction`` of them are
    held out. For each ``zo_lr`` in ``grid`` a fresh model trains on the rest of task 1, then is
    evaluated on the held-out images (accuracy over task 1's classes, and mean loss). The best
    accuracy wins; ties go to the lower loss, then to the smaller step; a diverged step never
    wins. Returns ``{"zo_lr": chosen, "table": [...], ...}``.
    """
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
        row.update(_validation(model, bench, classes, val, tok, device, cfg.eval_batch_size), diverged=None)
        table.append(row)
    ok = [r for r in table if r["diverged"] is None]
    if not ok:
        raise NanLossError(f"every ZO step size of the calibration grid {list(grid)} diverged on task 1; "
                           f"try a grid of smaller steps")
    best = max(ok, key=lambda r: (r["accuracy"], -r["loss"], -r["zo_lr"]))
    return {"zo_lr": best["zo_lr"], "grid": [float(g) for g in grid], "val_fraction": val_fraction,
            "val_images": int(n_val), "train_images": int(len(train)), "table": table,
            "config": cfg.as_dict(), **provenance()}


@torch.no_grad()
def _validation(model, bench, classes, idx, tok, device, batch_size) -> dict[str, float]:
    """Accuracy and mean cross-entropy over ``classes`` on training images ``idx`` (eval mode)."""
    model.eval()
    text = class_matrix(model, bench, classes, tok, device)
    remap = torch.full((len(bench.class_names),), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    correct, total, loss = 0, 0, 0.0
    for images, labels in DataLoader(Subset(bench.train, list(idx)), batch_size=batch_size):
        target = remap[torch.as_tensor(labels)].to(device)
        logits = model.logit_scale.exp() * model.encode_image(images.to(device), normalize=True) @ text.T
        correct += int((logits.argmax(1) == target).sum())
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        total += len(target)
    return {"accuracy": accuracy(correct, total), "loss": loss / total}
