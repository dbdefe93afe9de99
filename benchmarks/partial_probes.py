"""Partial probes: each ZO probe against its limit, and whole steps before and after (not a timed test).

A probe (a perturbed forward, or a conservative candidate) needs only the part of the model its
perturbation changes (zolib.models.partial). For each configuration this reports:

- ``limit``: the share of one inference forward that part takes: the perturbed branches from their
  lowest perturbed layer up, plus the logits. It is computed from forwards timed per part in the
  probes' own conditions (eval mode, inference_mode, fused-attention fast path off): the image and
  text encoders, and their 12 blocks (equal in shape, so layer k starts after k/12 of them);
- ``probe / limit``: the measured probe (the point-of-use perturbation included) over that limit
  (target <= 1.1);
- ``step before`` / ``step after``: a whole optimizer step with full forwards (``partial=False``) and
  with partial probes, in forward-equivalents (step time / inference forward time).

Every ratio is :func:`zolib.analysis.timing.paired_ratio` (the median over repeats of two timings taken
back to back, after a warm-up), and every step the harness's own on a random-weight model
(:mod:`zolib.cl.randomstep`); where no probe can skip anything (every probe perturbs layer 0 of both branches:
Dual, MoZO's hop-even-both) the optimizer runs full forwards and the two steps are the same code.

    PYTHONPATH=. .venv/bin/python benchmarks/partial_probes.py --models zolib-tiny ViT-B-16 --repeats 5

Writes a markdown table to stdout and JSON (with zolib.runtime.provenance()) to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zolib.analysis.timing import median_time, paired_ratio  # noqa: E402
from zolib.cl.randomstep import measurement_config, random_step  # noqa: E402
from zolib.models import MODELS  # noqa: E402
from zolib.optim.directions import step_seed  # noqa: E402
from zolib.optim.hybrid import step_modes  # noqa: E402
from zolib.optim.methods import label  # noqa: E402
from zolib.optim.zo import perturbed_loss  # noqa: E402
from zolib.runtime import atomic_write_json, provenance  # noqa: E402

DEFAULT_BATCH = {"zolib-tiny": 32, "ViT-B-16": 4}
CONFIGS: list[tuple[str, dict[str, Any]]] = [  # (method, config fields)
    ("dual", {}), ("vision", {}), ("language", {}), ("hop-odd-vision", {}), ("suffix6-vision", {}),
    ("prefix6-language", {}), ("suffix6-both", {}), ("mozo", {}),
    ("language", {"estimator": "two-sided", "q": 2, "rule": "aggressive"}),
    ("vision", {"perturbation": "block", "rule": "aggressive"}),
]


def part_times(step, repeats: int) -> dict[str, float]:
    """Seconds of the whole forward and of its parts, in the probes' conditions."""
    model, images, closure = step.model, step.images, step.closure
    tokens = step.text_tokens
    inputs = {}
    hooks = [model.visual.transformer.register_forward_pre_hook(lambda m, a: inputs.__setitem__("v", a[0])),
             model.transformer.register_forward_pre_hook(lambda m, a: inputs.__setitem__("t", a[0]))]
    with step_modes(model, []), torch.inference_mode():
        closure()
        for h in hooks:
            h.remove()
        return {"full": median_time(closure, repeats),
                "image": median_time(lambda: model.encode_image(images, normalize=True), repeats),
                "text": median_time(lambda: model.encode_text(tokens, normalize=True), repeats),
                "vision_blocks": median_time(lambda: model.visual.transformer(inputs["v"]), repeats),
                "text_blocks": median_time(lambda: model.transformer(inputs["t"]), repeats)}


def limit(parts: dict[str, float], lowest: dict[str, int | None], layers: int = 12) -> float:
    """Share of the full forward that a probe starting at ``lowest[branch]`` needs."""
    head = max(0.0, parts["full"] - parts["image"] - parts["text"])
    need = head
    for branch, enc, blocks in (("vision", "image", "vision_blocks"), ("text", "text", "text_blocks")):
        k = lowest.get(branch)
        if k is not None:
            need += parts[enc] - parts[blocks] * k / layers
    return need / parts["full"]


