"""The variance of the ZO estimator (paper Eq. 2): theory, a numeric check, and per unit on CLIP.

Explained and plotted in notebooks/04_gradient_variance.ipynb.

Theory (``q`` directions averaged, ``d`` = dimension of the perturbed unit, ``g`` = its true
gradient). In the limit ``eps -> 0`` every estimator is ``g_hat = 1/q sum_k <g, z_k> z_k``,
unbiased, with mean squared error

    Gaussian z:    E|g_hat - g|^2 = (d + 1) |g|^2 / q
    Rademacher z:  E|g_hat - g|^2 = (d - 1) |g|^2 / q

(``E|<g,z> z|^2 = (d + 2)|g|^2`` resp. ``d |g|^2``, minus ``|g|^2``). So the *relative*
variance ``E|g_hat - g|^2 / |g|^2`` depends on the dimension only, not on the loss: a vision
unit of ViT-B/16 (width 768) is noisier than a text unit (width 512) by about 768/512.

Finite eps, on a quadratic ``L = 1/2 (theta - b)^T A (theta - b)``: the two-sided difference
is exact (``<g, z>``), so eps does not matter. The one-sided difference is
``<g, z> + eps/2 z^T A z``; the extra term is even in ``z``, so its product with ``z`` has mean
zero (no bias on a quadratic, for any symmetric ``z``) and it adds the variance

    Gaussian z:    eps^2 / (4 q) * (d + 4) [ (tr A)^2 + 2 tr(A^2) ]
    Rademacher z:  eps^2 / (4 q) * d [ (tr A)^2 + 2 sum_{i != j} A_ij^2 ]

(beyond quadratics the one-sided bias is O(eps^2) for a smooth loss, from the third
derivatives: see zolib.optim.zo). Cosine with the true gradient, Gaussian z, q = 1:
``E cos = E|u_1|`` for ``u`` uniform on the sphere ``= Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2))
~ sqrt(2 / (pi d))``; for ``q > 1`` and ``d >> q``: ``E cos ~ sqrt(2/d) Gamma((q+1)/2) / Gamma(q/2)``.
"""
from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Hashable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from scipy.special import gammaln

from ..models import clip_logits, clip_loss, feature_logits
from ..optim.directions import mix
from ..optim.zo import ZOConfig, eval_mode, estimate, make_groups, zo_gradient

ArrayLike = "float | np.ndarray"


# --------------------------------------------------------------------------- theory


def _hessian_term(hessian: torch.Tensor, distribution: str) -> float:
    """``E[(z^T A z)^2 |z|^2]`` for symmetric ``A`` (exact for both distributions)."""
    a = hessian.double()
    d, tr, tr2 = a.shape[0], float(a.trace()), float((a * a).sum())
    if distribution == "gaussian":
        return (d + 4) * (tr ** 2 + 2 * tr2)
    off = tr2 - float(a.diagonal().square().sum())
    return d * (tr ** 2 + 2 * off)


def estimator_mse(d: "float | np.ndarray", grad_sq: float = 1.0, *, q: int = 1, distribution: str = "gaussian",
                  estimator: str = "one-sided", eps: float = 0.0,
                  hessian: torch.Tensor | None = None) -> "float | np.ndarray":
    """Theoretical ``E|g_hat - g|^2`` of the ZO estimator (formulas in the module docstring).

    ``d`` may be an array (then ``hessian`` must be None). The eps term is added for the
    one-sided estimator when ``hessian`` (of a quadratic) is given; without it this is the
    ``eps -> 0`` value. See notebooks/04_gradient_variance.ipynb, section (a).
    """
    base = (np.asarray(d, dtype=float) + (1.0 if distribution == "gaussian" else -1.0)) * grad_sq / q
    if hessian is not None and estimator == "one-sided" and eps > 0:
        if hessian.shape[0] != int(np.asarray(d)):
            raise ValueError(f"hessian is {tuple(hessian.shape)} but d = {d}")
        base = base + eps ** 2 / (4 * q) * _hessian_term(hessian, distribution)
    return float(base) if np.ndim(base) == 0 else base


def expected_cosine(d: "float | np.ndarray", q: int = 1, distribution: str = "gaussian") -> "float | np.ndarray":
    """``E cos(g_hat, g)``: exact for Gaussian ``q = 1``, else the large-``d`` value (module docstring)."""
    d = np.asarray(d, dtype=float)
    if distribution == "gaussian" and q == 1:
        out = np.exp(gammaln(d / 2) - gammaln((d + 1) / 2)) / math.sqrt(math.pi)
    else:
        out = np.sqrt(2 / d) * math.exp(gammaln((q + 1) / 2) - gammaln(q / 2))
    return float(out) if out.ndim == 0 else out


