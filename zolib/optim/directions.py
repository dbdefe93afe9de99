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

import torch

from ..errors import check_choice

DISTRIBUTIONS = ("gaussian", "rademacher")
_MASK64 = (1 << 64) - 1
_GENERATORS: dict[torch.device, torch.Generator] = {}


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def mix(*values: int) -> int:
    """Hash integers into a 63-bit seed (splitmix64 chain; well spread, order-sensitive)."""
    h = 0x243F6A8885A308D3
    for v in values:
        h = _splitmix64(h ^ (int(v) & _MASK64))
    return h >> 1


def step_seed(base_seed: int, step: int) -> int:
    """The seed of optimizer step ``step`` for a run seeded with ``base_seed``."""
    return mix(base_seed, step)


def direction_seed(step_seed_: int, param_index: int, k: int = 0) -> int:
    """The seed of direction ``k`` of parameter ``param_index`` within one step."""
    return mix(step_seed_, param_index, k)


def _generator(device: torch.device) -> torch.Generator:
    gen = _GENERATORS.get(device)
    if gen is None:
        gen = _GENERATORS[device] = torch.Generator(device=device)
    return gen


def sample_direction(like: torch.Tensor, seed: int, distribution: str = "gaussian") -> torch.Tensor:
    """A fresh direction shaped like ``like``: standard normal or Rademacher (+-1) entries.

    The same ``(seed, shape, dtype, device, distribution)`` always gives the same tensor.
    """
    gen = _generator(like.device)
    gen.manual_seed(seed)
    if distribution == "gaussian":
        return torch.randn(like.shape, generator=gen, dtype=like.dtype, device=like.device)
    if distribution == "rademacher":
        z = torch.randint(0, 2, like.shape, generator=gen, dtype=like.dtype, device=like.device)
        return z.mul_(2).sub_(1)
    check_choice("distribution", distribution, DISTRIBUTIONS)
    raise AssertionError("unreachable")
