"""SharpZO (arXiv 2506.20990): forward-only prompt tuning in two stages, over a low-dimensional vector.

The trainable parameter is the vector ``z`` of a :class:`zolib.models.prompt.PromptContext` (CoOp
context through a fixed random projection). Every query is one forward; the image side does not
change with ``z``, so its features are computed once per step and only the text encoder runs per
query (:class:`zolib.models.partial.PartialForward`).

- **Stage 1, sharpness-aware CMA-ES** (``pycma``): each step estimates the gradient at the
  distribution mean by coordinate-wise central differences (``2 dim`` queries, step ``fd_step``),
  draws a population, and evaluates every candidate at ``x + rho g / |g|`` (a SAM-like worst
  neighbour) before telling CMA-ES the losses; ``z`` becomes the new mean. zolib's reading where the
  paper note is unspecific: one gradient per generation, at the mean (not per candidate).
- **Stage 2, sparse ZO-SGD** after ``stage1_steps`` steps (SharpZO: 100-500 or a validation plateau):
  two-sided, ``q = 1``, perturbation masked to the coordinates with the highest score
  ``z^2 * zscore(|g|)`` (``g``: the latest gradient estimate), keeping ``1 - sparsity`` of them, the
  mask renewed every ``mask_every`` steps.

Where the released code (``yifanycc/sharpzo`` at 13b491f) differs, and zolib follows the paper or
its own choice: CMA-ES ``sigma`` 0.4 with full covariance over a wider projection, a sharpness shift
of norm ``rho / sqrt(population)``, a fixed stage-1 length, and an *unmasked* stage 2 at a constant
step (closest here: ``prompt-zo-sgd``). Notebook 07 lists these next to the comparison.

``stage1_steps=None`` runs stage 1 only ("CMA-ES alone", with ``rho = 0`` plain CMA-ES); zolib's
``prompt-zo-sgd`` method is ZO-SGD alone (the hybrid optimizer on the prompt unit).
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..errors import ZolibError, check_choice
from .hybrid import StepResult
from .zo import loss_value

PROMPT_MODES = ("fo", "zo", "cmaes", "sharpzo")


@dataclass(frozen=True)
class SharpZOConfig:
    """SharpZO's settings (the paper's values where the note gives them) and the prompt's shape."""

    prompt_mode: str = "fo"        # fo (CoOp) | zo (ZO-SGD alone) | cmaes (CMA-ES alone) | sharpzo
    prompt_dim: int = 512          # dimension of z (SharpZO: 512)
    n_ctx: int = 4                 # context tokens (CoOp, SharpZO: 4)
    population: int = 40
    sigma: float = 0.1             # CMA-ES's initial step size, in units of z (zolib's choice)
    rho: float = 0.1               # sharpness radius
    fd_step: float = 1e-3          # coordinate-wise central differences
    stage1_steps: int = 100        # steps of stage 1 per task, then stage 2 (0: stage 2 from the start)
    stage1_fraction: float = 0.0   # > 0: stage 1 lasts this share of each task's steps instead
    sparsity: float = 0.5          # share of coordinates stage 2 leaves unperturbed
    mask_every: int = 200          # stage 2 renews its mask every this many steps

    def __post_init__(self) -> None:
        check_choice("prompt mode", self.prompt_mode, PROMPT_MODES)
        if self.prompt_dim < 1 or self.n_ctx < 1 or self.population < 2:
            raise ZolibError("prompt_dim and n_ctx must be >= 1 and population >= 2")
        if not 0 <= self.sparsity < 1:
            raise ZolibError(f"sparsity must be in [0, 1), got {self.sparsity}")