def theory_curve(dims: Sequence[int], *, q: int = 1, distribution: str = "gaussian") -> list[dict[str, float]]:
    """Rows ``{d, relative_mse, expected_cosine}`` of the ``eps -> 0`` theory (relative = per ``|g|^2``)."""
    return [{"d": int(d), "relative_mse": estimator_mse(d, 1.0, q=q, distribution=distribution),
             "expected_cosine": expected_cosine(d, q, distribution)} for d in dims]


# --------------------------------------------------------------------------- numeric check


class QuadraticProblem(nn.Module):
    """``L(theta) = 1/2 (theta - b)^T A (theta - b)``, ``A = M M^T / d + I`` (SPD), seeded.

    Its exact gradient and Hessian feed :func:`estimator_mse`; notebook 04, section (a).
    """

    def __init__(self, d: int, seed: int = 0, dtype: torch.dtype = torch.float64):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        m = torch.randn(d, d, generator=gen, dtype=torch.float64)
        self.register_buffer("a", (m @ m.T / d + torch.eye(d, dtype=torch.float64)).to(dtype))
        self.register_buffer("b", torch.randn(d, generator=gen, dtype=torch.float64).to(dtype))
        self.theta = nn.Parameter(torch.randn(d, generator=gen, dtype=torch.float64).to(dtype))

    def forward(self) -> torch.Tensor:
        r = self.theta - self.b
        return 0.5 * r @ (self.a @ r)

    @property
    def hessian(self) -> torch.Tensor:
        return self.a

    def gradient(self) -> torch.Tensor:
        """The exact gradient ``A (theta - b)`` (float64)."""
        return (self.a.double() @ (self.theta.detach().double() - self.b.double()))


def sample_estimates(model: nn.Module, units: Mapping, closure: Callable[[], torch.Tensor], zo: ZOConfig,
                     n: int, seed: int = 0) -> torch.Tensor:
    """``n`` independent ZO estimates, flattened to rows ``(n, D)`` (float64), one
    :func:`zolib.optim.zo_gradient` call per sample with ``step_seed = mix(seed, i)``."""
    rows = []
    for i in range(n):
        est = zo_gradient(model, units, closure, zo, step_seed=mix(seed, i))
        rows.append(torch.cat([g.detach().double().flatten() for g in est.values()]))
    return torch.stack(rows)


def estimator_stats(samples: torch.Tensor, grad: torch.Tensor) -> dict[str, Any]:
    """Empirical statistics of estimate rows ``samples`` ``(n, D)`` against the true ``grad`` ``(D,)``.

    ``mse`` = mean ``|g_hat - g|^2``; ``bias_norm`` = ``|mean(g_hat) - g|`` (it includes the
    Monte Carlo error, about ``sqrt(mse / n)``); ``cosines`` per sample.
    """
    samples, grad = samples.double(), grad.double().flatten()
    err = (samples - grad).square().sum(1)
    cos = F.cosine_similarity(samples, grad.expand_as(samples), dim=1)
    gsq = float(grad.square().sum())
    bias = float((samples.mean(0) - grad).norm())
    return {"n": samples.shape[0], "d": samples.shape[1], "grad_sq": gsq, "mse": float(err.mean()),
            "mse_sem": float(err.std() / math.sqrt(len(err))) if len(err) > 1 else float("nan"),
            "relative_mse": float(err.mean()) / gsq, "bias_norm": bias, "relative_bias": bias / math.sqrt(gsq),
            "mean_cosine": float(cos.mean()), "cosines": cos.tolist()}


def quadratic_check(d: int, n: int, zo: ZOConfig = ZOConfig(), *, seed: int = 0,
                    dtype: torch.dtype = torch.float64) -> dict[str, Any]:
    """Sample ``n`` estimates on a :class:`QuadraticProblem` of dimension ``d``; compare with autograd
    and with the theory. Returns :func:`estimator_stats` plus ``theory_mse``, ``ratio`` (empirical
    / theory), ``theory_cosine`` and ``autograd_error`` (autograd vs the exact gradient)."""
    model = QuadraticProblem(d, seed, dtype)
    loss = model()
    (grad,) = torch.autograd.grad(loss, [model.theta])
    stats = estimator_stats(sample_estimates(model, {"theta": [model.theta]}, model, zo, n, seed), grad)
    theory = estimator_mse(d, stats["grad_sq"], q=zo.q, distribution=zo.distribution, estimator=zo.estimator,
                           eps=zo.eps, hessian=model.hessian)
    stats.update(eps=zo.eps, q=zo.q, estimator=zo.estimator, distribution=zo.distribution, dtype=str(dtype),
                 theory_mse=theory, ratio=stats["mse"] / theory,
                 theory_cosine=expected_cosine(d, zo.q, zo.distribution),
                 autograd_error=float((grad.double() - model.gradient()).norm() / model.gradient().norm()))
    return stats


