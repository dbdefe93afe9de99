"""Mixture-of-experts adapters, faithful to MoE-Adapters4CL (Yu et al., CVPR 2024).

Each transformer block of both encoders gets one :class:`MoEAdapter` in parallel to
its MLP, reading the post-attention residual ``x`` (not ``ln_2(x)``)::

    x = x + attn(ln_1(x))
    x = x + mlp(ln_2(x)) + sum_i gate_i(x[:, 0]) * expert_i(x)

Experts are ``Linear(width, bottleneck) -> ReLU -> Dropout -> Linear(bottleneck, width)``
times ``scale``; the router and noise matrices and the up-projections are zero-initialised,
so an adapted model starts as exactly the frozen one.

Deviation from the public code (documented on purpose): routing noise is switched off
in eval mode (the public code keeps it on at evaluation), so evaluation and every ZO
forward pass are deterministic. See ``notebooks/00_setup.ipynb``.

Randomness (train mode only): expert dropout and router noise come from the global RNG, or,
after :meth:`MoEAdapter.reseed`, from generators seeded by ``(seed, what, expert)``, so that
every forward until the next reseed draws the same masks and noise. The hybrid optimizer
reseeds once per step: a step's unperturbed and perturbed forwards then differ only by the
perturbation, even when a forward recomputes only some layers (:mod:`zolib.optim.hybrid`).
The router-noise matrix acts only through that train-mode noise, so a ZO forward (always in
eval mode) gives it no signal: it is never a ZO parameter (:data:`zolib.models.units.ZO_INERT`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..rng import generator, mix


@dataclass(frozen=True)
class MoEConfig:
    """MoE adapter settings; defaults are MoE-Adapters4CL's (paper.md section 2)."""

    num_experts: int = 2
    top_k: int = 2
    bottleneck: int = 64
    scale: float = 0.1
    dropout: float = 0.1
    noisy_router: bool = True


class Expert(nn.Module):
    """Bottleneck MLP whose up-projection starts at zero."""

    def __init__(self, width: int, bottleneck: int, dropout: float):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.dropout = nn.Dropout(dropout)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, seed: int | None = None) -> torch.Tensor:
        """``up(dropout(relu(down(x))))``; in train mode with a ``seed``, the dropout mask is drawn from it."""
        h = F.relu(self.down(x))
        if seed is not None and self.training and self.dropout.p > 0:
            keep = torch.rand(h.shape, generator=generator(h.device, seed), device=h.device, dtype=h.dtype)
            return self.up(h * (keep >= self.dropout.p).to(h.dtype) / (1 - self.dropout.p))
        return self.up(self.dropout(h))


class MoEAdapter(nn.Module):
    """Noisy top-k router over ``num_experts`` bottleneck experts (one per block)."""

    def __init__(self, width: int, cfg: MoEConfig = MoEConfig()):
        super().__init__()
        if not 1 <= cfg.top_k <= cfg.num_experts:
            raise ValueError(f"top_k must be in 1..{cfg.num_experts}, got {cfg.top_k}")
        self.cfg = cfg
        self.router = nn.Parameter(torch.zeros(width, cfg.num_experts))
        self.noise = nn.Parameter(torch.zeros(width, cfg.num_experts))
        self.experts = nn.ModuleList(Expert(width, cfg.bottleneck, cfg.dropout)
                                     for _ in range(cfg.num_experts))
        self.seed: int | None = None

    def reseed(self, seed: int | None) -> None:
        """Draw dropout masks and router noise from ``seed`` in every forward until the next call
        (None: from the global RNG)."""
        self.seed = seed

    def gates(self, h: torch.Tensor) -> torch.Tensor:
        """Gate weights (batch, num_experts) from the router input ``h`` (batch, width)."""
        logits = h @ self.router
        if self.training and self.cfg.noisy_router:
            std = F.softplus(h @ self.noise) + 1e-2
            if self.seed is None:
                noise = torch.randn_like(logits)
            else:
                noise = torch.randn(logits.shape, generator=generator(logits.device, mix(self.seed, 0)),
                                    device=logits.device, dtype=logits.dtype)
            logits = logits + noise * std
        if self.cfg.top_k < self.cfg.num_experts:
            top, idx = logits.topk(self.cfg.top_k, dim=-1)
            return torch.zeros_like(logits).scatter(-1, idx, top.softmax(-1))
        return logits.softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Adapter output for ``x`` of shape (batch, tokens, width); token 0 feeds the router."""
        gates = self.gates(x[:, 0])
        out = 0
        for i, expert in enumerate(self.experts):
            seed = None if self.seed is None else mix(self.seed, 1 + i)
            out = out + gates[:, i, None, None] * expert(x, seed)
        return out * self.cfg.scale
