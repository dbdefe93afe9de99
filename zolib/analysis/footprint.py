"""Memory footprint of one training step per configuration: the table of notebooks/06_memory.ipynb.

For each (adapter, method) the rows give, for one step on one batch:

- parameter, gradient and optimizer-state bytes of the trainable (adapter) parameters, total and
  per branch (``vision`` = ``model.visual``'s adapters, ``text`` = the text transformer's);
- bytes of the tensors autograd saved for backward, per branch (:class:`~.memory.SavedTensors`);
- the peak of live bytes created inside the step (:class:`~.memory.PeakMemory`: parameters and
  the batch, which exist before the step, are not counted; AdamW's state, created in the first
  step, is) and, on CUDA, the allocator's ``max_memory_allocated`` over the step (weights
  included: the number the paper most likely reports), else None;
- the same two peaks for an inference-only forward (eval mode, ``no_grad``) on the same batch,
  and the ratios step peak / inference peak and configuration / FO.

:func:`predict_mask_memory` measures one step of any 2 x L ZO mask, to show that layer-wise ZO
inside a branch still backpropagates through every layer above the lowest FO layer of it.
See notebooks/06_memory.ipynb; benchmarks/zo_step.py builds its batches with :func:`clip_batch`
and measures with :func:`measure_method`.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..models import MoEConfig, build_adapted_clip, tokenizer, trainable_units
from ..models.units import BRANCHES
from ..optim import build_optimizer
from ..optim.methods import custom
from .memory import MemoryReport, PeakMemory, branch_gates, clip_loss, measure_step, parameter_bytes

# Label -> method of the configurations notebook 06 compares (zolib.optim.presets spelling).
MEMORY_CONFIGS: dict[str, str] = {"FO": "fo", "Dual": "dual", "Vision": "vision", "Language": "language",
                           "Hop-odd-vision": "hop-odd-vision", "Hop-even-both": "hop-even-both"}
# Class names of the text prompts: one task of 10 classes (CIFAR-100 Inc10 trains on 10 at a time).
CLASSES = ["apple", "bicycle", "castle", "dolphin", "forest", "guitar", "lamp", "mountain", "rocket", "tulip"]


def clip_batch(model_name: str, batch: int, image_size: int, device: str | torch.device = "cpu",
               n_classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A random batch for memory and time checks: ``(images, tokens, labels)``.

    ``batch`` random images of ``image_size`` px, ``n_classes`` prompts "a bad photo of a
    {class}." (names repeat with a number past 10), labels ``arange(batch) % n_classes``.
    """
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, image_size, image_size, generator=g)
    names = [CLASSES[i % len(CLASSES)] + (f" {i // len(CLASSES)}" if i >= len(CLASSES) else "")
             for i in range(n_classes)]
    tokens = tokenizer(model_name)([f"a bad photo of a {c}." for c in names])
    labels = torch.arange(batch) % n_classes
    return images.to(device), tokens.to(device), labels.to(device)


def trainable_parameters(model: nn.Module) -> list[torch.Tensor]:
    """The model's parameters with ``requires_grad`` (the adapters of an adapted CLIP)."""
    return [p for p in model.parameters() if p.requires_grad]


def measure_method(model: nn.Module, closure: Callable[[], torch.Tensor], method: str, *, peak: bool = True,
                   **options: Any) -> tuple[Any, MemoryReport]:
    """One fresh :func:`~zolib.optim.build_optimizer` step of ``method`` (``options`` go to it),
    measured by :func:`~.memory.measure_step` with per-branch gates; gradients are cleared first.

    Returns ``(optimizer, report)``; ``report.extra`` holds ``forwards`` (per step), ``loss`` and
    the per-branch ``parameter_bytes`` / ``gradient_bytes`` / ``optimizer_state_bytes``.
    """
    model.zero_grad(set_to_none=True)
    opt = build_optimizer(model, method, **options)
    result, report = measure_step(lambda: opt.step(closure), model, trainable_parameters(model), [opt],
                                  gates=branch_gates(model), peak=peak)
    report.extra.update(forwards=result.forwards, loss=result.loss, cached_bytes=result.info.get("cached_bytes", 0),
                        **per_branch_bytes(model, opt))
    return opt, report


