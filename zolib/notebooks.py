"""``zolib notebooks``: execute the notebooks in order with papermill, per profile.

Executed copies go to ``build/<profile>/`` (ignored by git); each notebook writes its
figures (PDF + PNG) and one results JSON to ``figures/<profile>/``. The run stops at the
first failing notebook and names it and the failing cell. Parameters come from
``notebooks/params/<profile>.yaml`` (section ``all`` plus a section per notebook) and
``-p NAME VALUE``; a parameter a notebook does not declare is an error, not a warning.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import yaml

from .cl.config import PROFILES
from .errors import ZolibError, check_choice
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


def parameters(profile: str, notebook: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The parameters papermill injects into ``notebook`` for ``profile``, validated."""
    import papermill
    check_choice("profile", profile, PROFILES)
    spec = yaml.safe_load((NOTEBOOK_DIR / "params" / f"{profile}.yaml").read_text()) or {}
    values = {**spec.get("all", {}), **spec.get(notebook.stem, {}), **(extra or {}), "profile": profile}
    declared = set(papermill.inspect_notebook(str(notebook)))
    unknown = sorted(set(values) - declared)
    if unknown:
        raise ZolibError(f"{notebook.name} does not declare parameter(s) {', '.join(unknown)}; "
                         f"it declares: {', '.join(sorted(declared))}")
    return values


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
                  timeout: int | None = None) -> list[Path]:
    """Execute the notebooks of ``profile`` in order; returns the executed copies."""
    import papermill
    check_choice("profile", profile, PROFILES)
    selected = notebooks(only)
    params = {nb: parameters(profile, nb, extra) for nb in selected}  # validate all before running any
    out_dir = BUILD_DIR / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("TQDM_MININTERVAL", "10")
    _pin_kernel()
    os.environ.setdefault("ZOLIB_FRONTEND", "0")  # interactive cells degrade to static output
    done = []
    for i, nb in enumerate(selected, 1):
        output = out_dir / nb.name
        print(f"[{i}/{len(selected)}] {nb.name} ({profile}) ...", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(str(nb), str(output), parameters=params[nb], kernel_name="python3",
                                       cwd=str(NOTEBOOK_DIR), progress_bar=False, execution_timeout=timeout)
        except papermill.PapermillExecutionError as err:
            raise ZolibError(f"{nb.name} failed in {_failed_cell(output)}; executed copy: {output}") from err
        print(f"[{i}/{len(selected)}] {nb.name} done in {time.perf_counter() - start:.0f} s", flush=True)
        done.append(output)
    return done


def add_notebooks_parser(subparsers) -> None:
    """Add ``zolib notebooks`` to the main parser."""
    p = subparsers.add_parser("notebooks", help="execute the notebooks with papermill and regenerate figures")
    p.add_argument("--profile", choices=list(PROFILES), default="smoke")
    p.add_argument("--only", nargs="+", default=None, metavar="NN", help="notebook numbers, e.g. 01 03")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a notebook parameter (YAML value)")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    extra = {name: yaml.safe_load(value) for name, value in args.p}
    start = time.perf_counter()
    done = run_notebooks(args.profile, args.only, extra, args.timeout)
    print(f"{len(done)} notebook(s) executed in {time.perf_counter() - start:.0f} s; "
          f"figures in figures/{args.profile}/, executed copies in build/{args.profile}/", file=sys.stderr)
    return 0
