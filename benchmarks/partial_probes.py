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

Every ratio is the median over repeats of two timings taken back to back (so both see the same
machine load); where no probe can skip anything (every probe perturbs layer 0 of both branches:
Dual, MoZO's hop-even-both) the optimizer runs full forwards and the two steps are the same code.

    PYTHONPATH=. .venv/bin/python benchmarks/partial_probes.py --models tiny vitb16 --repeats 5

Writes a markdown table to stdout and JSON (with zolib.runtime.provenance()) to --out.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zolib.analysis import clip_batch, clip_loss  # noqa: E402
from zolib.models import MoEConfig, build_adapted_clip  # noqa: E402
from zolib.optim import build_optimizer  # noqa: E402
from zolib.optim.directions import step_seed  # noqa: E402
from zolib.optim.hybrid import step_modes  # noqa: E402
from zolib.optim.zo import perturbed_loss  # noqa: E402
from zolib.runtime import atomic_write_json, provenance  # noqa: E402

MODELS = {"tiny": ("zolib-tiny", MoEConfig(bottleneck=16), 32, 32), "vitb16": ("ViT-B-16", MoEConfig(), 224, 4)}
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [
    ("Dual", "dual", {}),
    ("Vision", "vision", {}),
    ("Language", "language", {}),
    ("Hop-odd-vision", "hop-odd-vision", {}),
    ("Suffix6-vision", "suffix6-vision", {}),
    ("Prefix6-language", "prefix6-language", {}),
    ("Suffix6-both", "suffix6-both", {}),
    ("MoZO (hop-even-both)", "mozo", {}),
    ("Language two-sided q=2", "language", {"estimator": "two-sided", "q": 2, "rule": "aggressive"}),
    ("Vision block-wise", "vision", {"perturbation": "block", "rule": "aggressive"}),
]


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_ratio(fn: Callable[[], Any], reference: Callable[[], Any], repeats: int) -> float:
    """Median over repeats of time(fn) / time(reference), the two timed back to back each time
    (so both see the same machine load)."""
    fn(), reference()
    ratios = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        mid = time.perf_counter()
        reference()
        ratios.append((mid - start) / (time.perf_counter() - mid))
    return statistics.median(ratios)


def part_times(model, images, tokens, closure, repeats: int) -> dict[str, float]:
    """Seconds of the whole forward and of its parts, in the probes' conditions."""
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
    groups = opt._zo
    entries = [e for g in groups for e in g.entries]
    with step_modes(opt.model, opt._train), torch.inference_mode():
        if opt._partial:
            with opt._partial.record():
                closure()

        def probe():
            return perturbed_loss(closure, entries, lambda e: groups[e.group].eps, step_seed(0, 0), 0,
                                  opt.zo.distribution, 0, opt._probe(groups))

        def full():
            with step_modes(opt.model, []):
                closure()
        share = paired_ratio(probe, full, repeats)
    if opt._partial:
        opt._partial.clear()
    return share


def bench_model(key: str, batch: int | None, repeats: int) -> dict[str, Any]:
    name, moe, size, default_batch = MODELS[key]
    batch = batch or default_batch
    torch.manual_seed(0)
    model = build_adapted_clip(name, "none", "moe", moe=moe).train()
    images, tokens, labels = clip_batch(name, batch, size)

    def closure() -> torch.Tensor:
        return clip_loss(model, images, tokens, labels)

    parts = part_times(model, images, tokens, closure, repeats)
    rows = []
    for label, method, options in CONFIGS:
        def forward():
            with step_modes(model, []), torch.inference_mode():
                closure()
        steps = {}
        for partial in (False, True):
            opt = build_optimizer(model, method, partial=partial, **options)
            steps[partial] = paired_ratio(lambda: opt.step(closure), forward, repeats)
        opt = build_optimizer(model, method, **options)
        lowest = opt._lowest([g.key for g in opt._zo])
        share = limit(parts, lowest)
        probe = probe_share(opt, closure, repeats)
        rows.append({"config": label, "method": method, "options": options, "forwards": opt.forwards_per_step,
                     "lowest_perturbed_layer": lowest, "limit": share, "probe": probe, "probe_over_limit": probe / share,
                     "step_before": steps[False], "step_after": steps[True]})
        print(f"  {key} {label}: probe {probe:.2f} vs limit {share:.2f}; step {steps[False]:.2f} -> {steps[True]:.2f}",
              file=sys.stderr, flush=True)
    return {"model": name, "batch": batch, "image_size": size, "parts_s": parts, "rows": rows}


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
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: tiny 32, vitb16 4)")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats (median of paired ratios)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", default="build/benchmarks/partial_probes.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [bench_model(key, args.batch, args.repeats) for key in args.models]
    print(markdown(results))
    atomic_write_json(args.out, {"args": vars(args), "provenance": provenance(), "results": results})
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
