"""Memory footprint of one training step per configuration: the table of notebooks/06_memory.ipynb.

Every measurement here steps the harness's own optimizer (:func:`zolib.cl.factory.make_optimizer`) on
a random-weight model of the config's architecture, with its benchmark's real class names and prompt
(:mod:`zolib.cl.randomstep`, the same step the dry run takes). For each (adapter, method) the rows
give, for one step on one batch:

- parameter, gradient and optimizer-state bytes of the trainable (adapter) parameters, total and
  per branch (``vision`` = ``model.visual``'s adapters, ``text`` = the text transformer's);
- bytes of the tensors autograd saved for backward, per branch (:class:`~.memory.SavedTensors`);
- the peak of live bytes of a steady-state step (the optimizer's second, :func:`measure`): what it
  allocates (:class:`~.memory.PeakMemory`) plus the optimizer state it holds (parameters and the batch,
  which exist before the step, are not counted) and, on CUDA, the allocator's
  ``max_memory_allocated`` over the step (weights included: the number the paper most likely
  reports), else None;
- the same two peaks for an inference-only forward (eval mode, ``no_grad``) on the same batch,
  and the ratios step peak / inference peak and configuration / FO.

:func:`predict_mask_memory` measures one step of any 2 x L ZO mask, to show that layer-wise ZO
inside a branch still backpropagates through every layer above the lowest FO layer of it.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..cl.config import ExperimentConfig
from ..cl.randomstep import RandomStep, measurement_config, random_step
from ..models.specs import model_spec
from ..models.units import BRANCHES
from ..optim.methods import custom, label
from .memory import MemoryReport, PeakMemory, branch_gates, measure_step, parameter_bytes, tensor_bytes
from .timing import paired_ratio

MEMORY_METHODS = ("fo", "dual", "vision", "language", "hop-odd-vision", "hop-even-both")
"""The configurations notebook 06 compares (labels: :func:`zolib.optim.methods.label`)."""


def state_bytes(opt: Any, params: Iterable[torch.Tensor]) -> int:
    """Bytes of the optimizer-state tensors ``params`` hold in ``opt`` (``opt.state_of``: every zolib optimizer)."""
    return sum(tensor_bytes(t) for p in params for t in opt.state_of(p).values() if isinstance(t, torch.Tensor))


def measure(step: RandomStep, cfg: ExperimentConfig | None = None, *, peak: bool = True) -> tuple[Any, MemoryReport]:
    """One fresh optimizer step of ``cfg`` (default: the step's own) on ``step``'s model and batch, measured
    by :func:`~.memory.measure_step` with per-branch gates.

    Returns ``(optimizer, report)``; ``report.extra`` holds ``forwards`` (per step), ``loss``, ``cached_bytes``
    (held for partial probes) and the per-branch ``parameter_bytes`` / ``gradient_bytes`` /
    ``optimizer_state_bytes``. ``report.optimizer_state_bytes`` is the optimizer's whole state after the
    step (``state_bytes`` of zolib's optimizers: FO moments, ZO momentum or Adam moments, CMA-ES's
    covariance).

    The measured step is the optimizer's **second**: the first creates its state, and every later step
    runs with that state held. ``report.peak_bytes`` is that step's peak of newly allocated bytes plus the
    optimizer state it holds on entry (``extra["state_at_entry"]``), so an optimizer with state (ZO-Adam,
    momentum, AdamW's moments) peaks above one without it, as it does on a device.
    """
    opt = step.optimizer(cfg)
    opt.step(step.closure)  # the first step creates the optimizer's state
    held = opt.state_bytes()
    params = [p for p in step.model.parameters() if p.requires_grad]
    result, report = measure_step(lambda: opt.step(step.closure), step.model, params, [],
                                  gates=branch_gates(step.model), peak=peak)
    report.optimizer_state_bytes = opt.state_bytes()
    if report.peak_bytes is not None:
        report.peak_bytes += held
    report.extra["state_at_entry"] = held
    report.extra.update(forwards=result.forwards, loss=result.loss, cached_bytes=result.info.get("cached_bytes", 0),
                        **per_branch_bytes(step.model, opt))
    return opt, report


def per_branch_bytes(model: nn.Module, opt: Any) -> dict[str, dict[str, int]]:
    """Parameter, gradient and optimizer-state bytes of the trainable (branch, layer) units, per branch."""
    from ..models import trainable_units
    out: dict[str, dict[str, int]] = {k: dict.fromkeys(BRANCHES, 0) for k in
                                      ("parameter_bytes", "gradient_bytes", "optimizer_state_bytes")}
    for key, params in trainable_units(model).items():
        if key[0] not in BRANCHES:  # a classifier head or a prompt context: counted in the totals only
            continue
        for p in params.values():
            out["parameter_bytes"][key[0]] += tensor_bytes(p)
            if p.grad is not None:
                out["gradient_bytes"][key[0]] += tensor_bytes(p.grad)
            out["optimizer_state_bytes"][key[0]] += state_bytes(opt, [p])
    return out


def inference_peak(step: RandomStep) -> tuple[int, int | None]:
    """``(peak, cuda_peak)`` of one eval-mode ``no_grad`` forward of the step's batch (see :class:`PeakMemory`)."""
    with PeakMemory() as tracker:
        step.forward()
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


def memory_table(model_name: str = "zolib-tiny", adapter: str = "moe", methods: Sequence[str] = MEMORY_METHODS,
                 batch: int = 4, device: str = "cpu") -> list[dict[str, Any]]:
    """One row per method of ``methods``: bytes of one step of a fresh optimizer on a randomly initialised
    ``model_name`` + ``adapter`` (:func:`zolib.cl.randomstep.random_step` of
    :func:`~zolib.cl.randomstep.measurement_config`: the benchmark's first task, 10 class prompts).

    Columns: ``model, adapter, batch, image_size, device, config`` (the method's label), ``method,
    forwards``; ``parameter_* / gradient_* / optimizer_state_* / saved_*`` bytes per branch (``_vision``,
    ``_text``) and in total; ``saved_count``; ``peak_bytes`` (step, PeakMemory) and ``cuda_peak_bytes``
    (CUDA allocator, else None); ``inference_peak_bytes`` / ``inference_cuda_peak_bytes`` (eval ``no_grad``
    forward, same batch); ``model_bytes`` (all weights and buffers); ``step_over_inference`` (peak /
    inference peak) and ``peak_over_fo``, ``saved_over_fo``, ``cuda_peak_over_fo`` (None without FO among
    ``methods`` or on CPU). See notebooks/06_memory.ipynb.
    """
    step = random_step(measurement_config(model_name, adapter, device=device), batch)
    inf_peak, inf_cuda = inference_peak(step)
    base = dict(model=model_name, adapter=adapter, batch=batch, image_size=step.shape.image_size,
                device=str(step.images.device), model_bytes=model_bytes(step.model))
    rows = []
    for method in methods:
        opt, report = measure(step, step.cfg.with_method(method))
        del opt
        row = {**base, "config": label(method), "method": method, **_row(report), "inference_peak_bytes": inf_peak,
               "inference_cuda_peak_bytes": inf_cuda}
        row["step_over_inference"] = row["peak_bytes"] / inf_peak if inf_peak else None
        rows.append(row)
        step.model.zero_grad(set_to_none=True)
    fo = next((r for r in rows if r["method"] == "fo"), None)
    for r in rows:
        for key in ("peak", "saved", "cuda_peak"):
            num, den = r[f"{key}_bytes"], fo[f"{key}_bytes"] if fo else None
            r[f"{key}_over_fo"] = num / den if num is not None and den else None
    return rows


def predict_mask_memory(step: RandomStep, mask: Mapping[str, Sequence[bool]] | str) -> dict[str, Any]:
    """Measured bytes of one step of the ZO ``mask`` (or a method name) on ``step``'s model and batch.

    ``mask``: ``{"vision": [True = ZO] * L, "text": [...]}`` or a method such as ``"hop-odd-vision"``.
    Returns ``method``, ``saved_vision_bytes``, ``saved_text_bytes``, ``saved_bytes``, ``gradient_bytes``,
    ``optimizer_state_bytes``, ``lowest_fo_layer`` per branch (None if the branch is all ZO) and
    ``forwards``. A branch saves activations for every layer from its lowest FO layer up (and the
    layers above it in the forward order), so a mask with only the last layer FO saves least.
    See notebooks/06_memory.ipynb. Peak tracking is off (saved bytes are what it is about).
    """
    method = mask if isinstance(mask, str) else custom(mask)
    opt, report = measure(step, step.cfg.with_method(method), peak=False)
    lowest: dict[str, int | None] = dict.fromkeys(BRANCHES)
    for g in opt.param_groups:
        branch, layer = g["unit"]
        if g["mode"] == "fo" and (lowest[branch] is None or layer < lowest[branch]):
            lowest[branch] = layer
    step.model.zero_grad(set_to_none=True)
    return {"method": method, **{f"saved_{b}_bytes": report.saved_bytes[b] for b in BRANCHES},
            "saved_bytes": report.saved_bytes["total"], "gradient_bytes": report.gradient_bytes,
            "optimizer_state_bytes": report.optimizer_state_bytes,
            "lowest_fo_layer": lowest, "forwards": report.extra["forwards"]}


def fo_layer_sweep(step: RandomStep, branch: str = "vision") -> list[dict[str, Any]]:
    """For each layer k of ``branch``: saved bytes of the mask "only layer k of ``branch`` FO, every
    other unit of both branches ZO" (:func:`predict_mask_memory`). See notebooks/06_memory.ipynb."""
    layers = model_spec(step.cfg.model_name).layers
    rows = []
    for k in range(layers[branch]):
        mask = {b: [not (b == branch and layer == k) for layer in range(layers[b])] for b in BRANCHES}
        rows.append({"branch": branch, "fo_layer": k, **predict_mask_memory(step, mask)})
    return rows


def extrapolate_batch(row: Mapping[str, Any], batch: int) -> dict[str, Any]:
    """A :func:`memory_table` row's step bytes estimated at another ``batch``, labelled "extrapolated".

    Assumes what the harness guarantees: the images (and so every activation of the vision
    encoder) scale linearly with the batch, while the text encoder sees the same class prompts
    whatever the batch; parameter, gradient and optimizer-state bytes do not change.
    Returns ``saved_vision_bytes``, ``saved_text_bytes`` and ``held_bytes`` (gradients + optimizer
    state + saved activations, the part of a step's memory that FO and ZO differ in).
    See notebooks/06_memory.ipynb, which checks it against a measured batch where it can.
    """
    scale = batch / row["batch"]
    vision, text = row["saved_vision_bytes"] * scale, row["saved_text_bytes"]
    return {"source": "extrapolated", "batch": batch, "config": row["config"], "adapter": row["adapter"],
            "saved_vision_bytes": vision, "saved_text_bytes": text,
            "held_bytes": row["gradient_bytes"] + row["optimizer_state_bytes"] + vision + text}


def run_footprint(cfg: ExperimentConfig, batch: int = 4, repeats: int = 3) -> dict[str, Any]:
    """Bytes and cost of one training step of an experiment config (any method, peers included) on its
    model with random weights (:func:`zolib.cl.randomstep.random_step`: the benchmark's real class names,
    prompt and first task; the harness's classifier and optimizer): ``peak_bytes`` (PeakMemory),
    ``saved_bytes``, ``gradient_bytes``, ``optimizer_state_bytes``, ``forwards`` per step and
    ``step_over_forward`` (:func:`zolib.analysis.timing.paired_ratio` of a step over an inference
    forward). Notebook 07."""
    step = random_step(cfg, batch)
    opt, report = measure(step)
    ratio = paired_ratio(lambda: opt.step(step.closure), step.forward, repeats)
    return {"method": cfg.method, "peak_bytes": report.peak_bytes, "saved_bytes": report.saved_bytes["total"],
            "gradient_bytes": report.gradient_bytes, "optimizer_state_bytes": report.optimizer_state_bytes,
            "forwards": report.extra["forwards"], "step_over_forward": ratio, "batch": batch}


# --------------------------------------------------------------------------- notebook 06's tables

BRANCH_METHODS = ("fo", "dual", "vision", "language")  # the configurations the paper reports memory for


def measure_grid(models: Sequence[str], batch_sizes: Mapping[str, Sequence[int]], adapters: Sequence[str],
                 methods: Sequence[str], device: str = "cpu"):
    """:func:`memory_table` for every model, batch and adapter: one DataFrame (notebook 06's main table)."""
    import pandas as pd
    return pd.DataFrame([row for name in models for batch in batch_sizes[name] for adapter in adapters
                         for row in memory_table(name, adapter, methods, batch, device)])


def ratio_table(table):
    """Each of FO, Dual, Vision and Language relative to FO, per (model, batch, adapter): the step peak, the
    step peak plus the weights, and the CUDA peak, beside the paper's reported ratio
    (:func:`zolib.paper.memory_ratios`; reported, never computed)."""
    import pandas as pd

    from .. import paper
    rows = []
    for (name, batch, adapter), part in table.groupby(["model", "batch", "adapter"], sort=False):
        fo = part[part.method == "fo"].iloc[0]
        for _, r in part.iterrows():
            rows.append({"model": name, "batch": batch, "adapter": adapter, "config": r.config, "method": r.method,
                         "ours: step peak / FO": r.peak_over_fo,
                         "ours: + weights / FO": (r.model_bytes + r.peak_bytes) / (fo.model_bytes + fo.peak_bytes),
                         "ours: CUDA peak / FO": r.cuda_peak_over_fo})
    reported = pd.DataFrame([{"adapter": a, "method": m, "reported (paper) / FO": v}
                             for a in ("moe", "lora") for m, v in paper.memory_ratios(a).items()])
    side = pd.DataFrame(rows).merge(reported, on=["adapter", "method"], how="left")
    return side[side.method.isin(BRANCH_METHODS)].round(3)


def ratio_rows(side, adapters: Sequence[str]):
    """The bars of the ratio figure: one row per (adapter, configuration, source), ours (step peak, with the
    weights, CUDA peak where measured) and the paper's reported ratio (hatched in the figure)."""
    import pandas as pd

    from .. import paper
    rows = []
    for _, r in side[side.method != "fo"].iterrows():
        source = f"ours, {r.model} b{r.batch}"
        for what, column in (("step peak", "ours: step peak / FO"), ("+ weights", "ours: + weights / FO"),
                             ("CUDA peak", "ours: CUDA peak / FO")):
            if pd.notna(r[column]):
                rows.append({"adapter": r.adapter, "config": label(r.method), "source": f"{source}: {what}",
                             "ratio": r[column]})
    for adapter in adapters:
        for method, value in paper.memory_ratios(adapter).items():
            if method != "fo":
                rows.append({"adapter": adapter, "config": label(method), "source": "reported (paper)", "ratio": value})
    return pd.DataFrame(rows)


def extrapolated(table, batches: Sequence[int]):
    """Gradients + optimizer state + saved activations relative to FO, extrapolated from the main table's
    first batch of each model to each of ``batches`` (:func:`extrapolate_batch`)."""
    import pandas as pd
    first = table[table.batch == table.groupby("model").batch.transform("first")]
    rows = [{"model": r.model, "measured at batch": r.batch, **extrapolate_batch(r, b)}
            for _, r in first.iterrows() for b in batches]
    out = pd.DataFrame(rows)
    fo = out[out.config == "FO"].set_index(["model", "batch", "adapter"]).held_bytes
    out["held / FO"] = [h / fo[(m, b, a)] for m, b, a, h in zip(out.model, out.batch, out.adapter, out.held_bytes)]
    return out


MIB_COLUMNS = {"parameter_bytes": "params", "gradient_bytes": "grads", "optimizer_state_bytes": "opt state",
               "saved_vision_bytes": "saved vision", "saved_text_bytes": "saved text", "probe_cache_bytes": "probe cache",
               "peak_bytes": "step peak", "inference_peak_bytes": "inference peak", "cuda_peak_bytes": "CUDA peak"}


def mib_table(table):
    """:func:`measure_grid`'s table for reading: the byte columns in MiB, step / inference and peak / FO."""
    shown = table[["model", "batch", "adapter", "config", "forwards"]].copy()
    for column, name in MIB_COLUMNS.items():
        shown[name + " MiB"] = (table[column].astype(float) / 2 ** 20).round(3)
    shown["step / inference"] = table.step_over_inference.round(2)
    shown["peak / FO"] = table.peak_over_fo.round(3)
    return shown


def records(table, side, extra=None) -> dict[str, Any]:
    """Notebook 06's results-JSON entries: per (model, batch, adapter, method) the saved bytes per branch,
    the step peak and step peak + weights over FO's (``side``: :func:`ratio_table`), the CUDA peak where
    measured, and the extrapolated held bytes over FO's (``extra``: :func:`extrapolated`)."""
    import pandas as pd
    out: dict[str, Any] = {}
    for _, r in side[side.method != "fo"].iterrows():
        key = f"{r.model}/b{r.batch}/{r.adapter}/{r.method}"
        out.update({f"{key}/peak_over_fo": float(r["ours: step peak / FO"]),
                    f"{key}/with_weights_over_fo": float(r["ours: + weights / FO"])})
    for _, r in table.iterrows():
        key = f"{r.model}/b{r.batch}/{r.adapter}/{r.method}"
        out[f"{key}/saved_bytes"] = {"vision": int(r.saved_vision_bytes), "text": int(r.saved_text_bytes)}
        if pd.notna(r.cuda_peak_bytes):
            out[f"{key}/cuda_peak_bytes"] = int(r.cuda_peak_bytes)
    for _, r in (extra if extra is not None else pd.DataFrame()).iterrows():
        out[f"{r.model}/{r.adapter}/extrapolated_b{r.batch}/{r.config}_held_over_fo"] = float(r["held / FO"])
    return out


def fo_layer_table(step: RandomStep):
    """:func:`fo_layer_sweep` of both branches as one table (notebook 06's lowest-FO-layer figure)."""
    import pandas as pd
    return pd.DataFrame([r for branch in BRANCHES for r in fo_layer_sweep(step, branch)])