class SharpZO:
    """The two stages over ``z`` with the ``step(closure) -> StepResult`` of every zolib optimizer.

    ``lr`` and ``eps`` are stage 2's (SharpZO: 1e-3 both); ``schedule`` scales ``lr``.
    """

    def __init__(self, z: torch.nn.Parameter, cfg: SharpZOConfig, *, lr: float = 1e-3, eps: float = 1e-3,
                 schedule: Callable[[int], float] | None = None, seed: int = 0, partial=None,
                 total_steps: int | None = None):
        import cma
        self.z, self.cfg, self.lr, self.eps, self.schedule, self.seed = z, cfg, lr, eps, schedule, seed
        self.partial = partial
        self.steps = 0
        self.switch = (round(cfg.stage1_fraction * total_steps) if cfg.stage1_fraction and total_steps
                       else cfg.stage1_steps)
        self.stage1 = cfg.prompt_mode == "cmaes" or (cfg.prompt_mode == "sharpzo" and self.switch > 0)
        self.rho = cfg.rho if cfg.prompt_mode == "sharpzo" else 0.0
        self.es = cma.CMAEvolutionStrategy(z.detach().double().cpu().numpy(), cfg.sigma,
                                           {"popsize": cfg.population, "seed": seed % (2**31 - 1) + 1,
                                            "verbose": -9, "CMA_diagonal": cfg.prompt_dim > 100})
        self.grad = np.zeros(cfg.prompt_dim)
        self.mask = np.ones(cfg.prompt_dim)
        self.rng = np.random.default_rng(seed)

    @property
    def forwards_per_step(self) -> int:
        """Forwards the next step runs: stage 1 ``1 + 2 dim (with sharpness) + population``; stage 2 two
        probes, plus the unperturbed forward when partial forwards need it recorded."""
        if self.stage1:
            return 1 + (2 * self.cfg.prompt_dim if self.rho else 0) + self.cfg.population
        return 2 + (self.partial is not None)

    def state_of(self, param: torch.Tensor) -> dict:
        """No torch tensors: SharpZO's state is NumPy (see :meth:`state_bytes`)."""
        return {}

    def state_bytes(self) -> int:
        """Bytes of the optimizer's own state: CMA-ES's distribution (mean, evolution paths, covariance
        and its eigendecomposition, as pycma holds them) and stage 2's gradient estimate and mask."""
        arrays = [self.grad, self.mask, np.asarray(self.es.mean)]
        sm = self.es.sm
        arrays += [np.asarray(getattr(sm, name)) for name in ("C", "B", "D") if getattr(sm, name, None) is not None]
        arrays += [np.asarray(getattr(self.es.adapt_sigma, name)) for name in ("ps",)
                   if getattr(self.es.adapt_sigma, name, None) is not None]
        arrays += [np.asarray(self.es.pc)] if getattr(self.es, "pc", None) is not None else []
        return int(sum(a.nbytes for a in arrays))

    # ------------------------------------------------------------------ queries
    def _loss(self, closure, x: np.ndarray) -> float:
        """L at ``z = x`` (z's data swapped for the query, restored after)."""
        original = self.z.data
        self.z.data = torch.as_tensor(x, dtype=original.dtype, device=original.device)
        try:
            with self.partial.replay({"vision": None, "text": 0}) if self.partial and self.partial.ready \
                    else nullcontext():
                return float(closure())
        finally:
            self.z.data = original

    def gradient(self, closure, x: np.ndarray) -> np.ndarray:
        """Coordinate-wise central differences at ``x`` (``2 dim`` queries)."""
        h = self.cfg.fd_step
        g = np.zeros_like(x)
        for i in range(len(x)):
            e = np.zeros_like(x)
            e[i] = h
            g[i] = (self._loss(closure, x + e) - self._loss(closure, x - e)) / (2 * h)
        return g

    def shifted(self, candidates: list[np.ndarray], g: np.ndarray) -> list[np.ndarray]:
        """Each candidate moved by ``rho g / |g|`` (no move without a gradient or with ``rho = 0``)."""
        norm = float(np.linalg.norm(g))
        if not self.rho or norm == 0:
            return [np.asarray(c) for c in candidates]
        return [np.asarray(c) + self.rho * g / norm for c in candidates]

    def renew_mask(self) -> None:
        """Keep the ``1 - sparsity`` coordinates of highest ``z^2 * zscore(|g|)``."""
        a = np.abs(self.grad)
        score = self.z.detach().double().cpu().numpy() ** 2 * ((a - a.mean()) / (a.std() + 1e-12))
        keep = max(1, round((1 - self.cfg.sparsity) * len(score)))
        self.mask = np.zeros_like(score)
        self.mask[np.argsort(-score, kind="stable")[:keep]] = 1.0

    # ------------------------------------------------------------------ a step
    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor]) -> StepResult:
        if self.stage1 and self.cfg.prompt_mode == "sharpzo" and self.steps >= self.switch:
            self.stage1 = False  # the switch: from now on sparse ZO-SGD
            self.renew_mask()
        forwards = self.forwards_per_step
        with torch.inference_mode():
            loss0 = None
            if self.partial:
                with self.partial.record():
                    loss0 = loss_value(closure(), self.steps, "unperturbed")
            elif self.stage1:
                loss0 = loss_value(closure(), self.steps, "unperturbed")
            x = self.z.detach().double().cpu().numpy()
            if self.stage1:
                info = self._cma_step(closure, x)
            else:
                info = self._zo_step(closure, x)
        if self.partial:
            self.partial.clear()
        self.steps += 1
        return StepResult(loss0 if loss0 is not None else info["loss"], forwards, info)

    def _cma_step(self, closure, x: np.ndarray) -> dict:
        queries = 0
        g = np.zeros_like(x)
        if self.rho:
            g = self.gradient(closure, np.asarray(self.es.mean))
            self.grad = g
            queries += 2 * len(x)
        candidates = self.es.ask()
        losses = [self._loss(closure, c) for c in self.shifted(candidates, g)]
        queries += len(candidates)
        self.es.tell(candidates, [v if math.isfinite(v) else 1e30 for v in losses])
        self.z.data.copy_(torch.as_tensor(self.es.mean, dtype=self.z.dtype))
        return {"stage": 1, "queries": queries, "population_losses": losses}

    def _zo_step(self, closure, x: np.ndarray) -> dict:
        if self.cfg.mask_every and self.steps % self.cfg.mask_every == 0 and self.cfg.prompt_mode == "sharpzo":
            self.renew_mask()
        u = self.rng.standard_normal(len(x)) * self.mask
        plus, minus = self._loss(closure, x + self.eps * u), self._loss(closure, x - self.eps * u)
        coef = (plus - minus) / (2 * self.eps)
        self.grad = coef * u
        lr = self.lr * (self.schedule(self.steps) if self.schedule else 1.0)
        self.z.data.copy_(torch.as_tensor(x - lr * coef * u, dtype=self.z.dtype))
        return {"stage": 2, "queries": 2, "projected": coef, "loss": loss_value((plus + minus) / 2, self.steps, "probe")}