def probe_share(opt, closure, repeats: int) -> float:
    """One joint probe (perturbation + partial forward, as the step runs it) over one full forward."""
    groups = opt.zo_groups
    entries = [e for g in groups for e in g.entries]
    partial = opt.partial_forward
    with step_modes(opt.model, opt.train_modules), torch.inference_mode():
        if partial:
            with partial.record():
                closure()

        def probe():
            return perturbed_loss(closure, entries, lambda e: groups[e.group].eps, step_seed(0, 0), 0,
                                  opt.zo.distribution, 0, opt.probe_context())

        def full():
            with step_modes(opt.model, []):
                closure()
        share = paired_ratio(probe, full, repeats)
    if partial:
        partial.clear()
    return share


def bench_model(name: str, batch: int | None, repeats: int) -> dict[str, Any]:
    batch = batch or DEFAULT_BATCH[name]
    step = random_step(measurement_config(name), batch)
    parts = part_times(step, repeats)

    def forward():
        with step_modes(step.model, []), torch.inference_mode():
            step.closure()
    rows = []
    for method, fields in CONFIGS:
        cfg = step.cfg.with_method(method, **fields)
        steps = {}
        for partial in (False, True):
            opt = step.optimizer(cfg, partial=partial)
            steps[partial] = paired_ratio(lambda: opt.step(step.closure), forward, repeats)
        opt = step.optimizer(cfg)
        lowest = opt.lowest_perturbed()
        share = limit(parts, lowest)
        probe = probe_share(opt, step.closure, repeats)
        config = ", ".join([label(method), *(f"{k} {v}" for k, v in fields.items())])
        rows.append({"config": config, "method": method, "options": fields, "forwards": opt.forwards_per_step,
                     "lowest_perturbed_layer": lowest, "limit": share, "probe": probe, "probe_over_limit": probe / share,
                     "step_before": steps[False], "step_after": steps[True]})
        print(f"  {name} {config}: probe {probe:.2f} vs limit {share:.2f}; step {steps[False]:.2f} -> {steps[True]:.2f}",
              file=sys.stderr, flush=True)
    return {"model": name, "batch": batch, "image_size": step.shape.image_size, "parts_s": parts, "rows": rows}


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| model (batch) | config | lowest perturbed layer (vision, text) | forwards/step | limit | probe | "
             "probe / limit | step before | step after |", "|" + "---|" * 9]
    for res in results:
        for r in res["rows"]:
            low = r["lowest_perturbed_layer"]
            lines.append(f"| {res['model']} ({res['batch']}) | {r['config']} | {low['vision']}, {low['text']} | "
                         f"{r['forwards']} | {r['limit']:.2f} | {r['probe']:.2f} | {r['probe_over_limit']:.2f} | "
                         f"{r['step_before']:.2f} | {r['step_after']:.2f} |")
    for res in results:
        p = res["parts_s"]
        lines.append(f"\n{res['model']}: forward {p['full'] * 1000:.1f} ms = image {p['image'] * 1000:.1f} "
                     f"(blocks {p['vision_blocks'] * 1000:.1f}) + text {p['text'] * 1000:.1f} "
                     f"(blocks {p['text_blocks'] * 1000:.1f}) + logits; "
                     f"probes within 1.1 x limit: {sum(r['probe_over_limit'] <= 1.1 for r in res['rows'])}"
                     f"/{len(res['rows'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(DEFAULT_BATCH))
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: zolib-tiny 32, ViT-B-16 4)")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats (median of paired ratios)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default="build/benchmarks/partial_probes.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [bench_model(name, args.batch, args.repeats) for name in args.models]
    print(markdown(results))
    atomic_write_json(args.out, {"args": vars(args), "provenance": provenance(), "results": results})
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
