"""The run store: every finished run and calibration, keyed by its resolved config and by a hash
of the zolib code that decides its numbers, written atomically, resumable from checkpoints.

Layout under the store's root (``$ZOLIB_STORE``, default ``$ZOLIB_CACHE/store``, i.e.
``~/.cache/zolib/store``; on a cluster put it on a shared filesystem):

- ``runs/<config key>-<code hash>.json``: a result (see :func:`zolib.cl.trainer.run_experiment`),
  with ``<...>.json.ckpt`` beside it while the run is unfinished: a rerun resumes there;
- ``calibrations/<key>-<code hash>.json``: the ZO step size a calibration chose, and its table;
- ``fewshot/<key>-<shots>x<queries>-<code hash>.json``: a few-shot prompt-tuning result (SharpZO's
  own setting, :mod:`zolib.cl.fewshot`).

A run whose loss turns NaN is a result too: ``diverged`` holds the one-line message, the finished
tasks are kept, and ``last``/``avg`` are None (a NaN model has no accuracy worth reporting).

A :class:`Request` is a run as a notebook asks for it: a resolved config, and, for the
calibrated regime, the :class:`~zolib.cl.profiles.Calibration` that picks its ZO step size first,
or, for a few-shot run, its ``(shots, queries)``. Every kind goes through the sweep alike.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import NanLossError
from ..runtime import atomic_write_json, cache_dir, provenance
from .config import ExperimentConfig
from .calibration import Calibration

ENTRY_POINTS = ("zolib.cl.trainer", "zolib.cl.calibration", "zolib.cl.fewshot")
"""The modules that compute what the store keeps: runs, calibrations and few-shot runs."""


def _module_file(root: Path, module: str) -> Path | None:
    """The file of ``zolib.x.y`` under the package ``root`` (a module or a package's ``__init__``)."""
    parts = module.split(".")[1:]
    for path in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if parts and path.is_file() or not parts and path.name == "__init__.py" and path.is_file():
            return path
    return None


def code_sources() -> list[Path]:
    """Every zolib file that decides a stored number: the import closure of :data:`ENTRY_POINTS` (every
    ``import`` of a zolib module anywhere in a file, lazy ones inside functions included, and the packages
    on the way), read from the source with :mod:`ast`, plus the data those modules read (the open_clip
    configs, the shipped weights' record, the dataset manifests). Derived from the package, so a new
    module the harness imports is hashed without anyone adding it to a list."""
    import ast
    root = Path(__file__).resolve().parent.parent
    todo, seen = list(ENTRY_POINTS), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:
            continue
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages it runs on the way
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] == "zolib"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                if base.split(".")[0] == "zolib":
                    todo += [base] + [f"{base}.{a.name}" for a in node.names]
    files = {p for m in seen if (p := _module_file(root, m)) is not None}
    from ..data.manifests import MANIFEST_DIR
    data = [*(root / "models" / "configs").glob("*.json"), *(root / "models" / "weights").glob("*.json"),
            *Path(MANIFEST_DIR).glob("*.json")]
    return sorted(files) + sorted(data)


@lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of the zolib files that decide an experiment's numbers (:func:`code_sources`)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in code_sources():
        name = f.relative_to(root).as_posix() if f.is_relative_to(root) else "manifests/" + f.name
        h.update(name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Request:
    """One run a study asks for: ``config``, or, with ``calibration``, ``config`` with the ZO step
    size that calibration chooses (its ``zo_lr`` is then ignored). With ``fewshot`` = ``(shots,
    queries)`` it is a few-shot prompt-tuning run (:func:`zolib.cl.fewshot.run_fewshot`), not a
    class-incremental one."""

    config: ExperimentConfig
    calibration: Calibration | None = None
    fewshot: tuple[int, int] | None = None

    def calibration_config(self) -> ExperimentConfig:
        """The config the calibration trains (the calibration's seed; the step size is its to pick)."""
        return self.config.replace(seed=self.calibration.seed)


class Store:
    """Runs and calibrations on disk (see the module docstring)."""

    def __init__(self, root: str | Path | None = None):
        root = root or os.environ.get("ZOLIB_STORE")
        self.root = Path(root).expanduser() if root else cache_dir("store")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ runs
    def run_path(self, cfg: ExperimentConfig) -> Path:
        return self.root / "runs" / f"{cfg.key()}-{code_hash()}.json"

    def get(self, cfg: ExperimentConfig) -> dict[str, Any] | None:
        """The stored result of ``cfg``, or None."""
        path = self.run_path(cfg)
        return json.loads(path.read_text()) if path.exists() else None

    def run(self, cfg: ExperimentConfig, progress: bool = False) -> dict[str, Any]:
        """The stored result of ``cfg``, running (or resuming) it first if needed."""
        from .trainer import run_experiment
        stored = self.get(cfg)
        if stored is not None:
            return stored
        path = self.run_path(cfg)
        try:
            return run_experiment(cfg, path, progress=progress)
        except NanLossError as err:
            record = self._diverged(cfg, path, err)
            atomic_write_json(path, record)
            return record

    @staticmethod
    def _diverged(cfg: ExperimentConfig, path: Path, err: Exception) -> dict[str, Any]:
        import torch
        ckpt = path.with_name(path.name + ".ckpt")
        state = torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else {}
        ckpt.unlink(missing_ok=True)
        return {"diverged": str(err), "last": None, "avg": None, "forgetting": None, "bwt": None,
                "zero_shot": state.get("zero_shot"), "acc_matrix": state.get("acc_matrix", []),
                "pooled": state.get("pooled", []), "losses": state.get("losses", []),
                "picks": state.get("picks", []), "movement": state.get("movement", []), "zo_effect": None,
                "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}

    # ------------------------------------------------------------------ calibrations
    def calibration_path(self, req: Request) -> Path:
        cfg = req.calibration_config()
        blob = json.dumps({"config": cfg.replace(zo_lr=None).key(), "calibration": asdict(req.calibration)},
                          sort_keys=True)
        return self.root / "calibrations" / f"{hashlib.sha256(blob.encode()).hexdigest()[:16]}-{code_hash()}.json"

    def get_calibration(self, req: Request) -> dict[str, Any] | None:
        path = self.calibration_path(req)
        return json.loads(path.read_text()) if path.exists() else None

    def calibrate(self, req: Request, progress: bool = False) -> dict[str, Any]:
        """The stored calibration of ``req``, computing it first if needed."""
        from .calibration import calibrate
        stored = self.get_calibration(req)
        if stored is None:
            cal = req.calibration
            stored = calibrate(req.calibration_config(), cal, progress)
            atomic_write_json(self.calibration_path(req), stored)
        return stored

    # ------------------------------------------------------------------ few-shot (SharpZO's own setting)
    def fewshot_path(self, cfg: ExperimentConfig, shots: int, queries: int) -> Path:
        return self.root / "fewshot" / f"{cfg.key()}-{shots}x{queries}-{code_hash()}.json"

    def get_fewshot(self, cfg: ExperimentConfig, shots: int, queries: int) -> dict[str, Any] | None:
        """The stored few-shot result of ``cfg``, or None."""
        path = self.fewshot_path(cfg, shots, queries)
        return json.loads(path.read_text()) if path.exists() else None

    def fewshot(self, cfg: ExperimentConfig, shots: int, queries: int) -> dict[str, Any]:
        """The stored few-shot result of ``cfg`` (:func:`zolib.cl.fewshot.run_fewshot`), computed if missing."""
        from .fewshot import run_fewshot
        stored = self.get_fewshot(cfg, shots, queries)
        if stored is not None:
            return stored
        path = self.fewshot_path(cfg, shots, queries)
        result = run_fewshot(cfg, shots, queries)
        atomic_write_json(path, result)
        return result

    # ------------------------------------------------------------------ requests
    def resolve(self, req: Request) -> ExperimentConfig | None:
        """The config ``req`` runs: itself, or with its calibrated step size (None while uncalibrated)."""
        if req.calibration is None:
            return req.config
        cal = self.get_calibration(req)
        return None if cal is None else req.config.replace(zo_lr=cal["zo_lr"])

    def result(self, req: Request) -> dict[str, Any] | None:
        """The stored result of ``req``, or None."""
        cfg = self.resolve(req)
        if cfg is None:
            return None
        return self.get(cfg) if req.fewshot is None else self.get_fewshot(cfg, *req.fewshot)

    def execute(self, req: Request, progress: bool = False) -> dict[str, Any]:
        """Calibrate if needed, then run: the result of ``req``, computed in this process."""
        if req.calibration is not None:
            self.calibrate(req, progress)
        cfg = self.resolve(req)
        return self.run(cfg, progress) if req.fewshot is None else self.fewshot(cfg, *req.fewshot)
