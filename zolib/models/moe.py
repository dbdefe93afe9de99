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
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.dropout(F.relu(self.down(x))))


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

    def gates(self, h: torch.Tensor) -> torch.Tensor:
        """Gate weights (batch, num_experts) from the router input ``h`` (batch, width)."""
        logits = h @ self.router
        if self.training and self.cfg.noisy_router:
            std = F.softplus(h @ self.noise) + 1e-2
            logits = logits + torch.randn_like(logits) * std
        if self.cfg.top_k < self.cfg.num_experts:
            top, idx = logits.topk(self.cfg.top_k, dim=-1)
            return torch.zeros_like(logits).scatter(-1, idx, top.softmax(-1))
        return logits.softmax(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Adapter output for ``x`` of shape (batch, tokens, width); token 0 feeds the router."""
        gates = self.gates(x[:, 0])
        out = 0
        for i, expert in enumerate(self.experts):
            out = out + gates[:, i, None, None] * expert(x)
        return out * self.cfg.scale
