"""Class-incremental protocols: how each benchmark's class order is cut into tasks.

Names (``incN`` always means N classes per task, as in the paper's "Inc10/Inc20"):

- cifar100: ``10-steps`` / ``20-steps`` / ``50-steps`` (10, 5, 2 classes per task; the
  baseline's protocols). ``inc10``, ``inc5`` and ``inc2`` are accepted as aliases.
- tinyimagenet: ``b100-5`` / ``b100-10`` / ``b100-20`` (the baseline's: 100 base classes,
  then 5 x 20, 10 x 10 or 20 x 5) and ``inc10`` / ``inc20`` (all 200 classes from
  scratch, 20 x 10 or 10 x 20). The paper's "TinyImg Inc10/Inc20" is ambiguous; zolib
  reads it like "ImgR Inc20": N classes per task, no base task. Default ``inc20``, the
  paper's headline TinyImageNet setting.
- imagenet-r: ``inc20`` (10 x 20).
- synthetic (zolib's offline world, 100 classes): ``10-steps`` (like CIFAR-100's), ``20-steps``,
  ``5-steps``, ``2-steps`` and ``joint`` (one task of all 100 classes: the upper reference of
  notebook 00's world check).
"""
from __future__ import annotations

from typing import Sequence

from zolib.data.benchmark import Scenario
from zolib.errors import unknown_value

PROTOCOLS: dict[str, dict[str, str]] = {
    "cifar100": {
        "10-steps": "10 tasks of 10 classes (iCaRL order); the paper's CIFAR Inc10",
        "20-steps": "20 tasks of 5 classes (iCaRL order)",
        "50-steps": "50 tasks of 2 classes (iCaRL order)",
    },
    "tinyimagenet": {
        "b100-5": "100 base classes, then 5 tasks of 20 (MoE-Adapters' config tinyimagenet_100-20)",
        "b100-10": "100 base classes, then 10 tasks of 10 (MoE-Adapters' config tinyimagenet_100-10)",
        "b100-20": "100 base classes, then 20 tasks of 5 (MoE-Adapters' config tinyimagenet_100-5)",
        "inc10": "200 classes in 20 tasks of 10, no base task (zolib's reading of the paper's Inc10)",
        "inc20": "200 classes in 10 tasks of 20, no base task (zolib's reading of the paper's Inc20)",
    },
    "imagenet-r": {
        "inc20": "200 classes in 10 tasks of 20 (order: RandomState(1993) permutation)",
    },
    "synthetic": {
        "10-steps": "10 tasks of 10 classes (seeded class order), like CIFAR-100 Inc10",
        "20-steps": "20 tasks of 5 classes",
        "5-steps": "5 tasks of 20 classes",
        "2-steps": "2 tasks of 50 classes",
        "joint": "one task of all 100 classes (joint training, the world check's upper reference)",
    },
}

DEFAULT_PROTOCOL: dict[str, str] = {"cifar100": "10-steps", "tinyimagenet": "inc20", "imagenet-r": "inc20",
                                    "synthetic": "10-steps"}

ALIASES: dict[str, dict[str, str]] = {"cifar100": {"inc10": "10-steps", "inc5": "20-steps", "inc2": "50-steps"}}

# (base classes, classes per later task); base 0 means every task has the same size
_SHAPES: dict[str, dict[str, tuple[int, int]]] = {
    "cifar100": {"10-steps": (0, 10), "20-steps": (0, 5), "50-steps": (0, 2)},
    "tinyimagenet": {"b100-5": (100, 20), "b100-10": (100, 10), "b100-20": (100, 5),
                     "inc10": (0, 10), "inc20": (0, 20)},
    "imagenet-r": {"inc20": (0, 20)},
    "synthetic": {"10-steps": (0, 10), "20-steps": (0, 5), "5-steps": (0, 20), "2-steps": (0, 50), "joint": (0, 100)},
}


def resolve_protocol(benchmark: str, protocol: str | None = None) -> str:
    """The canonical protocol name (default and aliases applied); raises on unknown names."""
    if benchmark not in PROTOCOLS:
        raise unknown_value("benchmark", benchmark, PROTOCOLS)
    if protocol is None:
        return DEFAULT_PROTOCOL[benchmark]
    protocol = ALIASES.get(benchmark, {}).get(protocol, protocol)
    if protocol not in PROTOCOLS[benchmark]:
        raise unknown_value(f"protocol for {benchmark}", protocol, PROTOCOLS[benchmark])
    return protocol


def task_sizes(benchmark: str, protocol: str | None, num_classes: int) -> list[int]:
    """Number of classes in each task."""
    protocol = resolve_protocol(benchmark, protocol)
    base, step = _SHAPES[benchmark][protocol]
    rest = num_classes - base
    if rest <= 0 or rest % step:
        raise ValueError(f"{benchmark}/{protocol} needs base {base} + a multiple of {step} classes, got {num_classes}")
    return ([base] if base else []) + [step] * (rest // step)


def make_scenario(benchmark: str, protocol: str | None = None, order: Sequence[int] | None = None) -> Scenario:
    """The scenario ``benchmark/protocol`` over ``order`` (default: the manifest's class order)."""
    protocol = resolve_protocol(benchmark, protocol)
    if order is None:
        from zolib.data.manifests import load_manifest
        order = load_manifest(benchmark).class_order
    return Scenario.from_order(f"{benchmark}/{protocol}", order, task_sizes(benchmark, protocol, len(order)))
