"""``zolib notebooks`` and ``zolib sweep``: plan the runs the notebooks need, compute the missing
ones in parallel (or on a cluster), then execute the notebooks in order with papermill.

Executed copies go to ``build/<profile>/`` (ignored by git); each notebook writes its figures
(PDF + PNG) and one results JSON to ``figures/<profile>/``. A notebook's runs are declared by its
object in :mod:`zolib.studies`; :func:`plan` reads each selected notebook's parameters (its
parameters cell, then that object's grid for the profile, :attr:`~zolib.studies.Notebook.grids`, then
``-p NAME VALUE``) and asks that object, without executing anything: the notebook asks the same object
with the same parameters, so after the sweep it computes nothing. ``zolib notebooks`` first runs what the store lacks
through the local executor (one progress bar), then renders from the store. The run stops at
the first failing notebook and names it and the failing cell; a parameter a notebook does not
declare is an error, not a warning.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from .cl.preflight import check_profile, require
from .cl.profiles import PROFILES, get_profile
from .cl.store import Request, Store
from .cli import add_preflight_flag
from .errors import ZolibError
from .runtime import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
BUILD_DIR = REPO_ROOT / "build"


def notebooks(only: Sequence[str] | None = None) -> list[Path]:
    """The numbered notebooks in order, or those whose number or name is in ``only``."""
    found = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    picked = [nb for nb in found if nb.stem[:2] in only or nb.stem in only]
    missing = [o for o in only if not any(nb.stem[:2] == o or nb.stem == o for nb in found)]
    if missing:
        raise ZolibError(f"unknown notebook(s) {', '.join(missing)}; valid: {', '.join(nb.stem[:2] for nb in found)}")
    return picked


def declared(notebook: Path) -> dict[str, Any]:
    """The parameters a notebook declares, with the default values of its parameters cell."""
    import papermill
    return {name: ast.literal_eval(spec["default"]) for name, spec in papermill.inspect_notebook(str(notebook)).items()}


def parameters(profile: str, notebook: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters papermill injects into ``notebook`` for ``profile`` (its grid, then ``extra``), validated."""
    from . import studies
    get_profile(profile)
    values = {**studies.notebook(notebook.stem).grids.get(profile, {}), **(extra or {}), "profile": profile}
    names = declared(notebook)
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ZolibError(f"{notebook.name} does not declare parameter(s) {', '.join(unknown)}; "
                         f"it declares: {', '.join(sorted(names))}")
    return values


def plan(profile: str, only: Sequence[str] | None = None, extra: dict[str, Any] | None = None) -> list[Request]:
    """Every run the selected notebooks need in ``profile``, collected without executing them."""
    from . import studies
    out: list[Request] = []
    for nb in notebooks(only):
        params = {**declared(nb), **parameters(profile, nb, extra)}
        out += studies.notebook(nb.stem).requests(profile, params).values()
    return out


def _failed_cell(output: Path) -> str:
    import nbformat
    nb = nbformat.read(output, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i} ({out.get('ename')}: {out.get('evalue')})"
    return "an unknown cell"


def _pin_kernel() -> None:
    """Make the kernel ``python3`` this very interpreter: a kernelspec under ``build/kernels``
    put first on ``JUPYTER_PATH`` (a ``python3`` kernelspec of another environment in the user's
    Jupyter folder would otherwise win, and run another copy of zolib)."""
    spec = BUILD_DIR / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (zolib)", "language": "python"}))
    paths = [str(spec.parent.parent), *filter(None, os.environ.get("JUPYTER_PATH", "").split(os.pathsep))]
    os.environ["JUPYTER_PATH"] = os.pathsep.join(dict.fromkeys(paths))


def run_notebooks(profile: str, only: Sequence[str] | None = None, extra: dict[str, Any] | None = None,
                  timeout: int | None = None, jobs: int | None = None, threads: int = 1) -> list[Path]:
    """Compute the runs the selected notebooks lack (local executor, ``jobs`` processes), then
    execute the notebooks of ``profile`` in order; returns the executed copies."""
    import papermill
    from .cl.sweep import default_jobs, run_sweep
    get_profile(profile)
    selected = notebooks(only)
    params = {nb: parameters(profile, nb, extra) for nb in selected}  # validate all before running any
    store = Store()
    requests = plan(profile, only, extra)
    report = run_sweep(requests, store, "local", jobs=jobs or default_jobs(), threads=threads)
    if report.plan.total:
        print(f"{report.plan.describe()}; {report.describe()}", flush=True)
    if report.failed:
        raise ZolibError(f"{len(report.failed)} run(s) failed, e.g. {report.failed[0]['what']}: "
                         f"{report.failed[0]['error']} (log: {report.failed[0]['log']}); rerun to retry them")
    out_dir = BUILD_DIR / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    _pin_kernel()
    os.environ.setdefault("ZOLIB_FRONTEND", "0")  # interactive cells degrade to static output
    # Kernels run side by side, one per worker: each gets ``threads`` torch threads. With torch's
    # default (one per core) two kernels on 2 cores spin against each other's OpenMP threads, and
    # two notebooks of 20 s each took 6 minutes (measured on the smoke profile).
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    logging.getLogger("traitlets").setLevel(logging.ERROR)  # the kernel's TCP-without-encryption notice, per notebook

    def execute(i_nb: tuple[int, Path]) -> Path:
        i, nb = i_nb
        output = out_dir / nb.name
        print(f"[{i}/{len(selected)}] {nb.name} ({profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), str(output), parameters=params[nb], kernel_name="python3",
                                       cwd=str(NOTEBOOK_DIR), progress_bar=False, execution_timeout=timeout,
                                       log_output=False)
        except papermill.PapermillExecutionError as err:
            raise ZolibError(f"{nb.name} failed in {_failed_cell(output)}; executed copy: {output}") from err
        print(f"[{i}/{len(selected)}] {nb.name} done in {time.perf_counter() - start:.0f} s", flush=True)
        return output

    # every run is stored by now, so the notebooks only render: run them side by side, one per worker
    from concurrent.futures import ThreadPoolExecutor

    from .report import write
    with ThreadPoolExecutor(max_workers=max(1, min(jobs or default_jobs(), len(selected)))) as pool:
        done = list(pool.map(execute, enumerate(selected, 1)))
    print(f"every verdict, claim by claim and point by point: {write(profile)}", flush=True)
    return done


