"""LoRA adapters for open_clip transformers.

Placement (zolib's choice; the paper does not give it): the two linear layers of every
block's MLP, ``mlp.c_fc`` and ``mlp.c_proj``, in both encoders. open_clip's attention is a
``torch.nn.MultiheadAttention`` whose packed ``in_proj_weight`` and ``out_proj`` are used
inside ``F.multi_head_attention_forward`` without calling the sub-modules' ``forward``, so a
LoRA on q/v would mean re-implementing attention (peft supports ``MultiheadAttention`` only
experimentally and would add transformers/accelerate as dependencies). The MLP linears are
plain ``nn.Linear``, which a dozen lines handle exactly. Rank and alpha are parameters;
``B`` starts at zero so the adapted model starts unchanged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA settings: rank, alpha (update scale alpha/rank) and the MLP linears to adapt."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("c_fc", "c_proj")


class LoRALinear(nn.Linear):
    """``nn.Linear`` plus a low-rank update ``(alpha / rank) * B @ A``.

    Made by :func:`add_lora` from an existing ``nn.Linear`` (class swap), so the frozen
    weight keeps its state-dict key and pretrained checkpoints still load.
    """

    lora_A: nn.Parameter
    lora_B: nn.Parameter
    lora_scale: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.linear(x, self.weight, self.bias)
        return base + F.linear(F.linear(x, self.lora_A), self.lora_B) * self.lora_scale


def add_lora(linear: nn.Linear, cfg: LoRAConfig) -> LoRALinear:
    """Turn ``linear`` into a :class:`LoRALinear` in place and return it."""
    linear.__class__ = LoRALinear
    ref = linear.weight
    linear.lora_A = nn.Parameter(torch.empty(cfg.rank, linear.in_features, dtype=ref.dtype, device=ref.device))
    linear.lora_B = nn.Parameter(torch.zeros(linear.out_features, cfg.rank, dtype=ref.dtype, device=ref.device))
    nn.init.kaiming_uniform_(linear.lora_A, a=math.sqrt(5))
    linear.lora_scale = cfg.alpha / cfg.rank
    return linear  # type: ignore[return-value]
