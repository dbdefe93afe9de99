"""Is the synthetic world a fair stand-in for CLIP on CIFAR-100? The figures that say so.

The offline world (:mod:`zolib.data.synthetic` + the shipped tiny CLIP of :mod:`zolib.models.tiny`)
must behave like the real setting in the ways the paper's argument needs:

- zero-shot accuracy over all classes clearly above chance (at least 3 times),
- yet far from solved: at least 15 points below what FO adapter training on all classes at
  once (joint training, one task of 100 classes, the same budget per image) reaches,
- and sequential FO training, task by task, visibly forgets (forgetting > 0). The frozen model
  "forgets" too, from its growing label space alone (notebook 00 shows both).

:func:`world_check` measures them with the harness itself (stored runs); notebooks/00_setup.ipynb
shows them and tests/test_harness.py asserts the inequalities. :func:`fingerprint` gives the
hashes that make the world the same on every machine.
"""
from __future__ import annotations

from typing import Any

from .profiles import get_profile
from .store import Request, Store


RUNS: dict[str, dict[str, Any]] = {"FO": {"method": "fo"}, "joint FO": {"method": "fo", "protocol": "joint"},
                                   "frozen": {"method": "frozen"}}
"""The world check's runs: sequential FO, joint FO (one task of all 100 classes), the frozen model."""


def requests(profile: str = "smoke", seed: int = 0) -> dict[str, Request]:
    """The :data:`RUNS` of the world check as requests."""
    p = get_profile(profile)
    return {label: Request(p.experiment("synthetic", seed=seed, **over)) for label, over in RUNS.items()}


def world_check(profile: str = "smoke", seed: int = 0, store: Store | None = None) -> dict[str, float]:
    """Zero-shot, chance, joint-FO, sequential-FO and frozen figures of the synthetic world."""
    from .sweep import default_jobs, run_sweep
    store = store or Store()
    reqs = requests(profile, seed)
    if any(store.result(r) is None for r in reqs.values()):
        run_sweep(reqs.values(), store, "local", jobs=default_jobs(), progress=False)
    r = {name: store.execute(req) for name, req in reqs.items()}
    seq, frozen = r["FO"], r["frozen"]
    return {"chance": 100 / 100, "zero_shot": seq["zero_shot"], "joint_fo": r["joint FO"]["last"],
            "sequential_fo_last": seq["last"], "sequential_fo_avg": seq["avg"],
            "sequential_fo_forgetting": seq["forgetting"], "frozen_avg": frozen["avg"],
            "frozen_forgetting": frozen["forgetting"]}


def fingerprint(profile: str = "smoke", seed: int = 0) -> dict[str, Any]:
    """The world's fingerprint. Synthetic profiles: the shipped weights' SHA-256 and the benchmark draw's,
    for ``seed``. Real ones: for each benchmark present in the data root, the verified checksums of its
    archive and files (:mod:`zolib.data.real`), and the weights a run would load (a local file's SHA-256
    through ``ZOLIB_CLIP_WEIGHTS``, else open_clip's OpenAI tag; a run records the file's SHA-256)."""
    p = get_profile(profile)
    if p.benchmarks == ("synthetic",):
        from ..data.synthetic import GENERATOR_VERSION
        from ..models.tiny import verified_weights
        from .factory import load_benchmark
        rec = verified_weights()
        bench = load_benchmark(p.experiment("synthetic", seed=seed))
        return {"weights_sha256": rec["sha256"], "weights_zero_shot": rec["zero_shot"],
                "generator_version": GENERATOR_VERSION, "data_sha256": bench.info["data_sha256"]}
    import os
    from pathlib import Path

    from ..data.real import load_benchmark as load_real
    from ..models.clip import file_provenance
    local = os.environ.get("ZOLIB_CLIP_WEIGHTS")
    out: dict[str, Any] = {"weights": file_provenance(Path(local), "local file") if local else
                           {"source": "open_clip pretrained='openai'", "sha256": "recorded by each run when it loads"}}
    for name in p.benchmarks:
        cfg = p.experiment(name, seed=seed)
        out[name] = load_real(name, protocol=cfg.protocol, download=False, progress=False).info["data"]
    return out
