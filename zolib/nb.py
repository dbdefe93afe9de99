"""What every notebook calls: one ``setup`` (profile check, seeds, plot style), cached
experiments, figures, and a results file per notebook.

Notebooks stay thin: a parameters cell, the story in markdown, calls into this module and
into zolib, figures. Experiment results are cached by their full config and by a hash of
zolib's source, so rerunning a notebook to restyle a figure costs seconds, and a code change
never serves a stale number.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import claims
from .cl.config import PROFILES, ExperimentConfig, profile_config
from .errors import NanLossError, ZolibError, check_choice
from .plotting import FIGURES, savefig, setup_style, title
from .runtime import atomic_write_json, cache_dir, provenance, seed_everything

# Which benchmarks and seeds each profile covers in the notebooks.
SCOPE: dict[str, dict[str, Any]] = {
    "smoke": {"benchmarks": ["synthetic"], "seeds": [0]},
    "cpu": {"benchmarks": ["synthetic"], "seeds": [0]},
    "workshop": {"benchmarks": ["cifar100"], "seeds": [0]},
    "paper": {"benchmarks": ["cifar100", "tinyimagenet", "imagenet-r"], "seeds": [0, 1, 2, 3, 4]},
}
_SOURCES = ("cl", "optim", "models", "data/synthetic.py", "data/benchmark.py", "data/real.py")


@lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of the zolib sources that decide an experiment's numbers."""
    root = Path(__file__).parent
    files = sorted(f for s in _SOURCES for f in ((root / s).rglob("*.py") if (root / s).is_dir() else [root / s]))
    h = hashlib.sha256()
    for f in files:
        h.update(f.relative_to(root).as_posix().encode() + f.read_bytes())
    return h.hexdigest()[:12]


def _result_path(cfg: ExperimentConfig) -> Path:
    return cache_dir("experiments") / f"{cfg.key()}-{code_hash()}.json"


def cached_result(cfg: ExperimentConfig) -> dict[str, Any] | None:
    """The cached result of ``cfg`` (same config and zolib code), or None if it was never run."""
    path = _result_path(cfg)
    return json.loads(path.read_text()) if path.exists() else None


def cached_experiment(cfg: ExperimentConfig, progress: bool = True, allow_divergence: bool = False) -> dict[str, Any]:
    """Run ``cfg`` once and cache its result JSON (``$ZOLIB_CACHE/experiments``); resumes if interrupted.

    A run whose loss turns NaN or infinite raises :class:`~zolib.errors.NanLossError`, unless
    ``allow_divergence``: then the divergence is the result (see :func:`diverged_result`), cached
    like any other, for sweeps that probe where an optimizer breaks (notebook 01).
    """
    from .cl.trainer import run_experiment
    cached = cached_result(cfg)
    if cached is None:
        try:
            return run_experiment(cfg, _result_path(cfg), progress=progress)
        except NanLossError as err:
            if not allow_divergence:
                raise
            cached = diverged_result(cfg, err)
            atomic_write_json(_result_path(cfg), cached)
    if cached.get("diverged") and not allow_divergence:
        raise NanLossError(cached["diverged"])
    return cached


