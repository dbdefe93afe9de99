"""Partial forwards: a perturbed forward recomputes only what its perturbation changes.

A perturbation of some adapter units of CLIP changes nothing below them:

- when no unit of a branch is perturbed, that branch's features are the unperturbed forward's;
- when the lowest perturbed layer of a branch is ``k``, the hidden state entering layer ``k`` is
  the unperturbed forward's.

:class:`PartialForward` records both during a step's unperturbed forward (:meth:`PartialForward.record`)
and serves them to the step's perturbed forwards (:meth:`PartialForward.replay`): the features of
an unperturbed branch are returned without running its encoder, and the blocks below the lowest
perturbed layer of a perturbed branch return the recorded hidden state instead of computing it.
The rest runs exactly as in a full forward, on the same inputs, so the losses are the same bit for
bit (tests/test_partial.py), provided the unperturbed and perturbed forwards run the same kernels
and draw the same dropout masks, which :class:`zolib.optim.HybridOptimizer` ensures (one fast-path
setting and one dropout seed per step).

What it holds between the forwards of a step (:attr:`PartialForward.cached_bytes`): one hidden
state per (branch, start layer) and the features of each encoder call. For a branch with FO units
the hidden state is a tensor autograd saved anyway (same storage); for an all-ZO branch it is one
activation, released at the end of the step: still nothing is saved for backward.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Mapping

import torch
from torch import nn

from .clip import blocks

ENCODERS = {"vision": "encode_image", "text": "encode_text"}


class PartialForward:
    """Record-and-replay of what the perturbation cannot change (see the module docstring).

    ``starts[branch]``: the layers at which a perturbed forward of this step may start (the lowest
    perturbed layer of each planned perturbation); their inputs are recorded.
    """

    def __init__(self, model: nn.Module, starts: Mapping[str, set[int]]):
        self.model = model
        self.blocks = blocks(model)
        self.starts = {b: sorted(k for k in ks if k > 0) for b, ks in starts.items()}
        self.inputs: dict[tuple[str, int], torch.Tensor] = {}
        self.features: dict[str, list[torch.Tensor]] = {b: [] for b in ENCODERS}
        self.ready = False

    @staticmethod
    def supports(model: nn.Module) -> bool:
        """Whether ``model`` is an open_clip CLIP with blocks in both encoders."""
        return all(hasattr(model, name) for name in ENCODERS.values()) and hasattr(model, "visual") and \
            hasattr(getattr(model.visual, "transformer", None), "resblocks") and \
            hasattr(getattr(model, "transformer", None), "resblocks")

    @property
    def cached_bytes(self) -> int:
        """Bytes of the distinct storages held for the step's perturbed forwards."""
        seen = {}
        for t in [*self.inputs.values(), *(f for fs in self.features.values() for f in fs)]:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return sum(seen.values())

    def clear(self) -> None:
        self.inputs.clear()
        for fs in self.features.values():
            fs.clear()
        self.ready = False

    @contextmanager
    def record(self) -> Iterator[None]:
        """Around the unperturbed forward: keep the inputs of the start layers and every encoder output."""
        self.clear()
        handles = []
        for branch, layers in self.starts.items():
            for k in layers:
                def keep(module, args, branch=branch, k=k):
                    self.inputs[(branch, k)] = args[0].detach()
                handles.append(self.blocks[branch][k].register_forward_pre_hook(keep))
        originals = {}
        for branch, name in ENCODERS.items():
            original = getattr(self.model, name)
            originals[name] = original

            def wrapped(*args, _original=original, _branch=branch, **kwargs):
                out = _original(*args, **kwargs)
                self.features[_branch].append(out.detach())
                return out
            self.model.__dict__[name] = wrapped
        try:
            yield
            self.ready = True
        finally:
            for h in handles:
                h.remove()
            for name in originals:
                self.model.__dict__.pop(name, None)

    @contextmanager
    def replay(self, lowest: Mapping[str, int | None]) -> Iterator[None]:
        """Around a perturbed forward whose lowest perturbed layer is ``lowest[branch]`` (None: the
        branch is not perturbed). Without a recorded forward it changes nothing."""
        if not self.ready:
            yield
            return
        patched: list[tuple[object, str]] = []
        for branch, name in ENCODERS.items():
            k = lowest.get(branch)
            if k is None and self.features[branch]:
                served = iter(self.features[branch])
                original = getattr(self.model, name)

                def cached(*args, _served=served, _original=original, **kwargs):
                    return _next_or_compute(_served, _original, args, kwargs)
                self.model.__dict__[name] = cached
                patched.append((self.model, name))
            elif k and (branch, k) in self.inputs:
                hidden = self.inputs[(branch, k)]
                for j in range(k):
                    block = self.blocks[branch][j]
                    block.__dict__["forward"] = (lambda x, *a, _h=hidden, **kw: _h) if j == k - 1 else \
                        (lambda x, *a, **kw: x)
                    patched.append((block, "forward"))
        try:
            yield
        finally:
            for obj, name in patched:
                obj.__dict__.pop(name, None)


def _next_or_compute(served, original, args, kwargs):
    """The next recorded output, or (a call the record did not see) the real computation."""
    out = next(served, None)
    return original(*args, **kwargs) if out is None else out
