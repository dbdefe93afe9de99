"""The ``zolib`` command line: experiment, info, data, notebooks.

Every bad value exits with status 2 and one line that lists the valid values; a
:class:`~zolib.errors.ZolibError` raised anywhere is printed the same way, never as a
traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from .errors import ZolibError


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``zolib: error: ...`` and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _methods_epilog() -> str:
    from .optim.presets import METHODS
    width = max(map(len, METHODS))
    return "methods:\n" + "\n".join(f"  {name:<{width}}  {line}" for name, line in METHODS.items())


def _add_experiment(sub) -> None:
    from .cl.config import BENCHMARKS, PROFILES
    from .optim.presets import METHODS
    p = sub.add_parser("experiment", help="run a class-incremental experiment",
                       description="Train task by task and write a result JSON (last, avg, forgetting, "
                                   "zero_shot, acc_matrix, config, versions).",
                       epilog=_methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", choices=BENCHMARKS, default=None,
                   help="default: the profile's (workshop: cifar100), else synthetic")
    p.add_argument("--protocol", default=None, help="class-incremental protocol (default: the benchmark's)")
    p.add_argument("--method", default="fo", metavar="METHOD",
                   help="FO/ZO assignment and rules (listed below); also custom:vision=0101...,text=...")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="result JSON (default results/<benchmark>-<method>-<profile>-s<seed>.json)")
    p.add_argument("--adapter", choices=["moe", "lora"], default=None)
    p.add_argument("--zo-rule", dest="zo_rule", default=None, help="aggressive | conservative")
    p.add_argument("--sign", default=None, help="none | elementwise | projected")
    p.add_argument("--eps", type=float, default=None, help="ZO perturbation scale for every unit")
    p.add_argument("--eps-vision", dest="eps_vision", type=float, default=None)
    p.add_argument("--eps-text", dest="eps_text", type=float, default=None)
    p.add_argument("--q", type=int, default=None, help="ZO directions averaged per step")
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--batch-size", dest="batch_size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="steps per task (default: one epoch; with --dry-run: 2)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--device", default=None, help="auto | cpu | cuda | cuda:N")
    p.add_argument("--weights", default=None, help="local OpenAI ViT-B-16.pt for machines without internet")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="real architecture, random weights, synthetic inputs: check memory and time")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_run_experiment, methods=METHODS)


def _run_experiment(args: argparse.Namespace) -> int:
    from .cl.config import profile_config
    from .optim.presets import check_method
    check_method(args.method)
    if args.weights:
        os.environ["ZOLIB_CLIP_WEIGHTS"] = args.weights
    overrides = {k: getattr(args, k) for k in ("benchmark", "protocol", "method", "adapter", "zo_rule", "sign", "eps",
                                               "eps_vision", "eps_text", "q", "lr", "batch_size", "epochs", "device",
                                               "seed")}
    if args.dry_run:
        from .cl.dryrun import dry_run
        cfg = profile_config(args.profile, **overrides)
        report = dry_run(cfg, steps=args.steps or 2, progress=not args.quiet)
        print(json.dumps({k: v for k, v in report.items() if k not in ("config", "versions")}, indent=2))
        if args.out:
            from .runtime import atomic_write_json
            atomic_write_json(args.out, report)
        return 0
    from .cl.trainer import run_experiment
    cfg = profile_config(args.profile, max_steps_per_task=args.steps, **overrides)
    out = args.out or Path("results") / f"{cfg.benchmark}-{cfg.method}-{args.profile}-s{cfg.seed}.json"
    result = run_experiment(cfg, out, progress=not args.quiet)
    print(f"zero-shot {result['zero_shot']:.2f}  last {result['last']:.2f}  avg {result['avg']:.2f}  "
          f"forgetting {result['forgetting']:.2f}  bwt {result['bwt']:.2f}  ->  {out}")
    return 0


def _add_info(sub) -> None:
    from .models import MODELS
    p = sub.add_parser("info", help="trainable parameter counts of an adapted CLIP")
    p.add_argument("--model", choices=MODELS, default="ViT-B-16")
    p.add_argument("--adapter", choices=["moe", "lora"], default="moe")
    p.add_argument("--pretrained", choices=["openai", "synthetic", "none"], default="none")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from .models import build_adapted_clip, count_parameters, trainable_units
    model = build_adapted_clip(args.model, args.pretrained, args.adapter)
    counts = count_parameters(trainable_units(model))
    counts = {"model": args.model, "adapter": args.adapter, "pretrained": args.pretrained, **counts}
    if args.json:
        print(json.dumps(counts, indent=2))
    else:
        print(f"{args.model} + {args.adapter}: {counts['total']:,} trainable parameters "
              f"(vision {counts['per_branch']['vision']:,}, text {counts['per_branch']['text']:,})")
        for unit, n in counts["per_unit"].items():
            print(f"  {unit:<10} {n:>10,}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``zolib`` parser."""
    from .data.cli import add_data_parser
    parser = _Parser(prog="zolib", description="Zeroth-order optimization for continual learning of CLIP.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_experiment(sub)
    _add_info(sub)
    add_data_parser(sub)
    try:
        from .notebooks import add_notebooks_parser
    except ImportError:  # the notebook runner needs papermill (pip install -e .[dev])
        pass
    else:
        add_notebooks_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zolib`` command."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ZolibError as err:
        sys.stderr.write(f"zolib: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("zolib: interrupted; finished tasks are kept, rerun the same command to resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
