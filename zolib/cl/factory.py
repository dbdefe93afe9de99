"""The factory: from a resolved config to the objects a run trains, one way for every kind of run.

- :func:`load_benchmark`: the :class:`~zolib.data.benchmark.Benchmark` the config names;
- :func:`build_model`: the adapted CLIP (adapter size from :func:`zolib.models.specs.model_spec`),
  with a classifier head (ZO-FC) or a prompt context (SharpZO, CoOp) where the config asks;
- :func:`make_optimizer`: the optimizer of every run, class-incremental and few-shot alike
  (:class:`~zolib.optim.hybrid.HybridOptimizer`, :class:`~zolib.optim.sharpzo.SharpZO`, or infty's
  ZeroFlow for the cross-check). It passes the config's numbers on: the ZO step is ``cfg.zo.zo_lr``,
  resolved once by :func:`zolib.cl.config.resolve`, and nothing here re-derives it.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch

from ..data.scenarios import task_sizes
from ..models import LoRAConfig, MoEConfig, build_adapted_clip, tokenizer, trainable_units
from ..models.head import attach_head
from ..models.prompt import attach_prompt
from ..models.specs import model_spec
from .config import ExperimentConfig, resolve


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


def schedule(cfg: ExperimentConfig, total_steps: int) -> Callable[[int], float]:
    """The lr factor of a task of ``total_steps`` steps: warm-up (``warmup_steps``, or
    ``warmup_fraction`` of the task) then cosine, or constant."""
    if cfg.schedule == "constant":
        return lambda step: 1.0
    warmup = round(cfg.warmup_fraction * total_steps) if cfg.warmup_fraction else cfg.warmup_steps
    return warmup_cosine(max(1, warmup), total_steps)


def load_benchmark(cfg: ExperimentConfig):
    """The :class:`~zolib.data.benchmark.Benchmark` a config asks for."""
    if cfg.benchmark == "synthetic":
        from ..data.synthetic import SyntheticConfig, load_synthetic
        tasks = len(task_sizes("synthetic", cfg.protocol, 100))
        return load_synthetic(SyntheticConfig(cfg.synthetic_train_per_class, cfg.synthetic_test_per_class,
                                              tasks, seed=cfg.seed, hue_shift=cfg.synthetic_hue_shift))
    from ..data.real import load_benchmark as load_real
    return load_real(cfg.benchmark, protocol=cfg.protocol, image_size=model_spec(cfg.model_name).image_size)


def world(cfg: ExperimentConfig, bench, model: torch.nn.Module | None = None) -> dict[str, Any]:
    """What fixes the world a run sees: where the model's weights came from (the shipped tiny CLIP, open_clip's
    OpenAI file, or a local file through ``ZOLIB_CLIP_WEIGHTS``) with their SHA-256, and the data's
    fingerprint (the synthetic draw's SHA-256, or the verified checksums of the real dataset's archive and
    files, :mod:`zolib.data.real`)."""
    weights = dict(getattr(model, "weights_provenance", None) or {})
    out: dict[str, Any] = {"model": cfg.model_name, "weights": weights, "weights_sha256": weights.get("sha256")}
    if cfg.benchmark == "synthetic":
        from ..data.synthetic import GENERATOR_VERSION
        return {**out, "generator_version": GENERATOR_VERSION, "data_sha256": bench.info["data_sha256"]}
    return {**out, "dataset": bench.name, "data": bench.info.get("data", {})}


def build_model(cfg: ExperimentConfig, device: torch.device, pretrained: str | None = None,
                bench=None) -> torch.nn.Module:
    """The adapted CLIP of ``cfg`` (``pretrained`` overrides the benchmark's weights, e.g. ``none``). With
    ``cfg.classifier == "head"`` it gets a classifier head whose row for each class of ``bench`` starts
    at its prompt's normalised text feature (so it starts as zero-shot CLIP; :mod:`zolib.models.head`)."""
    model = build_adapted_clip(cfg.model_name, pretrained or cfg.pretrained, cfg.adapter,
                               moe=MoEConfig(num_experts=cfg.moe_experts, top_k=cfg.moe_experts,
                                             bottleneck=cfg.moe_bottleneck),
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


def make_optimizer(cfg: ExperimentConfig, model: torch.nn.Module, *, seed: int, total_steps: int | None = None,
                   units: Mapping | None = None, partial: bool = True) -> Any:
    """The optimizer of ``cfg`` over ``units`` (default: the model's trainable units), for every run.

    ``total_steps``: the steps of a class-incremental task, which set the warm-up + cosine schedule
    (and SharpZO's stage-1 share); None for a budget-limited run (few-shot: constant step).
    ``partial``: whether probes may recompute only what their perturbation changes (off where the
    closure already runs only the changed part, as the few-shot runs' text-only loss does).
    """
    from ..models.partial import PartialForward
    units = trainable_units(model) if units is None else units
    lr_factor = schedule(cfg, total_steps) if total_steps else None
    modes = cfg.unit_modes(units)
    if cfg.classifier == "prompt" and cfg.sharpzo.prompt_mode in ("cmaes", "sharpzo"):
        from ..optim.sharpzo import SharpZO
        probe = PartialForward(model, {"text": {0}, "vision": set()}) if partial else None
        return SharpZO(model.prompt.z, cfg.sharpzo, lr=cfg.zo.zo_lr, eps=cfg.zo.eps, schedule=lr_factor, seed=seed,
                       partial=probe, total_steps=total_steps)
    if cfg.zo_backend == "infty":
        from ..optim.infty import InftyZeroFlow
        return InftyZeroFlow(model, units, modes, zo=cfg.zo, schedule=lr_factor, seed=seed)
    from ..optim.hybrid import HybridOptimizer
    return HybridOptimizer(model, units, modes, lr=cfg.lr, weight_decay=cfg.weight_decay, mix=cfg.mix, zo=cfg.zo,
                           schedule=lr_factor, seed=seed, fo_train_mode=cfg.fo_train_mode,
                           fo_optimizer=cfg.fo_optimizer, partial=partial)


def build_optimizer(model: torch.nn.Module, method: str = "fo", *, units: Mapping | None = None, seed: int = 0,
                    partial: bool = True, total_steps: int | None = None, **values: Any) -> Any:
    """The optimizer a stored run of ``method`` trains ``model`` with: ``values`` (experiment and ZO fields,
    flat, as :func:`resolve` takes them: ``lr``, ``zo_lr``, ``rule``, ``q``, ...) resolved with the method,
    then :func:`make_optimizer`. The one path from a method name to an optimizer, for tests and notebooks."""
    return make_optimizer(resolve({"method": method, **values}), model, seed=seed, total_steps=total_steps,
                          units=units, partial=partial)
