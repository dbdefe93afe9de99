"""The ``zolib`` command line: experiment, sweep, notebooks, info, data, world, profiles, store, doctor.

Every bad value exits with status 2 and one line that lists the valid values; a
:class:`~zolib.errors.ZolibError` raised anywhere is printed the same way, never as a
traceback. ``zolib experiment``'s options are derived from the experiment config's fields
(:mod:`zolib.cl.config`) and the ZO settings' (:class:`zolib.optim.ZOConfig`), under the same names.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from .errors import ZolibError

CLI_ONLY = ("benchmark", "method", "seed")  # declared by hand below (with choices and help)
HELP = {
    "protocol": "class-incremental protocol (default: the benchmark's)",
    "adapter": "moe | lora", "zo_lr": "ZO step size (default: lr, the paper's literal setting; 0 holds ZO units fixed)",
    "distribution": "gaussian | rademacher", "perturbation": "joint | block",
    "q": "ZO directions averaged per step", "eps": "ZO perturbation scale", "eps_vision": "eps of vision units",
    "eps_text": "eps of text units", "max_steps_per_task": "steps per task (0: one epoch; with --dry-run: 2)",
    "fo_train_mode": "true: FO units train with dropout and router noise (default); false: eval mode",
    "adam_betas": "ZO-Adam betas, e.g. 0.9,0.999", "device": "auto | cpu | cuda | cuda:N",
    "mix": "the paper's lambda: ZO update scale relative to FO",
    "schedule": "warmup-cosine | constant", "estimator": "one-sided | two-sided | forward-grad",
    "classifier": "text | head (ZO-FC) | prompt (SharpZO, CoOp)", "fo_optimizer": "adamw | sgd",
    "zo_backend": "zolib | infty (cross-check)", "prompt_mode": "fo | zo | cmaes | sharpzo",
}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``zolib: error: ...`` and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value in ("true", "1", "yes")


def _pair(text: str) -> tuple[float, float]:
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two numbers like 0.9,0.999, got {text!r}") from None
    return a, b


def _converter(annotation: str):
    kind = annotation.replace(" | None", "").strip()
    return {"int": int, "float": float, "str": str, "bool": _bool, "tuple[float, float]": _pair}[kind]


def config_flags(parser: argparse.ArgumentParser) -> list[str]:
    """Add one ``--flag`` per experiment and ZO field (same name, dashes for underscores); returns the names."""
    from .cl.config import ExperimentConfig
    from .optim.rules import REGISTRIES
    from .optim.sharpzo import SharpZOConfig
    from .optim.zo import ZOConfig
    names = []
    groups = [(ExperimentConfig, parser.add_argument_group("experiment settings (default: the profile's)")),
              (ZOConfig, parser.add_argument_group("ZO settings (zolib.optim.ZOConfig; default: the method's)")),
              (SharpZOConfig, parser.add_argument_group("prompt methods: SharpZO, CoOp (zolib.optim.sharpzo)"))]
    for cls, where in groups:
        for f in dataclasses.fields(cls):
            if f.name in CLI_ONLY or f.name in ("zo", "zo_mask", "sharpzo"):
                continue
            where.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=_converter(str(f.type)),
                               default=None, metavar=f.name.upper(),
                               help=" | ".join(REGISTRIES[f.name]) if f.name in REGISTRIES else HELP.get(f.name))
            names.append(f.name)
    return names


def _methods_epilog() -> str:
    from .optim.methods import ZO_OPTIMIZERS, listing
    methods = listing()
    width = max(map(len, [*methods, *ZO_OPTIMIZERS]))
    return ("methods (--method):\n" + "\n".join(f"  {name:<{width}}  {line}" for name, line in methods.items())
            + "\n\nZO optimizers (--zo-optimizer, for the method's ZO units):\n"
            + "\n".join(f"  {name:<{width}}  {help}" for name, (help, _) in ZO_OPTIMIZERS.items()))


def _add_experiment(sub) -> None:
    from .cl.config import benchmarks
    from .cl.profiles import PROFILES
    p = sub.add_parser("experiment", help="run one class-incremental experiment",
                       description="Train task by task and write a result JSON (last, avg, forgetting, zero_shot, "
                                   "acc_matrix, movement, picks, zo_effect, world, config, versions).",
                       epilog=_methods_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", choices=benchmarks(), default=None, help="default: the profile's")
    p.add_argument("--method", default="fo", metavar="METHOD",
                   help="FO/ZO assignment and rules (listed below); also custom:vision=0101...,text=...")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None,
                   help="result JSON (default results/<benchmark>-<method>-<profile>-s<seed>.json)")
    p.add_argument("--zo-optimizer", dest="zo_optimizer", default=None, metavar="NAME",
                   help="ZO settings of the ZeroFlow / ZO-Bench family (listed below) for the method's ZO units")
    p.add_argument("--weights", default=None, help="local OpenAI ViT-B-16.pt for machines without internet")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="real architecture, random weights, synthetic inputs: check memory and time")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_preflight_flag(p)
    p.set_defaults(func=_run_experiment, config_fields=config_flags(p))


def add_preflight_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-preflight``: skip the check of data, weights, CUDA and executor (:mod:`zolib.cl.preflight`)."""
    parser.add_argument("--no-preflight", dest="preflight", action="store_false",
                        help="start without checking data, weights, CUDA and executor first (zolib doctor checks them)")


