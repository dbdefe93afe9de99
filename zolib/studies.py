"""Which runs each notebook needs, declared once: the notebooks run them, the sweep plans them.

A study is ``{label: overrides}``: the runs a notebook compares, each as experiment/ZO fields on top
of the profile (run on every benchmark and seed of the profile). ``zo_lr="calibrated"`` asks for
the calibrated regime: the step size is picked on task 1 first (:class:`zolib.cl.profiles.Calibration`);
``fewshot=(shots, queries)`` asks for a few-shot prompt-tuning run instead of a class-incremental one
(notebook 07, :func:`fewshot`).

Two regimes of the ZO step size, side by side wherever a notebook checks a ZO claim:

- **literal**: the paper's setting as far as it is given: the ZO step is the harness lr (1e-3);
- **calibrated**: the step picked from the profile's grid on a held-out split of task 1 only, then
  fixed (as the paper did for its mixing ratio).

Each hybrid configuration also has a **control**: the same mask with its ZO units held fixed
(``zo_lr=0``), which tells whether ZO's updates help or only half the adapters stop changing.
Dual's control is the frozen model.

:func:`requests` turns a study into :class:`~zolib.cl.store.Request` s, which is all the sweep needs
(``zolib sweep`` collects them for the selected notebooks without executing them).
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from .cl import world
from .cl.profiles import get_profile
from .cl.store import Request
from .errors import ZolibError
from .optim.methods import layerwise

Study = dict[str, dict[str, Any]]
CALIBRATED = "calibrated"
REGIMES = ("literal", "calibrated")
FO, FROZEN = "FO", "frozen"


def regime_label(label: str, regime: str) -> str:
    """``"Dual"`` -> ``"Dual"`` (literal) or ``"Dual, calibrated"``."""
    return label if regime == "literal" else f"{label}, {regime}"


def control_label(label: str) -> str:
    return f"{label}, control (ZO held fixed)"


def _regimes(label: str, overrides: Mapping[str, Any], regimes: Iterable[str]) -> Study:
    return {regime_label(label, r): {**overrides, **({"zo_lr": CALIBRATED} if r == "calibrated" else {})}
            for r in regimes}


def setup() -> Study:
    """Notebook 00: the world check's runs (:data:`zolib.cl.world.RUNS`)."""
    return {label: dict(over) for label, over in world.RUNS.items()}


FAMILIES: dict[str, dict[str, Any]] = {
    "ZO*": {"rule": "aggressive", "sign": "none"},
    "ZO* + sign": {"rule": "aggressive", "sign": "elementwise"},
    "conservative": {"rule": "conservative", "sign": "none"},
    "conservative + sign": {"rule": "conservative", "sign": "elementwise"},  # q = q_sign (>= 2: see ZOConfig.degeneracy)
}
"""Notebook 01's Dual ZO update rules, by name."""


def sweep_label(family: str, lr: float | str) -> str:
    """Label of a Dual run of notebook 01's sweep: ``"Dual ZO*, zo_lr 0.01"`` or ``"Dual ZO*, calibrated"``."""
    return f"Dual {family}, zo_lr {lr:g}" if not isinstance(lr, str) else f"Dual {family}, {lr}"


def naive_full_zo(zo_lrs: list, families: list, q_sign: int = 2) -> Study:
    """Notebook 01: FO, frozen, and Dual ZO with each rule of ``families`` (:data:`FAMILIES`) over the ZO
    step sizes ``zo_lrs``, plus each at its calibrated step. Conservative + sign uses ``q_sign``
    directions (with one, its candidates ignore the estimate)."""
    study: Study = {FO: {"method": "fo"}, FROZEN: {"method": "frozen"}}
    for family in families:
        if family not in FAMILIES:
            raise ZolibError(f"unknown rule family {family!r}; valid: {', '.join(FAMILIES)}")
        rule = {"method": "dual", **FAMILIES[family],
                "q": q_sign if family == "conservative + sign" else 1}
        for lr in zo_lrs:
            study[sweep_label(family, lr)] = {**rule, "zo_lr": float(lr)}
        study[sweep_label(family, CALIBRATED)] = {**rule, "zo_lr": CALIBRATED}
    return study


BRANCHES = {"Dual": "dual", "Vision": "vision", "Language": "language"}