def per_branch_bytes(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, dict[str, int]]:
    """Parameter, gradient and optimizer-state bytes of the trainable units, per branch."""
    out: dict[str, dict[str, int]] = {k: dict.fromkeys(BRANCHES, 0) for k in
                                      ("parameter_bytes", "gradient_bytes", "optimizer_state_bytes")}
    states = [getattr(opt, "_fo", None), opt]
    for (branch, _), params in trainable_units(model).items():
        for p in params.values():
            out["parameter_bytes"][branch] += p.numel() * p.element_size()
            if p.grad is not None:
                out["gradient_bytes"][branch] += p.grad.numel() * p.grad.element_size()
            for o in states:
                if o is not None and p in o.state:
                    out["optimizer_state_bytes"][branch] += sum(
                        t.numel() * t.element_size() for t in o.state[p].values() if isinstance(t, torch.Tensor))
    return out


def inference_peak(model: nn.Module, closure: Callable[[], torch.Tensor]) -> tuple[int, int | None]:
    """``(peak, cuda_peak)`` of one eval-mode ``no_grad`` forward of ``closure`` (see :class:`PeakMemory`)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), PeakMemory() as tracker:
            closure()
    finally:
        model.train(was_training)
    return tracker.peak, tracker.cuda_peak


def model_bytes(model: nn.Module) -> int:
    """Bytes of all parameters (frozen included) and buffers: what sits in memory before any step."""
    return parameter_bytes(model.parameters()) + parameter_bytes(model.buffers())


def _row(report: MemoryReport) -> dict[str, Any]:
    extra = report.extra
    row: dict[str, Any] = {"forwards": extra["forwards"]}
    for key in ("parameter_bytes", "gradient_bytes", "optimizer_state_bytes"):
        row.update({f"{key[:-6]}_{b}_bytes": extra[key][b] for b in BRANCHES})
        row[key] = getattr(report, key)
    row.update({f"saved_{b}_bytes": report.saved_bytes[b] for b in BRANCHES})
    row["saved_bytes"] = report.saved_bytes["total"]
    row["saved_count"] = report.saved_count["total"]
    row["probe_cache_bytes"] = extra["cached_bytes"]  # held for the partial probes (zolib.models.partial)
    row["peak_bytes"] = report.peak_bytes
    row["cuda_peak_bytes"] = report.cuda_peak_bytes
    return row


def memory_table(model_name: str = "zolib-tiny", adapter: str = "moe",
                 methods: Mapping[str, str] | Sequence[str] = MEMORY_CONFIGS, batch: int = 4, image_size: int = 32,
                 device: str | torch.device = "cpu", *, n_classes: int = 10, moe: MoEConfig | None = None,
                 **build_options: Any) -> list[dict[str, Any]]:
    """One row per configuration of ``methods`` (``{label: method}`` or method names): bytes of one
    step of a fresh optimizer on a randomly initialised ``model_name`` + ``adapter``.

    Columns: ``model, adapter, batch, image_size, device, config, method, forwards``;
    ``parameter_* / gradient_* / optimizer_state_* / saved_*`` bytes per branch (``_vision``,
    ``_text``) and in total; ``saved_count``; ``peak_bytes`` (step, PeakMemory) and
    ``cuda_peak_bytes`` (CUDA allocator, else None); ``inference_peak_bytes`` /
    ``inference_cuda_peak_bytes`` (eval ``no_grad`` forward, same batch); ``model_bytes`` (all
    weights and buffers); ``step_over_inference`` (peak / inference peak) and ``peak_over_fo``,
    ``saved_over_fo``, ``cuda_peak_over_fo`` (None without FO among ``methods`` or on CPU).
    ``moe`` defaults to ``MoEConfig(bottleneck=16)`` for ``zolib-tiny``; ``build_options`` go to
    :func:`~zolib.models.build_adapted_clip` (e.g. ``lora=LoRAConfig(rank=8)``). See
    notebooks/06_memory.ipynb.
    """
    labelled = dict(methods) if isinstance(methods, Mapping) else {m: m for m in methods}
    if moe is None:
        moe = MoEConfig(bottleneck=16) if model_name == "zolib-tiny" else MoEConfig()
    torch.manual_seed(0)
    model = build_adapted_clip(model_name, "none", adapter, moe=moe, device=device, **build_options).train()
    images, tokens, labels = clip_batch(model_name, batch, image_size, device, n_classes)

    def closure() -> torch.Tensor:
        return clip_loss(model, images, tokens, labels)

    inf_peak, inf_cuda = inference_peak(model, closure)
    base = dict(model=model_name, adapter=adapter, batch=batch, image_size=image_size,
                device=str(torch.device(device)), model_bytes=model_bytes(model))
    rows = []
    for label, method in labelled.items():
        opt, report = measure_method(model, closure, method)
        del opt
        row = {**base, "config": label, "method": method, **_row(report), "inference_peak_bytes": inf_peak,
               "inference_cuda_peak_bytes": inf_cuda}
        row["step_over_inference"] = row["peak_bytes"] / inf_peak if inf_peak else None
        rows.append(row)
        model.zero_grad(set_to_none=True)
    fo = next((r for r in rows if r["method"] == "fo"), None)
    for r in rows:
        for key in ("peak", "saved", "cuda_peak"):
            num, den = r[f"{key}_bytes"], fo[f"{key}_bytes"] if fo else None
            r[f"{key}_over_fo"] = num / den if num is not None and den else None
    return rows


def _random_closure(model: nn.Module, batch: int, image_size: int | None) -> Callable[[], torch.Tensor]:
    """The loss on a random batch (:func:`clip_batch`) sized for ``model``."""
    import open_clip
    size = image_size or getattr(model.visual, "image_size", 224)
    size = size[0] if isinstance(size, (tuple, list)) else size
    device = next(model.parameters()).device
    images, _, labels = clip_batch("zolib-tiny", batch, size, device)
    tokens = open_clip.tokenize([f"a bad photo of a {c}." for c in CLASSES],
                                context_length=model.context_length).to(device)
    return lambda: clip_loss(model, images, tokens, labels)


def predict_mask_memory(model: nn.Module, mask: Mapping[str, Sequence[bool]] | str,
                        closure: Callable[[], torch.Tensor] | None = None, *, batch: int = 4,
                        image_size: int | None = None) -> dict[str, Any]:
    """Measured bytes of one step of the ZO ``mask`` (or a method name) on ``model``.

    ``mask``: ``{"vision": [True = ZO] * L, "text": [...]}`` (any adapted CLIP: L is its layer
    count) or a method such as ``"hop-odd-vision"``. Without ``closure`` a random batch of
    ``batch`` images (``image_size`` px, default the model's) is used. Returns ``method``,
    ``saved_vision_bytes``, ``saved_text_bytes``, ``saved_bytes``, ``gradient_bytes``,
    ``optimizer_state_bytes``, ``lowest_fo_layer`` per branch (None if the branch is all ZO) and
    ``forwards``. A branch saves activations for every layer from its lowest FO layer up (and the
    layers above it in the forward order), so a mask with only the last layer FO saves least.
    See notebooks/06_memory.ipynb. Peak tracking is off (saved bytes are what it is about).
    """
    method = mask if isinstance(mask, str) else custom(mask)
    if closure is None:
        closure = _random_closure(model, batch, image_size)
    opt, report = measure_method(model, closure, method, peak=False)
    lowest: dict[str, int | None] = dict.fromkeys(BRANCHES)
    for g in opt.param_groups:
        branch, layer = g["unit"]
        if g["mode"] == "fo" and (lowest[branch] is None or layer < lowest[branch]):
            lowest[branch] = layer
    model.zero_grad(set_to_none=True)
    return {"method": method, **{f"saved_{b}_bytes": report.saved_bytes[b] for b in BRANCHES},
            "saved_bytes": report.saved_bytes["total"], "gradient_bytes": report.gradient_bytes,
            "optimizer_state_bytes": report.optimizer_state_bytes,
            "lowest_fo_layer": lowest, "forwards": report.extra["forwards"]}


def fo_layer_sweep(model: nn.Module, branch: str = "vision", closure: Callable[[], torch.Tensor] | None = None,
                   **kwargs: Any) -> list[dict[str, Any]]:
    """For each layer k of ``branch``: saved bytes of the mask "only layer k of ``branch`` FO, every
    other unit of both branches ZO" (:func:`predict_mask_memory`). See notebooks/06_memory.ipynb."""
    n = {b: sum(1 for (bb, _) in trainable_units(model) if bb == b) for b in BRANCHES}
    rows = []
    for k in range(n[branch]):
        mask = {b: [not (b == branch and layer == k) for layer in range(n[b])] for b in BRANCHES}
        rows.append({"branch": branch, "fo_layer": k, **predict_mask_memory(model, mask, closure, **kwargs)})
    return rows


def rows_by(rows: Iterable[dict[str, Any]], *keys: str) -> dict[tuple, dict[str, Any]]:
    """Index rows by the values of ``keys`` (e.g. ``("adapter", "config")``)."""
    return {tuple(r[k] for k in keys): r for r in rows}


def extrapolate_batch(row: Mapping[str, Any], batch: int) -> dict[str, Any]:
    """A :func:`memory_table` row's step bytes estimated at another ``batch``, labelled "extrapolated".

    Assumes what the harness guarantees: the images (and so every activation of the vision
    encoder) scale linearly with the batch, while the text encoder sees the same ``n_classes``
    prompts whatever the batch; parameter, gradient and optimizer-state bytes do not change.
    Returns ``saved_vision_bytes``, ``saved_text_bytes`` and ``held_bytes`` (gradients + optimizer
    state + saved activations, the part of a step's memory that FO and ZO differ in).
    See notebooks/06_memory.ipynb, which checks it against a measured batch where it can.
    """
    scale = batch / row["batch"]
    vision, text = row["saved_vision_bytes"] * scale, row["saved_text_bytes"]
    return {"source": "extrapolated", "batch": batch, "config": row["config"], "adapter": row["adapter"],
            "saved_vision_bytes": vision, "saved_text_bytes": text,
            "held_bytes": row["gradient_bytes"] + row["optimizer_state_bytes"] + vision + text}


def run_footprint(cfg, batch: int = 4, repeats: int = 3) -> dict[str, Any]:
    """Bytes and cost of one training step of an experiment config (any method, peers included) on its
    model with random weights: ``peak_bytes`` (PeakMemory), ``saved_bytes``, ``gradient_bytes``,
    ``optimizer_state_bytes``, ``forwards`` per step and ``step_over_forward`` (median step time over
    median inference forward, timed back to back). The classifier (text prompts, head, prompt context)
    and the optimizer are the harness's own (:func:`zolib.cl.trainer.make_optimizer`). Notebook 07."""
    import statistics
    import time

    import torch.nn.functional as F

    from ..cl.trainer import build_model, classifier, make_optimizer, resolve_device
    from ..data.synthetic import class_names
    device = resolve_device(cfg.device)
    torch.manual_seed(0)
    size = 32 if cfg.model_name == "zolib-tiny" else 224
    names = class_names() if cfg.benchmark == "synthetic" else [f"class {i}" for i in range(100)]

    class Fake:  # the parts of a benchmark that a classifier reads
        template = "a photo of a {}."

        def __init__(self):
            self.class_names = names

        def prompts(self, ids):
            return [self.template.format(self.class_names[c]) for c in ids]
    bench = Fake()
    model = build_model(cfg, device, pretrained="none", bench=bench).train()
    classes = list(range(10))
    logits = classifier(model, bench, classes, tokenizer(cfg.model_name), device)
    images = torch.randn(batch, 3, size, size, device=device)
    labels = (torch.arange(batch) % len(classes)).to(device)

    def closure() -> torch.Tensor:
        return F.cross_entropy(logits(images), labels)

    opt = make_optimizer(cfg, model, 100, seed=0)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizers = [o for o in (getattr(opt, "_fo", None), opt if isinstance(opt, torch.optim.Optimizer) else None)
                  if o is not None]
    result, report = measure_step(lambda: opt.step(closure), model, params, optimizers, gates=branch_gates(model))

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            closure()
        model.train()
    ratios = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step(closure)
        mid = time.perf_counter()
        forward()
        ratios.append((mid - start) / (time.perf_counter() - mid))
    return {"method": cfg.method, "peak_bytes": report.peak_bytes, "saved_bytes": report.saved_bytes["total"],
            "gradient_bytes": report.gradient_bytes, "optimizer_state_bytes": report.optimizer_state_bytes,
            "forwards": result.forwards, "step_over_forward": statistics.median(ratios), "batch": batch}