def _run_experiment(args: argparse.Namespace) -> int:
    from .cl.profiles import get_profile
    if args.weights:
        os.environ["ZOLIB_CLIP_WEIGHTS"] = args.weights
    overrides = {k: getattr(args, k) for k in args.config_fields if getattr(args, k) is not None}
    overrides.update(method=args.method, seed=args.seed, zo_optimizer=args.zo_optimizer)
    if args.dry_run:
        from .cl.dryrun import dry_run
        steps = overrides.pop("max_steps_per_task", None) or 2
        cfg = get_profile(args.profile).experiment(args.benchmark, **overrides)
        report = dry_run(cfg, steps=steps, progress=not args.quiet)
        print(json.dumps({k: v for k, v in report.items() if k not in ("config", "versions")}, indent=2))
        if args.out:
            from .runtime import atomic_write_json
            atomic_write_json(args.out, report)
        return 0
    from .cl.trainer import run_experiment
    cfg = get_profile(args.profile).experiment(args.benchmark, **overrides)
    if args.preflight:
        from .cl.preflight import check, require
        require(check([cfg.benchmark], [cfg.model_name], device=cfg.device, gpu=get_profile(args.profile).gpu,
                      profile=args.profile, weights=args.weights), args.profile,
                f" --benchmark {cfg.benchmark}" + (f" --device {cfg.device}" if cfg.device != "auto" else ""))
    out = args.out or Path("results") / f"{cfg.benchmark}-{cfg.method.replace(':', '_')}-{args.profile}-s{cfg.seed}.json"
    result = run_experiment(cfg, out, progress=not args.quiet)
    effect = result.get("zo_effect")
    moved = f"  ZO changed {effect['flip_rate']:.2%} of predictions" if effect else ""
    print(f"zero-shot {result['zero_shot']:.2f}  last {result['last']:.2f}  avg {result['avg']:.2f}  "
          f"forgetting {result['forgetting']:.2f}  bwt {result['bwt']:.2f}{moved}  ->  {out}")
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


