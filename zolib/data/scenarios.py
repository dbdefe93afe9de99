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

A real benchmark's protocols, default and aliases live in its manifest (``protocols``: name ->
``{base, step, help}``, ``default_protocol``, ``protocol_aliases``), read when first asked for
(:func:`protocols`, :func:`resolve_protocol`): a new manifest is a new benchmark without another edit.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple, Sequence

from zolib.data import manifests
from zolib.data.benchmark import Scenario
from zolib.errors import unknown_value

SYNTHETIC: dict[str, tuple[int, int, str]] = {  # name -> (base classes, classes per later task, help)
    "10-steps": (0, 10, "10 tasks of 10 classes (seeded class order), like CIFAR-100 Inc10"),
    "20-steps": (0, 5, "20 tasks of 5 classes"),
    "5-steps": (0, 20, "5 tasks of 20 classes"),
    "2-steps": (0, 50, "2 tasks of 50 classes"),
    "joint": (0, 100, "one task of all 100 classes (joint training, the world check's upper reference)"),
}
"""The synthetic world's protocols (it has no manifest); base 0 means every task has the same size."""


class _Tables(NamedTuple):
    helps: dict[str, dict[str, str]]                # benchmark -> {protocol: help line}
    defaults: dict[str, str]                        # benchmark -> default protocol
    aliases: dict[str, dict[str, str]]              # benchmark -> {alias: protocol}
    shapes: dict[str, dict[str, tuple[int, int]]]   # benchmark -> {protocol: (base, step)}


def _tables() -> _Tables:
    """The protocol tables of the manifest folder."""
    return _read_tables(manifests.MANIFEST_DIR)


@functools.cache
def _read_tables(folder: Path) -> _Tables:
    """The synthetic world's protocols, then each manifest's; read once per manifest folder (the cache key:
    :func:`~zolib.data.manifests.datasets` and :func:`~zolib.data.manifests.load_manifest` read ``folder``)."""
    shapes = {"synthetic": {k: (b, s) for k, (b, s, _) in SYNTHETIC.items()}}
    helps = {"synthetic": {k: h for k, (_, _, h) in SYNTHETIC.items()}}
    defaults, aliases = {"synthetic": "10-steps"}, {}
    for name in manifests.datasets():
        m = manifests.load_manifest(name)
        shapes[name] = {k: (int(p["base"]), int(p["step"])) for k, p in m.protocols.items()}
        helps[name] = {k: p.get("help", "") for k, p in m.protocols.items()}
        defaults[name] = m.default_protocol
        if m.protocol_aliases:
            aliases[name] = dict(m.protocol_aliases)
    return _Tables(helps, defaults, aliases, shapes)


def protocols() -> dict[str, dict[str, str]]:
    """``protocols()[benchmark][name]``: the help line of each protocol of every benchmark (the synthetic
    world, then each dataset with a manifest); a benchmark's default is ``resolve_protocol(benchmark)``."""
    return _tables().helps


def resolve_protocol(benchmark: str, protocol: str | None = None) -> str:
    """The canonical protocol name (default and aliases applied); raises on unknown names."""
    t = _tables()
    if benchmark not in t.helps:
        raise unknown_value("benchmark", benchmark, t.helps)
    if protocol is None:
        return t.defaults[benchmark]
    protocol = t.aliases.get(benchmark, {}).get(protocol, protocol)
    if protocol not in t.helps[benchmark]:
        raise unknown_value(f"protocol for {benchmark}", protocol, t.helps[benchmark])
    return protocol


def task_sizes(benchmark: str, protocol: str | None, num_classes: int) -> list[int]:
    """Number of classes in each task."""
    protocol = resolve_protocol(benchmark, protocol)
    base, step = _tables().shapes[benchmark][protocol]
    rest = num_classes - base
    if rest <= 0 or rest % step:
        raise ValueError(f"{benchmark}/{protocol} needs base {base} + a multiple of {step} classes, got {num_classes}")
    return ([base] if base else []) + [step] * (rest // step)


def make_scenario(benchmark: str, protocol: str | None = None, order: Sequence[int] | None = None) -> Scenario:
    """The scenario ``benchmark/protocol`` over ``order`` (default: the manifest's class order)."""
    protocol = resolve_protocol(benchmark, protocol)
    if order is None:
        order = manifests.load_manifest(benchmark).class_order
    return Scenario.from_order(f"{benchmark}/{protocol}", order, task_sizes(benchmark, protocol, len(order)))
