"""Seeded randomness that never touches the global RNG: integer seed mixing and one reusable
:class:`torch.Generator` per device.

Used by the ZO directions (:mod:`zolib.optim.directions`, MeZO's seed trick) and by the MoE
adapters' dropout and router noise (:mod:`zolib.models.moe`), which every forward of one
optimizer step must draw identically (see :mod:`zolib.optim.hybrid`).
"""
from __future__ import annotations

import torch

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


def generator(device: torch.device | str, seed: int) -> torch.Generator:
    """This device's shared generator, reseeded with ``seed`` (use it at once: the next call reseeds it)."""
    gen = _GENERATORS.get(device)
    if gen is None:
        key = device
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        gen = _GENERATORS[key] = _GENERATORS.get(device) or torch.Generator(device=device)
    return gen.manual_seed(seed)
