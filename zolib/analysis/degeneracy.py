"""Does eps change anything? The check behind MoZO's default (notebook 05, tests/test_mozo.py).

With the conservative rule, a sign normalisation and one direction (``q = 1``) the candidates
``{theta, theta - eta sign(c z), theta + eta sign(c z)}`` are the same set whatever the measured
difference ``c`` is, because ``sign(c z) = sign(c) sign(z)``: the rule becomes a random search along
``sign(z)``, and no eps (so no ``eps_v < eps_l``) can change a single parameter. With two directions
the sign of ``c_1 z_1 + c_2 z_2`` depends on the ``c_k``, and with the joint perturbation each
``c_k`` mixes both modalities in proportion to their eps, so ``eps_v / eps_l`` steers the update.

:func:`eps_sensitivity` runs the optimizer on a small two-modality quadratic with several
``eps_vision`` and reports whether the parameters ever differ.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from ..optim.hybrid import HybridOptimizer
from ..optim.zo import ZOConfig


class TwoModalityQuadratic(nn.Module):
    """``L = 1/2 |A v + B t - y|^2``: a vision and a text parameter coupled through one target."""

    def __init__(self, dv: int = 24, dt: int = 16, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Linear(dv, 8, bias=False)
        self.b = nn.Linear(dt, 8, bias=False)
        with torch.no_grad():
            self.a.weight.copy_(torch.randn(8, dv, generator=g) / dv ** 0.5)
            self.b.weight.copy_(torch.randn(8, dt, generator=g) / dt ** 0.5)
        self.v = nn.Linear(dv, dv, bias=False)  # the "vision adapter": v(x_v)
        self.t = nn.Linear(dt, dt, bias=False)  # the "text adapter": t(x_t)
        with torch.no_grad():
            self.v.weight.copy_(torch.eye(dv))
            self.t.weight.copy_(torch.eye(dt))
        self.xv, self.xt = torch.randn(dv, generator=g), torch.randn(dt, generator=g)
        self.y = torch.randn(8, generator=g)

    def forward(self) -> torch.Tensor:
        return 0.5 * (self.a(self.v(self.xv)) + self.b(self.t(self.xt)) - self.y).square().sum()

    def units(self) -> dict:
        return {("vision", 0): [self.v.weight], ("text", 0): [self.t.weight]}


def eps_sensitivity(rule: str = "conservative", sign: str = "elementwise", q: int = 1,
                    eps_visions: Sequence[float] = (1e-3, 5e-4, 1e-1), eps_text: float = 1e-3, steps: int = 200,
                    lr: float = 1e-2, seed: int = 0) -> dict[str, Any]:
    """Train :class:`TwoModalityQuadratic` ``steps`` steps per ``eps_vision`` (same seeds otherwise);
    ``identical`` says whether every run ends with bit-identical parameters."""
    finals, losses = [], []
    for eps_v in eps_visions:
        model = TwoModalityQuadratic(seed=seed)
        zo = ZOConfig(rule=rule, sign=sign, q=q, eps_vision=eps_v, eps_text=eps_text, zo_lr=lr)
        opt = HybridOptimizer(model, model.units(), {k: "zo" for k in model.units()}, lr=lr, zo=zo, seed=seed)
        for _ in range(steps):
            opt.step(model)
        finals.append(torch.cat([model.v.weight.detach().flatten(), model.t.weight.detach().flatten()]))
        with torch.no_grad():
            losses.append(float(model()))
    diff = max(float((f - finals[0]).abs().max()) for f in finals)
    return {"rule": rule, "sign": sign, "q": q, "eps_visions": list(eps_visions),
            "identical": all(torch.equal(f, finals[0]) for f in finals), "max_param_diff": diff,
            "final_losses": losses}