def branch_wise(regimes: Iterable[str] = REGIMES) -> Study:
    """Notebook 02: FO, frozen, Dual/Vision/Language in each regime, and the controls of Vision and
    Language (Dual's control is the frozen model)."""
    study: Study = {FO: {"method": "fo"}, FROZEN: {"method": "frozen"}}
    for label, method in BRANCHES.items():
        study.update(_regimes(label, {"method": method}, regimes))
    for label in ("Vision", "Language"):
        study[control_label(label)] = {"method": BRANCHES[label], "zo_lr": 0.0}
    return study


def layer_wise(patterns: list, sides: list, regimes: Iterable[str] = REGIMES,
               eval_mode_methods: Iterable[str] = ()) -> Study:
    """Notebook 03: FO, every pattern x side in each regime, and each one's control; the methods of
    ``eval_mode_methods`` (and FO) once more with FO units in eval mode (literal regime)."""
    study: Study = {FO: {"method": "fo"}, FROZEN: {"method": "frozen"}}
    for name in layerwise(patterns, sides):
        study.update(_regimes(name, {"method": name}, regimes))
        study[control_label(name)] = {"method": name, "zo_lr": 0.0}
    eval_mode_methods = list(eval_mode_methods)
    if eval_mode_methods:
        study["FO, eval mode"] = {"method": "fo", "fo_train_mode": False}
    for name in eval_mode_methods:
        study[f"{name}, FO units in eval mode"] = {"method": name, "fo_train_mode": False}
    return study


ABLATION = ("1. ZO*", "2. + conservative", "3. + sign", "4. + modality eps (MoZO on Dual)")


def mozo(q: int, sign: str, eps_vision: float, eps_text: float, regimes: Iterable[str] = REGIMES) -> Study:
    """Notebook 05: the ablation on Dual (ZO* -> conservative -> + sign -> + modality eps, all with ``q``
    directions so each step adds one ingredient) and MoZO against its Hop-even base, in each regime."""
    eps = {"eps_vision": eps_vision, "eps_text": eps_text}
    steps = [{"rule": "aggressive"}, {"rule": "conservative"}, {"rule": "conservative", "sign": sign},
             {"rule": "conservative", "sign": sign, **eps}]
    study: Study = {FO: {"method": "fo"}, FROZEN: {"method": "frozen"}}
    for label, step in zip(ABLATION, steps):
        study.update(_regimes(label, {"method": "dual", "q": q, **step}, regimes))
    base = {"method": "hop-even-both", "rule": "conservative", "q": q}
    study.update(_regimes("Hop-even both (base)", base, regimes))
    study.update(_regimes("MoZO (Hop-even both)", {**base, "sign": sign, **eps}, regimes))
    return study


PROMPT_METHODS = {"CoOp": "coop", "prompt ZO-SGD": "prompt-zo-sgd", "prompt CMA-ES": "prompt-cma-es",
                  "SharpZO": "sharpzo"}


def family_label(member: str, backend: str = "zolib") -> str:
    return f"Dual {member}" + ("" if backend == "zolib" else f", {backend}")


def cross_check_label(member: str, backend: str, lr: float) -> str:
    """The label of the infty cross-check run of ``member`` with ``backend`` (zolib or infty) at step ``lr``."""
    return family_label(member, backend) + f", zo_lr {lr:g}"


def peers(members: list, cross_check: list, cross_check_lr: float, prompt_methods: list, prompt_dim: int) -> Study:
    """Notebook 07 (class-incremental part): FO, frozen, conservative Dual and MoZO at their calibrated
    steps, ZO-FC as published, the ``prompt_methods`` (labels of :data:`PROMPT_METHODS`: SharpZO and
    its baselines) with a ``prompt_dim``-d vector, the ZeroFlow family on Dual at calibrated steps,
    and the infty cross-check: the ``cross_check`` members on Dual at ``cross_check_lr`` with zolib's
    and with infty's ZeroFlow."""
    study: Study = {FO: {"method": "fo"}, FROZEN: {"method": "frozen"},
                    "Dual conservative, calibrated": {"method": "dual", "zo_lr": CALIBRATED},
                    "MoZO, calibrated": {"method": "mozo", "zo_lr": CALIBRATED},
                    "ZO-FC": {"method": "zo-fc"}}
    for label in prompt_methods:
        if label not in PROMPT_METHODS:
            raise ZolibError(f"unknown prompt method {label!r}; valid: {', '.join(PROMPT_METHODS)}")
        study[label] = {"method": PROMPT_METHODS[label], "prompt_dim": prompt_dim}
    for member in members:
        study[family_label(member)] = {"method": "dual", "zo_optimizer": member, "zo_lr": CALIBRATED}
    for member in cross_check:
        for backend in ("zolib", "infty"):
            study[cross_check_label(member, backend, cross_check_lr)] = {
                "method": "dual", "zo_optimizer": member, "zo_lr": float(cross_check_lr), "zo_backend": backend}
    return study