def diverged_result(cfg: ExperimentConfig, err: Exception) -> dict[str, Any]:
    """The record of a run that diverged: the error, and the tasks it finished before (from its
    checkpoint, which is then removed). ``last``, ``avg``, ``forgetting`` and ``bwt`` are None: a
    model with NaN weights has no accuracy worth reporting."""
    import torch
    path = _result_path(cfg)
    ckpt = path.with_name(path.name + ".ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False) if ckpt.exists() else {}
    ckpt.unlink(missing_ok=True)
    return {"diverged": str(err), "last": None, "avg": None, "forgetting": None, "bwt": None,
            "zero_shot": state.get("zero_shot"), "acc_matrix": state.get("acc_matrix", []),
            "pooled": state.get("pooled", []), "losses": state.get("losses", []), "config": cfg.as_dict(),
            "config_key": cfg.key(), **provenance()}


@dataclass
class Session:
    """A notebook's context: its profile, where its figures go, and what it records."""

    notebook: str
    profile: str
    params: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)

    @property
    def benchmarks(self) -> list[str]:
        return SCOPE[self.profile]["benchmarks"]

    @property
    def seeds(self) -> list[int]:
        return SCOPE[self.profile]["seeds"]

    @property
    def synthetic(self) -> bool:
        return self.benchmarks == ["synthetic"]

    @property
    def figures(self) -> Path:
        return FIGURES / self.profile

    def config(self, **overrides: Any) -> ExperimentConfig:
        """The profile's experiment config with ``overrides``."""
        return profile_config(self.profile, **overrides)

    def run(self, allow_divergence: bool = False, **overrides: Any) -> dict[str, Any]:
        """A cached experiment of the profile's config with ``overrides`` (see :func:`cached_experiment`)."""
        return cached_experiment(self.config(**overrides), allow_divergence=allow_divergence)

    def compare(self, variants: dict[str, dict[str, Any]],
                allow_divergence: bool = False) -> dict[str, dict[str, list[dict[str, Any]]]]:
        """Run every labelled variant (config overrides) on each of the profile's benchmarks and
        seeds, cached: ``{benchmark: {label: [result of each seed]}}``."""
        return {b: {label: [self.run(allow_divergence, benchmark=b, seed=s, **over) for s in self.seeds]
                    for label, over in variants.items()} for b in self.benchmarks}

    @staticmethod
    def summary(runs: dict[str, dict[str, list[dict[str, Any]]]]):
        """:meth:`compare`'s output as a DataFrame: mean and std over seeds of Last, Avg and
        forgetting per benchmark and label (std is 0 with one seed). A variant with a diverged
        seed gets NaN metrics (a mean over the survivors would flatter it) and ``diverged`` > 0."""
        import pandas as pd
        rows = []
        for bench, by_label in runs.items():
            for label, results in by_label.items():
                row = {"benchmark": bench, "label": label, "method": results[0]["config"]["method"],
                       "seeds": len(results), "diverged": sum(bool(r.get("diverged")) for r in results),
                       "zero_shot": results[0]["zero_shot"]}
                for metric in ("last", "avg", "forgetting"):
                    values = pd.Series([r[metric] for r in results], dtype=float)
                    row[metric] = values.mean(skipna=False)
                    row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else 0.0
                rows.append(row)
        return pd.DataFrame(rows).round(2)

    def title(self, text: str) -> str:
        return title(text, self.profile, self.synthetic)

    def savefig(self, fig, name: str) -> list[Path]:
        return savefig(fig, f"{self.notebook[:2]}_{name}", self.profile, self.synthetic)

    def record(self, **values: Any) -> None:
        """Record values for the notebook's results file (asserted by the tests)."""
        self.results.update(values)
        self.save()

    def check(self, verdicts: list[claims.Verdict]):
        """Record the paper's claims checked on this run (:mod:`zolib.claims`), print one line
        per claim, and return them as a table."""
        recorded = {c["claim"]: c for c in self.results.get("claims", []) + claims.as_records(verdicts)}
        self.record(claims=list(recorded.values()))  # a rerun of the cell replaces, not repeats
        for v in verdicts:
            print(v.line())
        return claims.frame(verdicts)

    def save(self) -> Path:
        """Write ``figures/<profile>/<notebook>.json`` atomically, with versions and git commit."""
        path = self.figures / f"{self.notebook}.json"
        atomic_write_json(path, _finite({"notebook": self.notebook, "profile": self.profile, "params": self.params,
                                         "results": self.results, **provenance()}))
        return path


def _finite(obj: Any) -> Any:
    """``obj`` with every NaN or infinite float replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def setup(notebook: str, profile: str, **params: Any) -> Session:
    """Check the profile, fix seeds and plot style, and return the notebook's :class:`Session`."""
    check_choice("profile", profile, PROFILES)
    for name, value in params.items():
        if value is None:
            raise ZolibError(f"parameter {name} of {notebook} is unset; give it a value in the parameters cell")
    os.environ.setdefault("TQDM_MININTERVAL", "5")
    seed_everything(0)
    setup_style()
    return Session(notebook, profile, {"profile": profile, **params})
