"""Seeded random directions for zeroth-order estimates, regenerated on demand (MeZO's trick).

A direction tensor ``z`` is never stored: it is a pure function of a 63-bit seed, the
parameter's shape, dtype and device, and the distribution. Seeds are derived by hashing

    step_seed      = mix(base_seed, step)
    direction_seed = mix(step_seed, param_index, k)

so the ``k``-th direction of parameter ``param_index`` does not depend on the order in
which parameters are perturbed or updated (forward order in the hooks, parameter order in
the update). Sampling uses a dedicated :class:`torch.Generator` per device, never the
global RNG, so the user's random stream (data order, dropout) is untouched.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..errors import check_choice
from ..rng import generator, mix

DISTRIBUTIONS = ("gaussian", "rademacher")


def step_seed(base_seed: int, step: int) -> int:
    """The seed of optimizer step ``step`` for a run seeded with ``base_seed``."""
    return mix(base_seed, step)


@lru_cache(maxsize=1 << 16)
def direction_seed(step_seed_: int, param_index: int, k: int = 0) -> int:
    """The seed of direction ``k`` of parameter ``param_index`` within one step (memoised: a step asks
    for the same seeds in its probes, its candidates and its update)."""
    return mix(step_seed_, param_index, k)


def sample_direction(like: torch.Tensor, seed: int, distribution: str = "gaussian") -> torch.Tensor:
    """A fresh direction shaped like ``like``: standard normal or Rademacher (+-1) entries.

    The same ``(seed, shape, dtype, device, distribution)`` always gives the same tensor.
    """
    gen = generator(like.device, seed)
    if distribution == "gaussian":
        return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)
    if distribution == "rademacher":
        z = torch.randint(0, 2, like.shape, generator=gen, dtype=like.dtype, device=like.device)
        return z.mul_(2).sub_(1)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    raise AssertionError("unreachable")
