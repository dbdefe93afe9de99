"""Cost of one optimizer step per method, in forward-equivalents and bytes (not a timed test).

For each model and configuration: median step time / median inference forward (no_grad, same
batch, eval mode; the two timed alternately), forwards per step, bytes saved for backward per encoder, parameter /
gradient / optimizer-state bytes, and the peak of live bytes allocated inside the step
(:class:`zolib.analysis.PeakMemory`). Peer: the ``infty`` package's ZeroFlow optimizer
(``zo_sgd``, two-sided, q = 1, ``memory_efficient=True``, plain SGD as its base optimizer) on
the same model and batch, against our two-sided Dual ZO* step.

    PYTHONPATH=. .venv/bin/python benchmarks/zo_step.py --models tiny vitb16 --repeats 3

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

from zolib.analysis import branch_gates, clip_batch, clip_loss, measure_step  # noqa: E402
from zolib.models import MoEConfig, build_adapted_clip  # noqa: E402
from zolib.optim import build_optimizer  # noqa: E402
from zolib.runtime import atomic_write_json, provenance  # noqa: E402

MODELS = {  # name -> (open_clip name, MoE config, image size, default batch)
    "tiny": ("zolib-tiny", MoEConfig(bottleneck=16), 32, 32),
    "vitb16": ("ViT-B-16", MoEConfig(), 224, 4),
}
CONFIGS: list[tuple[str, str, dict[str, Any]]] = [  # label, method, build_optimizer options
    ("FO", "fo", {}),
    ("Dual", "dual", {}),
    ("Dual ZO* one-sided", "dual", {"rule": "aggressive"}),
    ("Vision", "vision", {}),
    ("Language", "language", {}),
    ("Vision Hop-odd", "hop-odd-vision", {}),
    ("MoZO", "mozo", {}),
    ("Dual ZO* two-sided", "dual", {"estimator": "two-sided", "rule": "aggressive"}),
]
PEER = "infty ZeroFlow zo_sgd two-sided"


def paired_times(step: Callable[[], Any], forward: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """Median step time and median forward time, interleaved (so both see the same machine
    load), after one untimed call of each."""
    step(), forward()
    steps, forwards = [], []
    for _ in range(repeats):
        for fn, times in ((forward, forwards), (step, steps)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(steps), statistics.median(forwards)


def infty_step(model, closure) -> tuple[Callable[[], Any], list[torch.optim.Optimizer]]:
    """The peer: ZeroFlow as its README sets it up, with our settings (eps 1e-3, q 1, two-sided)."""
    from infty.optim import ZeroFlow
    params = [p for p in model.parameters() if p.requires_grad]
    base = torch.optim.SGD(params, lr=1e-3)
    opt = ZeroFlow(params, base, model, {"inftyopt": "zo_sgd", "perturbation_mode": "two_side", "q": 1,
                                         "zo_eps": 1e-3, "memory_efficient": True})
    opt.set_closure(lambda: (None, [closure()]))
    return opt.step, [opt, base]


def bench_model(key: str, batch: int | None, repeats: int) -> dict[str, Any]:
    name, moe, size, default_batch = MODELS[key]
    batch = batch or default_batch
    torch.manual_seed(0)
    model = build_adapted_clip(name, "none", "moe", moe=moe).train()
    images, tokens, labels = clip_batch(name, batch, size)  # 10 class prompts (zolib.analysis.footprint)

    def closure() -> torch.Tensor:
        return clip_loss(model, images, tokens, labels)

    def inference() -> None:
        model.eval()
        with torch.no_grad():
            closure()
        model.train()

    rows = []
    for label, method, options in CONFIGS + [(PEER, "", {})]:
        model.zero_grad(set_to_none=True)
        if label == PEER:
            step, optimizers = infty_step(model, closure)
            forwards = 2
        else:
            opt = build_optimizer(model, method, **options)
            step, optimizers, forwards = (lambda opt=opt: opt.step(closure)), [opt], opt.forwards_per_step
        step_s, forward_s = paired_times(step, inference, repeats)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        _, mem = measure_step(step, model, params, optimizers, gates=branch_gates(model))
        model.train()
        rows.append(dict(config=label, method=method, forwards=forwards, step_s=step_s, forward_s=forward_s,
                         forward_equivalents=step_s / forward_s, saved_bytes=mem.saved_bytes,
                         saved_count=mem.saved_count, parameter_bytes=mem.parameter_bytes,
                         gradient_bytes=mem.gradient_bytes, optimizer_state_bytes=mem.optimizer_state_bytes,
                         peak_bytes=mem.peak_bytes, cuda_peak_bytes=mem.cuda_peak_bytes))
        print(f"  {key} {label}: {step_s:.3f} s", file=sys.stderr, flush=True)
    return dict(model=name, batch=batch, image_size=size, rows=rows, checks=checks(rows),
                inference_forward_s=statistics.median(r["forward_s"] for r in rows))


def checks(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """The targets of the benchmark brief."""
    by = {r["config"]: r for r in rows}
    ours, peer = by["Dual ZO* two-sided"], by[PEER]
    return {"aggressive one-sided step <= 2.2 forwards": by["Dual ZO* one-sided"]["forward_equivalents"] <= 2.2,
            "two-sided step no slower than infty": ours["forward_equivalents"] <= peer["forward_equivalents"],
            "two-sided step peak <= infty peak": ours["peak_bytes"] <= peer["peak_bytes"],
            "Dual saves no activations": by["Dual"]["saved_count"]["total"] == 0
            and by["Dual ZO* one-sided"]["saved_count"]["total"] == 0}


def markdown(results: list[dict[str, Any]]) -> str:
    mb = lambda b: f"{b / 2**20:.2f}"  # noqa: E731
    lines = ["| model (batch) | config | fwd/step | step / forward | saved vision MiB | saved text MiB "
             "| params MiB | grads MiB | opt state MiB | step peak MiB |", "|" + "---|" * 10]
    for res in results:
        for r in res["rows"]:
            s = r["saved_bytes"]
            lines.append(f"| {res['model']} ({res['batch']}) | {r['config']} | {r['forwards']} | "
                         f"{r['forward_equivalents']:.2f} | {mb(s['vision'])} | {mb(s['text'])} | "
                         f"{mb(r['parameter_bytes'])} | {mb(r['gradient_bytes'])} | "
                         f"{mb(r['optimizer_state_bytes'])} | {mb(r['peak_bytes'])} |")
    for res in results:
        lines.append("")
        lines.append(f"{res['model']}: inference forward {res['inference_forward_s'] * 1000:.0f} ms; " +
                     "; ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in res["checks"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: tiny 32, vitb16 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per configuration (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a busy 2-core machine 2 OpenMP threads can "
                             "make small ops 100x slower; 0 = torch's default)")
    parser.add_argument("--out", default="build/benchmarks/zo_step.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    results = [bench_model(key, args.batch, args.repeats) for key in args.models]
    print(markdown(results))
    atomic_write_json(args.out, {"args": vars(args), "provenance": provenance(), "results": results})
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
