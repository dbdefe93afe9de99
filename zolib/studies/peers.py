"""Notebook 07 (peers): the forward-only methods around MoZO on the same benchmark, seeds and measurements."""
from __future__ import annotations

from typing import Any, Mapping

from .. import claims
from ..analysis.runs import AllRuns, Runs, metric
from ..analysis.stats import mean_ci
from ..cl.profiles import Profile
from ..errors import ZolibError
from ..optim.methods import ZO_OPTIMIZERS
from . import CALIBRATED, FO, Notebook, Params, Study, references, register

PROMPT_METHODS = {"CoOp": "coop", "prompt ZO-SGD": "prompt-zo-sgd", "prompt CMA-ES": "prompt-cma-es",
                  "SharpZO": "sharpzo"}
"""Label -> method of SharpZO and its baselines."""
FEWSHOT_METHODS = ("frozen", *PROMPT_METHODS.values())
COST_COLUMNS = ("peak_bytes", "optimizer_state_bytes", "peak / FO", "forwards", "step_over_forward")
LARGER = {"members": list(ZO_OPTIMIZERS), "cross_check": ["zo-sgd", "zo-sgd-sign", "zo-sgd-conserve", "zo-adam"],
          "prompt_methods": list(PROMPT_METHODS), "seeds": []}
"""The peers of the larger profiles: every ZeroFlow member and prompt method, on the profile's seeds."""
GPU = {**LARGER, "prompt_dim": 512, "fewshot_shots": 16, "fewshot_queries": 20000, "fewshot_stage1": 10,
       "memory_batch": 32}
"""SharpZO's own setting (its 512-d prompt, 16 shots) with ViT-B/16 on a GPU."""


def family_label(member: str, backend: str = "zolib") -> str:
    return f"Dual {member}" + ("" if backend == "zolib" else f", {backend}")


def cross_check_label(member: str, backend: str, lr: float) -> str:
    """The label of the infty cross-check run of ``member`` with ``backend`` (zolib or infty) at step ``lr``."""
    return family_label(member, backend) + f", zo_lr {lr:g}"


def fewshot_label(method: str) -> str:
    return f"few-shot {method}"