def _add_world(sub) -> None:
    p = sub.add_parser("world", help="the offline world: fingerprint, or regenerate the tiny CLIP's weights")
    p.add_argument("action", choices=["info", "pretrain"],
                   help="info: the shipped weights' and the benchmark draw's SHA-256; pretrain: pretrain the "
                        "tiny CLIP again (about 6 minutes on 2 cores) and write the weights file")
    p.add_argument("--profile", default="cpu", help="info: the profile whose benchmark draw is hashed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None, help="pretrain: steps (default: PretrainConfig's)")
    p.add_argument("--out", type=Path, default=None, help="pretrain: weights file (default: the shipped one)")
    p.set_defaults(func=_run_world)


def _run_world(args: argparse.Namespace) -> int:
    if args.action == "info":
        from .cl.world import fingerprint
        print(json.dumps(fingerprint(args.profile, args.seed), indent=2))
        return 0
    import time
    from .models.tiny import WEIGHTS, PretrainConfig, pretrain, save_pretrained
    cfg = PretrainConfig() if args.steps is None else dataclasses.replace(PretrainConfig(), steps=args.steps)
    start = time.perf_counter()
    model = pretrain(cfg)
    record = save_pretrained(model, cfg, args.out or WEIGHTS, time.perf_counter() - start)
    print(f"wrote {args.out or WEIGHTS} (sha256 {record['sha256'][:12]}..., zero-shot {record['zero_shot']:.2f}%); "
          f"commit it with its .json record")
    return 0


def _add_profiles(sub) -> None:
    p = sub.add_parser("profiles", help="what each profile runs: benchmarks, seeds, budget")
    p.set_defaults(func=_run_profiles)


def _run_profiles(args: argparse.Namespace) -> int:
    from .cl.profiles import PROFILES
    for p in PROFILES.values():
        print(f"{p.name:<9} {p.summary}; seeds {list(p.seeds)}; {p.budget}")
    return 0


def _add_store(sub) -> None:
    p = sub.add_parser("store", help="check the run store: every entry parses, its key matches, its code is known")
    p.add_argument("action", choices=["verify"], help="verify: count the entries, list the bad ones")
    p.add_argument("--store", default=None, help="run store folder (default $ZOLIB_STORE, else ~/.cache/zolib/store)")
    p.add_argument("--repair", action="store_true", help="move the bad entries to quarantine/ (they are then recomputed)")
    p.set_defaults(func=_run_store)


def _run_store(args: argparse.Namespace) -> int:
    from .cl.store import Store
    store = Store(Path(args.store).expanduser() if args.store else None)
    if not store.root.is_dir():
        raise ZolibError(f"no run store at {store.root}; give --store or set ZOLIB_STORE")
    r = store.verify(repair=args.repair)
    print(f"store {r['root']} (this zolib's code hash {r['code_hash']}): {r['current']} sound entries of this code, "
          f"{r['other code']} of other zolib versions (kept, not served), {len(r['bad'])} bad"
          + (" (moved to quarantine/)" if args.repair and r["bad"] else "")
          + f"; {r['checkpoints']} unfinished runs, {r['locks']} locks, {r['temporary files']} temporary files")
    for bad in r["bad"]:
        print(f"  BAD {bad['path']}: {bad['why']}")
    if r["bad"] and not args.repair:
        print("  run `zolib store verify --repair` to move them to quarantine/; the next sweep computes them again")
    return 1 if r["bad"] and not args.repair else 0


def _add_doctor(sub) -> None:
    from .cl.config import benchmarks
    from .cl.profiles import PROFILES
    from .cl.sweep import EXECUTORS
    p = sub.add_parser("doctor", help="check what a profile needs here: data, weights, CUDA, sbatch, disk",
                       description="The preflight of `zolib sweep`, `zolib notebooks` and `zolib experiment`, "
                                   "without running anything: every dataset archive (present, checksum right), the "
                                   "CLIP weights, CUDA where the profile expects a GPU, sbatch for --executor slurm, "
                                   "disk space for the data; each missing thing with the command that fetches it. "
                                   "Exit status 0 when nothing is missing, 2 otherwise.")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--benchmark", choices=benchmarks(), default=None, help="this benchmark alone (default: the profile's)")
    p.add_argument("--executor", choices=EXECUTORS, default="local")
    p.add_argument("--gpus-per-node", dest="gpus_per_node", type=int, default=0, help="slurm: GPUs per job")
    p.add_argument("--device", default=None, help="auto | cpu | cuda (default: the profile's)")
    p.add_argument("--weights", default=None, help="a local OpenAI ViT-B-16.pt (default: $ZOLIB_CLIP_WEIGHTS)")
    p.set_defaults(func=_run_doctor)


def _run_doctor(args: argparse.Namespace) -> int:
    from .cl.preflight import check_profile, problems, report
    findings = check_profile(args.profile, args.benchmark, device=args.device, executor=args.executor,
                             gpus_per_node=args.gpus_per_node, weights=args.weights)
    print(report(findings, f"zolib doctor (profile {args.profile}, executor {args.executor})"))
    return 2 if problems(findings) else 0


def build_parser() -> argparse.ArgumentParser:
    """The full ``zolib`` parser."""
    from .data.cli import add_data_parser
    parser = _Parser(prog="zolib", description="Zeroth-order optimization for continual learning of CLIP.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_experiment(sub)
    _add_info(sub)
    add_data_parser(sub)
    _add_world(sub)
    _add_profiles(sub)
    _add_store(sub)
    _add_doctor(sub)
    try:
        from .notebooks import add_notebooks_parser, add_sweep_parser
    except ImportError:  # the notebook runner needs papermill (pip install -e .[dev])
        pass
    else:
        add_notebooks_parser(sub)
        add_sweep_parser(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"zolib: warning: {message}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zolib`` command."""
    warnings.showwarning = _one_line_warning
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ZolibError as err:
        sys.stderr.write(f"zolib: error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("zolib: interrupted; finished tasks and runs are kept, rerun the same command to resume\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