# --------------------------------------------------------------------------- CLIP with adapters




def task_batches(bench, task: int, batch_size: int, tok: Callable, device: torch.device | str = "cpu",
                 seed: int = 0) -> tuple[torch.Tensor, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """The prompt tokens of ``task``'s classes and an endless, seeded stream of its training
    batches ``(images, labels)`` with labels remapped to ``0..classes-1`` (as the harness trains)."""
    from torch.utils.data import DataLoader, Subset
    classes = list(bench.scenario.tasks[task])
    idx = np.flatnonzero(np.isin(bench.train_targets, classes)).tolist()
    remap = torch.full((len(bench.class_names),), -1, dtype=torch.long)
    remap[torch.tensor(classes)] = torch.arange(len(classes))
    loader = DataLoader(Subset(bench.train, idx), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))

    def stream() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            for images, labels in loader:
                yield images.to(device), remap[torch.as_tensor(labels)].to(device)

    return tok(bench.prompts(classes)).to(device), stream()


def fo_warmup(model: nn.Module, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], tokens: torch.Tensor,
              steps: int, lr: float = 1e-3) -> list[float]:
    """``steps`` first-order AdamW steps on the trainable parameters (train mode, as the harness).

    MoE up-projections start at zero, so at initialisation the down-projections and routers
    have zero gradient; notebook 04 analyses the model after a few such steps. Returns the losses.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    was_training, losses = model.training, []
    model.train()
    for _ in range(steps):
        images, labels = next(batches)
        img = model.encode_image(images, normalize=True)
        loss = clip_loss(feature_logits(model, img, model.encode_text(tokens, normalize=True)), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.train(was_training)
    return losses


def unit_variance(model: nn.Module, images: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor, n: int,
                  zo: ZOConfig = ZOConfig(perturbation="block"), *, seed: int = 0,
                  units: "Mapping[Hashable, Mapping[str, nn.Parameter]] | None" = None) -> list[dict[str, Any]]:
    """Per (branch, layer) unit: ``n`` ZO estimates of that unit alone (block-wise perturbation)
    against the autograd gradient of the same loss on the same batch.

    The loss is :func:`zolib.models.clip_loss` in eval mode (dropout and router noise off), so
    it is deterministic. Units default to :func:`zolib.models.trainable_units`. Sample ``i`` of
    unit ``u`` averages ``zo.q`` directions; all samples of a unit come from one
    :func:`zolib.optim.zo.estimate` call with ``q = n * zo.q`` and ``step_seed = mix(seed, u)``
    (the same directions and arithmetic as ``zo_gradient``, but ``L(theta)`` computed once), and
    a perturbed forward recomputes only the perturbed branch (the other branch's features are
    fixed). Returns tidy rows: ``branch, layer, unit, dim, sample, cosine, sq_error,
    rel_sq_error, grad_norm, est_norm, theory_rel, eps, loss``. See notebook 04, section (b).
    """
    from ..models import trainable_units
    units = trainable_units(model) if units is None else units
    zo_n = replace(zo, q=n * zo.q)
    rows: list[dict[str, Any]] = []
    with eval_mode(model):
        params = [p for ps in units.values() for p in ps.values()]
        loss = clip_loss(clip_logits(model, images, tokens), labels)
        grads = dict(zip(map(id, params), torch.autograd.grad(loss, params, allow_unused=True)))
        with torch.inference_mode():
            img = model.encode_image(images, normalize=True)
            txt = model.encode_text(tokens, normalize=True)
            loss0 = float(clip_loss(feature_logits(model, img, txt), labels))
            def image_side() -> torch.Tensor:
                return clip_loss(feature_logits(model, model.encode_image(images, normalize=True), txt), labels)

            def text_side() -> torch.Tensor:
                return clip_loss(feature_logits(model, img, model.encode_text(tokens, normalize=True)), labels)
            closures = {"vision": image_side, "text": text_side}
            for pos, (key, ps) in enumerate(units.items()):
                branch, layer = key
                grad = torch.cat([(grads[id(p)] if grads[id(p)] is not None else torch.zeros_like(p))
                                  .detach().double().flatten() for p in ps.values()])
                groups = make_groups(model, {key: ps}, zo.eps_for)
                est, _ = estimate(closures[branch], groups, zo_n, mix(seed, pos),
                                  None if zo.estimator == "two-sided" else loss0)
                gsq, d = float(grad.square().sum()), grad.numel()
                theory = estimator_mse(d, 1.0, q=zo.q, distribution=zo.distribution)
                for i in range(n):
                    ks = range(i * zo.q, (i + 1) * zo.q)
                    g_hat = torch.cat([sum(est.coefs[0][k] * est.direction(e, k).double() for k in ks).flatten()
                                       for e in groups[0].entries]) / zo.q
                    sq = float((g_hat - grad).square().sum())
                    rows.append({"branch": branch, "layer": int(layer), "unit": f"{branch}/{layer}", "dim": d,
                                 "sample": i, "cosine": float(F.cosine_similarity(g_hat, grad, dim=0)),
                                 "sq_error": sq, "rel_sq_error": sq / gsq if gsq > 0 else float("nan"),
                                 "grad_norm": math.sqrt(gsq), "est_norm": float(g_hat.norm()),
                                 "theory_rel": theory, "eps": zo.eps_for(key), "loss": loss0})
    return rows


def unit_summary(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per unit from :func:`unit_variance` rows: ``rel_variance`` (mean of
    ``rel_sq_error``, i.e. ``E|g_hat - g|^2 / |g|^2``), its ``ratio`` to the theory, mean and
    median cosine, and the theoretical cosine (Gaussian, q = 1)."""
    by_unit: "OrderedDict[str, list[Mapping[str, Any]]]" = OrderedDict()
    for r in rows:
        by_unit.setdefault(r["unit"], []).append(r)
    out = []
    for unit, rs in by_unit.items():
        rel = float(np.mean([r["rel_sq_error"] for r in rs]))
        cos = np.array([r["cosine"] for r in rs])
        out.append({"branch": rs[0]["branch"], "layer": rs[0]["layer"], "unit": unit, "dim": rs[0]["dim"],
                    "n": len(rs), "grad_norm": rs[0]["grad_norm"], "rel_variance": rel,
                    "theory_rel": rs[0]["theory_rel"], "ratio": rel / rs[0]["theory_rel"],
                    "mean_cosine": float(cos.mean()), "median_cosine": float(np.median(cos)),
                    "theory_cosine": expected_cosine(rs[0]["dim"])})
    return out