@register
class Peers(Notebook):
    stem = "07_peers"
    allow_divergence = True
    grids = {
        "cpu": {**LARGER, "members": ["zo-sgd", "zo-adam", "forward-grad"], "cross_check": ["zo-sgd", "zo-adam"],
                "prompt_dim": 32, "fewshot_shots": 16, "fewshot_queries": 2000, "fewshot_stage1": 10},
        "workshop": GPU,
        "paper": GPU,
    }

    def study(self, params: Params) -> Study:
        return {**self.class_incremental(params), **self.cross_check(params), **self.fewshot(params)}

    @staticmethod
    def class_incremental(params: Params) -> Study:
        """FO, frozen, conservative Dual and MoZO at their calibrated steps, ZO-FC as published, the
        ``prompt_methods`` (labels of :data:`PROMPT_METHODS`) with a ``prompt_dim``-d vector, and the ZeroFlow
        family (``members``) on Dual at calibrated steps: the rows of the accuracy-memory table."""
        study = {**references(), "Dual conservative, calibrated": {"method": "dual", "zo_lr": CALIBRATED},
                 "MoZO, calibrated": {"method": "mozo", "zo_lr": CALIBRATED}, "ZO-FC": {"method": "zo-fc"}}
        for label in params["prompt_methods"]:
            if label not in PROMPT_METHODS:
                raise ZolibError(f"unknown prompt method {label!r}; valid: {', '.join(PROMPT_METHODS)}")
            study[label] = {"method": PROMPT_METHODS[label], "prompt_dim": params["prompt_dim"]}
        for member in params["members"]:
            study[family_label(member)] = {"method": "dual", "zo_optimizer": member, "zo_lr": CALIBRATED}
        return study

    @staticmethod
    def cross_check(params: Params) -> Study:
        """The infty cross-check: the ``cross_check`` members on Dual at ``cross_check_lr``, with zolib's and
        with infty's ZeroFlow."""
        lr = float(params["cross_check_lr"])
        return {cross_check_label(m, backend, lr): {"method": "dual", "zo_optimizer": m, "zo_lr": lr,
                                                    "zo_backend": backend}
                for m in params["cross_check"] for backend in ("zolib", "infty")}

    @staticmethod
    def fewshot(params: Params) -> Study:
        """SharpZO's own setting (:mod:`zolib.cl.fewshot`): each of :data:`FEWSHOT_METHODS` tunes the
        ``prompt_dim``-d prompt vector on ``fewshot_shots`` images per class within ``fewshot_queries``
        forwards; SharpZO spends ``fewshot_stage1`` CMA-ES steps before its ZO stage."""
        study: Study = {}
        for method in FEWSHOT_METHODS:
            over: dict[str, Any] = {"method": method,
                                    "fewshot": (int(params["fewshot_shots"]), int(params["fewshot_queries"]))}
            if method != "frozen":
                over["prompt_dim"] = params["prompt_dim"]
            if method == "sharpzo":
                over.update(stage1_steps=params["fewshot_stage1"], stage1_fraction=0.0)
            study[fewshot_label(method)] = over
        return study

    # ------------------------------------------------------------------ tables
    def costs(self, profile: Profile, params: Params, seed: int):
        """Peak bytes, forwards and step cost of one training step of each class-incremental row
        (:func:`zolib.analysis.footprint.run_footprint`, random weights, ``memory_batch`` images), with
        ``peak / FO``. A calibrated row is measured at the harness lr: bytes do not depend on the step."""
        import pandas as pd

        from ..analysis.footprint import run_footprint
        rows = []
        for label, over in self.class_incremental(params).items():
            cfg = profile.experiment(seed=seed, **{k: v for k, v in over.items() if v != CALIBRATED})
            rows.append({"label": label, **run_footprint(cfg, batch=params["memory_batch"])})
        costs = pd.DataFrame(rows).set_index("label")
        costs["peak / FO"] = costs.peak_bytes / costs.loc[FO, "peak_bytes"]
        return costs

    def peers_table(self, table, costs, params: Params):
        """One row per benchmark and class-incremental method: accuracy (with its interval), forgetting, the
        gain over the frozen model, the share of predictions ZO changed, the ZO step, and the step's cost."""
        import pandas as pd
        rows = []
        for bench in table.benchmark.unique():
            t = table[table.benchmark == bench].set_index("label")
            for label in self.class_incremental(params):
                rows.append({"benchmark": bench, "label": label,
                             **t.loc[label, ["last", "last_lo", "last_hi", "avg", "forgetting", "gain_over_frozen",
                                             "zo_flips", "zo_lr"]].to_dict(),
                             **costs.loc[label, list(COST_COLUMNS)].to_dict()})
        return pd.DataFrame(rows)

    def cross_check_table(self, runs: AllRuns, params: Params):
        """Per benchmark and member: zolib's and infty's Last (mean and interval) and whether they agree
        (:func:`zolib.claims.cross_check`)."""
        import pandas as pd
        lr = float(params["cross_check_lr"])
        rows = []
        for bench, by_label in runs.items():
            for member in params["cross_check"]:
                ours, theirs = (by_label[cross_check_label(member, b, lr)] for b in ("zolib", "infty"))
                row: dict[str, Any] = {"benchmark": bench, "member": member}
                for name, r in (("zolib", ours), ("infty", theirs)):
                    m, lo, hi = mean_ci(list(metric(r, "last").values()))
                    row.update({f"{name} Last": m, f"{name} lo": lo, f"{name} hi": hi})
                rows.append({**row, **claims.cross_check(ours, theirs)})
        return pd.DataFrame(rows)

    @staticmethod
    def fewshot_runs(runs: AllRuns) -> dict[str, dict[str, Runs]]:
        """``{benchmark: {method: {seed: few-shot result}}}``."""
        return {bench: {m: by_label[fewshot_label(m)] for m in FEWSHOT_METHODS} for bench, by_label in runs.items()}

    def fewshot_table(self, runs: AllRuns):
        """One row per benchmark, method and seed of the few-shot runs: test accuracy, queries spent, zero-shot."""
        import pandas as pd
        return pd.DataFrame([{"benchmark": bench, "method": m, "seed": s, "accuracy": r["accuracy"],
                              "queries": r["queries"], "zero_shot": r["zero_shot"]}
                             for bench, by_method in self.fewshot_runs(runs).items()
                             for m, by_seed in by_method.items() for s, r in by_seed.items()])

    @staticmethod
    def fewshot_summary(table):
        """Per benchmark and method: mean test accuracy over seeds with its 95% interval, and queries spent."""
        import pandas as pd
        rows = []
        for (bench, method), g in table.groupby(["benchmark", "method"], sort=False):
            m, lo, hi = mean_ci(list(g.accuracy))
            rows.append({"benchmark": bench, "method": method, "accuracy": m, "accuracy_lo": lo, "accuracy_hi": hi,
                         "queries": g.queries.mean()})
        return pd.DataFrame(rows)

    @staticmethod
    def curves(by_method: Mapping[str, Runs], seed: int) -> dict[str, list]:
        """The training-loss curve (queries, loss) of each few-shot method on ``seed``."""
        return {name: by_seed[seed]["curve"] for name, by_seed in by_method.items() if by_seed[seed]["curve"]}

    def claims(self, runs: AllRuns, params: Params, profile: Profile, **measured: Any) -> list:
        """ZO-FC's and SharpZO's headlines per benchmark, and ZeroFlow's memory headline on ``measured["costs"]``."""
        from dataclasses import replace
        verdicts = []
        for bench, by_label in runs.items():
            named = claims.zo_fc(by_label, "ZO-FC", FO) + claims.sharpzo(self.fewshot_runs(runs)[bench])
            verdicts += [replace(v, claim=f"{bench}: {v.claim}") for v in named] if len(runs) > 1 else named
        costs = measured["costs"]
        verdicts += claims.zeroflow_memory({m: costs.loc[family_label(m), "peak / FO"] for m in params["members"]})
        return verdicts