FEWSHOT_METHODS = ("frozen", *PROMPT_METHODS.values())


def fewshot_label(method: str) -> str:
    return f"few-shot {method}"


def fewshot(prompt_dim: int, shots: int, queries: int, stage1: int) -> Study:
    """Notebook 07 (SharpZO's own setting, :mod:`zolib.cl.fewshot`): each of :data:`FEWSHOT_METHODS`
    tunes the ``prompt_dim``-d prompt vector on ``shots`` images per class within ``queries`` forwards;
    SharpZO spends ``stage1`` CMA-ES steps before its ZO stage."""
    study: Study = {}
    for method in FEWSHOT_METHODS:
        over: dict[str, Any] = {"method": method, "fewshot": (int(shots), int(queries))}
        if method != "frozen":
            over["prompt_dim"] = prompt_dim
        if method == "sharpzo":
            over.update(stage1_steps=stage1, stage1_fraction=0.0)
        study[fewshot_label(method)] = over
    return study


def requests(profile: str, study: Mapping[str, Mapping[str, Any]], benchmarks: Iterable[str] | None = None,
             seeds: Iterable[int] | None = None) -> dict[tuple[str, str, int], Request]:
    """``{(label, benchmark, seed): Request}`` of ``study`` on the profile's benchmarks and seeds (a
    label with ``fewshot`` = ``(shots, queries)`` asks for few-shot runs)."""
    p = get_profile(profile)
    out = {}
    for label, overrides in study.items():
        values = dict(overrides)
        shots_queries = values.pop("fewshot", None)
        calibrated = values.get("zo_lr") == CALIBRATED
        if calibrated:
            values.pop("zo_lr")
        elif isinstance(values.get("zo_lr"), str):
            raise ZolibError(f"{label}: zo_lr must be a number or {CALIBRATED!r}, got {values['zo_lr']!r}")
        for benchmark in benchmarks or p.benchmarks:
            for seed in seeds if seeds is not None else p.seeds:
                cfg = p.experiment(benchmark, seed=seed, **values)
                out[(label, benchmark, seed)] = Request(cfg, p.calibration if calibrated else None,
                                                        tuple(shots_queries) if shots_queries else None)
    return out


NOTEBOOK_STUDIES = {
    "00_setup": lambda params: setup() if get_profile(params["profile"]).benchmarks == ("synthetic",) else {},
    "01_naive_full_zo": lambda params: naive_full_zo(params["zo_lrs"], params["families"], params["q_sign"]),
    "02_branch_wise": lambda params: branch_wise(),
    "03_layer_wise": lambda params: layer_wise(params["patterns"], params["sides"], params["regimes"],
                                               params["eval_mode_methods"]),
    "05_mozo": lambda params: mozo(params["q"], params["sign"], params["eps_vision"], params["eps_text"],
                                   params["regimes"]),
    "07_peers": lambda params: {**peers(params["members"], params["cross_check"], params["cross_check_lr"],
                                        params["prompt_methods"], params["prompt_dim"]),
                                **fewshot(params["prompt_dim"], params["fewshot_shots"], params["fewshot_queries"],
                                          params["fewshot_stage1"])},
}
"""Notebook stem -> its study from the notebook's parameters (notebooks 04 and 06 train nothing)."""


def notebook_seeds(stem: str, profile: str, params: Mapping[str, Any] | None = None) -> tuple[int, ...] | None:
    """Seeds a notebook runs (None: the profile's): notebook 00's world check uses the first seed only,
    and a notebook's own ``seeds`` parameter (07's, to keep the smoke run within CI's budget) wins."""
    if params and params.get("seeds"):
        return tuple(params["seeds"])
    return (get_profile(profile).seeds[0],) if stem == "00_setup" else None
