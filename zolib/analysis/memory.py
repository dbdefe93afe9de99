"""Byte accounting for one training step: where the paper's memory savings come from.

- parameter, gradient and optimizer-state bytes (:func:`parameter_bytes`,
  :func:`gradient_bytes`, :func:`optimizer_state_bytes`);
- tensors saved for backward (the activations backprop keeps), counted with
  ``torch.autograd.graph.saved_tensors_hooks`` and attributed to "gate" modules (e.g. the
  vision encoder ``model.visual`` and the text transformer ``model.transformer``) by forward
  pre/post hooks (:class:`SavedTensors`). A branch whose units are all ZO saves nothing;
- the peak of live bytes allocated inside the step (:class:`PeakMemory`): on CPU, a
  ``TorchDispatchMode`` that follows every storage created by an op inside the block until it
  is freed (pre-existing tensors such as the parameters are not counted); on CUDA also the
  allocator's ``max_memory_allocated``.

Used by tests/test_optim_memory.py and benchmarks/zo_step.py.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten



def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's elements (not of its whole storage)."""
    return t.numel() * t.element_size()


def parameter_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes of the given parameters."""
    return sum(tensor_bytes(p) for p in params)


def gradient_bytes(params: Iterable[torch.Tensor]) -> int:
    """Bytes of the ``.grad`` tensors currently held by the given parameters."""
    return sum(tensor_bytes(p.grad) for p in params if p.grad is not None)


def _tensors(obj: Any) -> Iterable[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def optimizer_state_bytes(*optimizers: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizers' ``state_dict()`` (nested optimizers included)."""
    return sum(tensor_bytes(t) for opt in optimizers for t in _tensors(opt.state_dict()))


def branch_gates(model: nn.Module) -> dict[str, nn.Module]:
    """The encoders of an open_clip CLIP: ``{"vision": model.visual, "text": model.transformer}``."""
    return {"vision": model.visual, "text": model.transformer}


class SavedTensors:
    """Count tensors saved for backward inside the block: in total and per gate module.

    ``count[name]`` is the number of saves, ``bytes[name]`` the bytes of the distinct
    storages saved, leaving out storages of ``exclude`` (e.g. the model's parameters, which
    are held anyway). Gates are active while their module's forward runs.
    """

    def __init__(self, gates: Mapping[str, nn.Module] | None = None, exclude: Iterable[torch.Tensor] = ()):
        self.gates = dict(gates or {})
        self.count = {name: 0 for name in ["total", *self.gates]}
        self.bytes = dict.fromkeys(self.count, 0)
        self._seen: dict[str, set[int]] = {name: set() for name in self.count}
        self._excluded = {t.untyped_storage().data_ptr() for t in exclude}
        self._active: dict[str, int] = dict.fromkeys(self.gates, 0)
        self._handles: list = []
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        for name in ["total", *(g for g, depth in self._active.items() if depth)]:
            self.count[name] += 1
            if ptr not in self._excluded and ptr not in self._seen[name]:
                self._seen[name].add(ptr)
                self.bytes[name] += t.untyped_storage().nbytes()
        return t

    def _gate(self, name: str, delta: int) -> Callable:
        def hook(*_):
            self._active[name] += delta
        return hook

    def __enter__(self) -> "SavedTensors":
        for name, module in self.gates.items():
            self._handles.append(module.register_forward_pre_hook(self._gate(name, 1)))
            self._handles.append(module.register_forward_hook(self._gate(name, -1), always_call=True))
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)
        for h in self._handles:
            h.remove()


class PeakMemory(TorchDispatchMode):
    """Peak live bytes of storages created by torch ops inside the block (any device).

    ``peak`` is measured from zero at entry (tensors that existed before do not count, nor do
    views of them or in-place results);
    ``cuda_peak`` is the CUDA allocator's peak over the block when CUDA is available, else
    None. Slows ops down: measure time separately.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, int] = {}
        self.current = self.peak = 0
        self.cuda_peak: int | None = None

    def _free(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {id(t.untyped_storage()) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self.live and key not in inputs:  # views and in-place results are not new
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._free, key)
        return out

    def __enter__(self) -> "PeakMemory":
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return super().__enter__()

    def __exit__(self, *exc) -> None:
        super().__exit__(*exc)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            self.cuda_peak = torch.cuda.max_memory_allocated()


@dataclass
class MemoryReport:
    """Bytes of one step. ``saved_*`` exclude parameter storages; ``peak_bytes`` see :class:`PeakMemory`."""

    parameter_bytes: int
    gradient_bytes: int
    optimizer_state_bytes: int
    saved_count: dict[str, int]
    saved_bytes: dict[str, int]
    peak_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def measure_step(step: Callable[[], Any], model: nn.Module, params: Iterable[torch.Tensor],
                 optimizers: Iterable[torch.optim.Optimizer] = (), *,
                 gates: Mapping[str, nn.Module] | None = None, peak: bool = True) -> tuple[Any, MemoryReport]:
    """Run ``step()`` once while counting saved tensors (and the allocation peak if ``peak``).

    ``params`` are the trainable parameters (their bytes and gradients are reported);
    gradient and optimizer-state bytes are read after the step.
    """
    params = list(params)
    saved = SavedTensors(gates, exclude=model.parameters())
    tracker = PeakMemory() if peak else None
    with saved:
        if tracker is None:
            out = step()
        else:
            with tracker:
                out = step()
    report = MemoryReport(parameter_bytes(params), gradient_bytes(params), optimizer_state_bytes(*optimizers),
                          saved.count, saved.bytes, tracker.peak if tracker else None,
                          tracker.cuda_peak if tracker else None)
    return out, report