def compare_branches(rows: Sequence[Mapping[str, Any]], metric: str,
                     alternative: str = "two-sided") -> dict[str, float]:
    """Mann-Whitney U test of ``metric`` between the vision and text rows (medians, U, p).

    Pass :func:`unit_variance` rows (one value per sample) or :func:`unit_summary` rows (one per
    unit). ``alternative="greater"`` tests vision > text.
    """
    from scipy.stats import mannwhitneyu
    v = [r[metric] for r in rows if r["branch"] == "vision"]
    t = [r[metric] for r in rows if r["branch"] == "text"]
    res = mannwhitneyu(v, t, alternative=alternative)
    return {"vision_median": float(np.median(v)), "text_median": float(np.median(t)), "n_vision": len(v),
            "n_text": len(t), "U": float(res.statistic), "p_value": float(res.pvalue)}


# --------------------------------------------------------------------------- notebook 04's tables

QUADRATIC_CASES = {"Gaussian, one-sided (paper Eq. 2)": ZOConfig(eps=1e-3),
                   "Rademacher, two-sided": ZOConfig(eps=1e-3, distribution="rademacher", estimator="two-sided")}
"""The estimators of section (a): the paper's, and ZO-FC's (Rademacher, two-sided)."""
EPS_CASES = {"one-sided, float64": ("one-sided", torch.float64), "one-sided, float32": ("one-sided", torch.float32),
             "two-sided, float64": ("two-sided", torch.float64)}
"""The estimator and precision of each curve of the eps sweep."""
BRANCH_NAMES = {"vision": "vision", "text": "language"}  # how notebook 04 names the branches


def quadratic_table(dims: Sequence[int], samples: int, seed: int = 0):
    """Section (a): for each case of :data:`QUADRATIC_CASES` and dimension, :func:`quadratic_check` (one
    row each, the per-sample cosines left out) plus ``rel_sem``, the standard error of the relative MSE."""
    import pandas as pd
    table = pd.DataFrame([{"case": label, **{k: v for k, v in quadratic_check(d, samples, zo, seed=seed + d).items()
                                             if k != "cosines"}}
                          for label, zo in QUADRATIC_CASES.items() for d in dims])
    table["rel_sem"] = table.mse_sem / table.grad_sq
    return table