def add_notebooks_parser(subparsers) -> None:
    """Add ``zolib notebooks`` to the main parser."""
    p = subparsers.add_parser("notebooks", help="execute the notebooks with papermill and regenerate figures")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 01 03")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (YAML value)")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.add_argument("--jobs", type=int, default=None, help="parallel runs for what the store lacks "
                   "(default: $ZOLIB_JOBS, else one per CPU core, one on a GPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    add_preflight_flag(p)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.preflight:
        require(check_profile(args.profile), args.profile)
    extra = {name: yaml.safe_load(value) for name, value in args.p}
    start = time.perf_counter()
    done = run_notebooks(args.profile, args.only, extra, args.timeout, args.jobs, args.threads)
    print(f"{len(done)} notebook(s) executed in {time.perf_counter() - start:.0f} s; "
          f"figures in figures/{args.profile}/, executed copies in build/{args.profile}/", file=sys.stderr)
    return 0


def add_sweep_parser(subparsers) -> None:
    """Add ``zolib sweep`` to the main parser."""
    p = subparsers.add_parser(
        "sweep", help="run every experiment the notebooks need: in parallel here, or as Slurm job arrays",
        description="Collect every run the selected notebooks need in a profile (without executing them), show "
                    "the plan, and compute what the store lacks through submitit. Interrupted sweeps resume; "
                    "`zolib notebooks` then renders from the store.")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 01 03")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (YAML value), as for `zolib notebooks`")
    p.add_argument("--executor", choices=["local", "slurm", "debug"], default="local")
    p.add_argument("--jobs", type=int, default=None, help="local: parallel processes (default: one per CPU core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    p.add_argument("--store", default=None, help="run store folder (default $ZOLIB_STORE, else ~/.cache/zolib/store); "
                   "on a cluster, a filesystem the nodes share")
    p.add_argument("--plan", action="store_true", help="show the plan and stop (no preflight: nothing runs)")
    add_preflight_flag(p)
    s = p.add_argument_group("slurm")
    s.add_argument("--partition", default=None)
    s.add_argument("--gpus-per-node", dest="gpus_per_node", type=int, default=0)
    s.add_argument("--cpus-per-task", dest="cpus_per_task", type=int, default=2)
    s.add_argument("--mem-gb", dest="mem_gb", type=float, default=None)
    s.add_argument("--time-min", dest="timeout_min", type=int, default=240, help="time limit per job, minutes")
    s.add_argument("--account", default=None)
    s.add_argument("--array-parallelism", dest="array_parallelism", type=int, default=64)
    s.add_argument("--sbatch", nargs=2, action="append", default=[], metavar=("OPTION", "VALUE"),
                   help="any other sbatch option, e.g. --sbatch qos normal")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from .cl.sweep import SlurmOptions, default_jobs, plan as plan_of, run_sweep
    if args.preflight and not args.plan:
        require(check_profile(args.profile, executor=args.executor, gpus_per_node=args.gpus_per_node), args.profile,
                f" --executor slurm --gpus-per-node {args.gpus_per_node}" if args.executor == "slurm" else "")
    extra = {name: yaml.safe_load(value) for name, value in args.p}
    for nb in notebooks(args.only):
        parameters(args.profile, nb, extra)
    if args.store:
        os.environ["ZOLIB_STORE"] = str(Path(args.store).expanduser().resolve())
    store = Store()
    requests = plan(args.profile, args.only, extra)
    the_plan = plan_of(requests, store)
    print(f"plan ({args.profile}, store {store.root}): {the_plan.describe()}", flush=True)
    if args.plan:
        return 0
    slurm = SlurmOptions(args.partition, args.gpus_per_node, args.cpus_per_task, args.mem_gb, args.timeout_min,
                         args.account, args.array_parallelism, dict(args.sbatch))
    report = run_sweep(requests, store, args.executor, jobs=args.jobs or default_jobs(), threads=args.threads,
                       slurm=slurm)
    print(report.describe(), flush=True)
    return 1 if report.failed else 0
