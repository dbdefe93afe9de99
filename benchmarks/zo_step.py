"""Cost of one optimizer step per method, in forward-equivalents and bytes (not a timed test).

For each model and configuration: a step over an inference forward on the same batch
(:func:`zolib.analysis.timing.paired_ratio`: the median of paired ratios after a warm-up), forwards
per step, bytes saved for backward per encoder, parameter / gradient / optimizer-state bytes, and
the peak of live bytes allocated inside the step (:func:`zolib.analysis.footprint.measure`). Every
step is the harness's own (:mod:`zolib.cl.randomstep`: random weights, the benchmark's class
prompts, the harness's optimizer). Peer: the ``infty`` package's ZeroFlow optimizer (``zo_sgd``,
two-sided, q = 1) through ``zo_backend="infty"``, against zolib's own ZO-SGD on the same model.

    PYTHONPATH=. .venv/bin/python benchmarks/zo_step.py --models zolib-tiny ViT-B-16 --repeats 3

Writes a markdown table to stdout and JSON (with zolib.runtime.provenance()) to --out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zolib.analysis.footprint import measure  # noqa: E402
from zolib.analysis.timing import median_time, paired_ratio  # noqa: E402
from zolib.cl.randomstep import measurement_config, random_step  # noqa: E402
from zolib.models import MODELS  # noqa: E402
from zolib.models.specs import model_spec  # noqa: E402
from zolib.optim.methods import label  # noqa: E402
from zolib.runtime import atomic_write_json, provenance  # noqa: E402

DEFAULT_BATCH = {"zolib-tiny": 32, "ViT-B-16": 4}
CONFIGS: list[tuple[str, dict[str, Any]]] = [  # (method, config fields); the label is the method's plus its fields
    ("fo", {}), ("dual", {}), ("dual", {"rule": "aggressive"}), ("vision", {}), ("language", {}),
    ("hop-odd-vision", {}), ("mozo", {}), ("dual", {"zo_optimizer": "zo-sgd"}),
    ("dual", {"zo_optimizer": "zo-sgd", "zo_backend": "infty"}),
]
OURS, PEER = "Dual, zo_optimizer zo-sgd", "Dual, zo_optimizer zo-sgd, zo_backend infty"


def config_label(method: str, fields: dict[str, Any]) -> str:
    return ", ".join([label(method), *(f"{k} {v}" for k, v in fields.items())])


def bench_model(name: str, batch: int | None, repeats: int, configs: list[str] | None = None) -> dict[str, Any]:
    """Every configuration of ``CONFIGS`` (or those whose label is in ``configs``) on ``name``."""
    batch = batch or DEFAULT_BATCH[name]
    step = random_step(measurement_config(name), batch)
    rows = []
    for method, fields in CONFIGS:
        if configs is not None and config_label(method, fields) not in configs:
            continue
        if fields.get("zo_backend") == "infty":
            try:
                import infty  # noqa: F401
            except ImportError:
                print("  infty is not installed (pip install infty): the peer row is left out", file=sys.stderr)
                continue
        cfg = step.cfg.with_method(method, **fields)
        opt, mem = measure(step, cfg)
        ratio = paired_ratio(lambda: opt.step(step.closure), step.forward, repeats)
        rows.append(dict(config=config_label(method, fields), method=method, fields=fields,
                         forwards=mem.extra["forwards"], forward_equivalents=ratio, saved_bytes=mem.saved_bytes,
                         saved_count=mem.saved_count, parameter_bytes=mem.parameter_bytes,
                         gradient_bytes=mem.gradient_bytes, optimizer_state_bytes=mem.optimizer_state_bytes,
                         peak_bytes=mem.peak_bytes, cuda_peak_bytes=mem.cuda_peak_bytes))
        print(f"  {name} {rows[-1]['config']}: {ratio:.2f} forwards", file=sys.stderr, flush=True)
    out = dict(model=name, batch=batch, image_size=model_spec(name).image_size, rows=rows, checks=checks(rows),
               inference_forward_s=median_time(step.forward, repeats))
    if any(r["config"] == PEER for r in rows):
        out["zolib_over_infty"] = versus_infty(step, repeats)
        out["checks"]["zolib / infty step time <= 1.0"] = out["zolib_over_infty"] <= 1.0
    return out


def versus_infty(step, repeats: int) -> float:
    """zolib's Dual ZO-SGD step over infty's ZeroFlow step (two-sided, q = 1) on the same model and batch:
    the two optimizers' steps alternate, timed in thread CPU time (torch runs single-threaded here)."""
    import time
    ours = step.optimizer(step.cfg.with_method("dual", zo_optimizer="zo-sgd"))
    peer = make_peer(step)
    return paired_ratio(lambda: ours.step(step.closure), lambda: peer.step(step.closure), repeats, clock=time.thread_time)


def make_peer(step):
    from zolib.cl.factory import make_optimizer
    return make_optimizer(step.cfg.with_method("dual", zo_optimizer="zo-sgd", zo_backend="infty"), step.model, seed=0,
                          total_steps=100)


def checks(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """The targets of the benchmark brief."""
    by, out = {r["config"]: r for r in rows}, {}
    if "Dual, rule aggressive" in by:
        out["aggressive one-sided step <= 2.2 forwards"] = by["Dual, rule aggressive"]["forward_equivalents"] <= 2.2
    if "Dual" in by and "Dual, rule aggressive" in by:
        out["Dual saves no activations"] = by["Dual"]["saved_count"]["total"] == 0 \
            and by["Dual, rule aggressive"]["saved_count"]["total"] == 0
    if PEER in by and OURS in by:
        ours, peer = by[OURS], by[PEER]
        out["two-sided step no slower than infty"] = ours["forward_equivalents"] <= peer["forward_equivalents"]
        out["two-sided step peak <= infty peak"] = ours["peak_bytes"] <= peer["peak_bytes"]
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    mb = lambda b: f"{b / 2**20:.2f}"  # noqa: E731
    lines = [f"zolib / infty (Dual ZO-SGD, two-sided, thread CPU time, paired): "
             + ", ".join(f"{r['model']} ({r['batch']}) {r['zolib_over_infty']:.3f}" for r in results if "zolib_over_infty" in r),
             "", "| model (batch) | config | fwd/step | step / forward | saved vision MiB | saved text MiB "
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
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(DEFAULT_BATCH))
    parser.add_argument("--batch", type=int, default=None, help="batch size (default: zolib-tiny 32, ViT-B-16 4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs per configuration (median)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on a busy 2-core machine 2 OpenMP threads can "
                             "make small ops 100x slower; 0 = torch's default)")
    parser.add_argument("--versus-infty", action="store_true",
                        help="only the two rows of the zolib / infty comparison (Dual ZO-SGD, ours and infty's)")
    parser.add_argument("--out", default="build/benchmarks/zo_step.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [OURS, PEER] if args.versus_infty else None
    results = [bench_model(name, args.batch, args.repeats, configs) for name in args.models]
    print(markdown(results))
    atomic_write_json(args.out, {"args": vars(args), "provenance": provenance(), "results": results})
    print(f"\nwrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