def eps_table(eps_grid: Sequence[float], dim: int, samples: int, seed: int = 0):
    """Section (a), the eps sweep: relative MSE, its ratio to the theory and the relative bias of each
    case of :data:`EPS_CASES` at each eps, the same directions for every eps."""
    import pandas as pd
    rows = []
    for e in eps_grid:
        for label, (estimator, dtype) in EPS_CASES.items():
            r = quadratic_check(dim, samples, ZOConfig(eps=e, estimator=estimator), seed=seed, dtype=dtype)
            rows.append({"eps": e, "case": label, "relative_mse": r["relative_mse"], "ratio": r["ratio"],
                         "relative_bias": r["relative_bias"]})
    return pd.DataFrame(rows)


def clip_runs(cfg, runs: int, seed: int, samples: int, warm_steps: int, batch_size: int,
              zo: ZOConfig) -> list[dict[str, Any]]:
    """Sections (b) and (c): ``runs`` independent runs on ``cfg``'s model and benchmark (run ``r`` uses
    seed ``seed + r``: its own initialisation, warm-up batches, analysed batch and directions). In each, a
    fresh adapted CLIP takes ``warm_steps`` FO steps (:func:`fo_warmup`), then every unit is estimated
    ``samples`` times against autograd on a batch the warm-up did not see (:func:`unit_variance`).
    Returns the :func:`unit_variance` rows with their ``run``, ``batch`` and ``warm_losses``."""
    from ..cl.factory import build_model, load_benchmark, resolve_device
    from ..models import tokenizer
    device = resolve_device(cfg.device)
    bench = load_benchmark(cfg)
    tok = tokenizer(cfg.model_name)
    rows: list[dict[str, Any]] = []
    for r in range(runs):
        torch.manual_seed(seed + r)
        model = build_model(cfg, device)
        tokens, batches = task_batches(bench, 0, batch_size or cfg.batch_size, tok, device, seed=seed + r)
        warm = fo_warmup(model, batches, tokens, warm_steps, lr=cfg.lr)
        images, labels = next(batches)
        rows += [{**row, "run": r, "batch": len(labels), "warm_losses": warm}
                 for row in unit_variance(model, images, tokens, labels, samples, zo, seed=seed + r)]
    return rows


def branch_table(rows: Sequence[Mapping[str, Any]]):
    """Per branch of one run's :func:`unit_variance` rows: units, dimension, median gradient norm, median
    relative variance and its theory, median ratio to the theory, the theoretical cosine, and the mean and
    median cosine of single estimates (branches named as in :data:`BRANCH_NAMES`)."""
    import pandas as pd
    df = pd.DataFrame(rows).assign(branch=lambda d: d.branch.map(BRANCH_NAMES))
    units = pd.DataFrame(unit_summary(rows)).assign(branch=lambda d: d.branch.map(BRANCH_NAMES))
    table = units.groupby("branch", sort=False).agg(
        units=("unit", "size"), dim=("dim", "first"), grad_norm=("grad_norm", "median"),
        rel_variance=("rel_variance", "median"), theory_rel=("theory_rel", "first"), ratio=("ratio", "median"),
        theory_cosine=("theory_cosine", "first"))
    table["mean_cosine"] = df.groupby("branch", sort=False).cosine.mean()
    table["median_cosine"] = df.groupby("branch", sort=False).cosine.median()
    return table


def per_run(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, dict[str, float]]]:
    """Section (c), the paired design: per run, each branch's median relative variance, median ratio to the
    theory and median cosine (``[{"vision": {...}, "language": {...}}, ...]``, the input of
    :func:`zolib.claims.gradient_variance`)."""
    import pandas as pd
    out = []
    for r in sorted({row["run"] for row in rows}):
        mine = [row for row in rows if row["run"] == r]
        summ = pd.DataFrame(unit_summary(mine))
        cos = pd.DataFrame(mine).groupby("branch").cosine.median()
        out.append({BRANCH_NAMES[b]: {"rel_variance": float(g.rel_variance.median()), "ratio": float(g.ratio.median()),
                                      "cosine": float(cos[b])} for b, g in summ.groupby("branch")})
    return out


def per_run_table(per_run: Sequence[Mapping[str, Mapping[str, float]]]):
    """:func:`per_run`'s medians as one row per run (columns ``<branch> <statistic>``)."""
    import pandas as pd
    return pd.DataFrame([{"run": r, **{f"{b} {k}": v for b, d in pr.items() for k, v in d.items()}}
                         for r, pr in enumerate(per_run)])
