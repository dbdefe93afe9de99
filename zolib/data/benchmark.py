"""The shape every benchmark takes: datasets, class names, prompt, and the
class-incremental scenario (which original label ids each task holds)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from torch.utils.data import Dataset


@dataclass(frozen=True)
class Scenario:
    """A class-incremental protocol: ``tasks[t]`` lists the original label ids of task t.

    The order of ids inside the tasks is the benchmark's class order (for CIFAR-100
    the iCaRL order of paper.md section 2.2).
    """

    name: str
    tasks: tuple[tuple[int, ...], ...]

    @property
    def class_order(self) -> list[int]:
        return [c for task in self.tasks for c in task]

    @property
    def num_tasks(self) -> int:
        return len(self.tasks)

    def seen_classes(self, task: int) -> list[int]:
        """Label ids of tasks 0..task, in class order."""
        return [c for t in self.tasks[: task + 1] for c in t]

    @classmethod
    def from_order(cls, name: str, order: Sequence[int], sizes: Sequence[int]) -> "Scenario":
        """Cut ``order`` into consecutive tasks of the given sizes (must sum to len(order))."""
        if sum(sizes) != len(order):
            raise ValueError(f"task sizes sum to {sum(sizes)}, but the order has {len(order)} classes")
        tasks, start = [], 0
        for size in sizes:
            tasks.append(tuple(int(c) for c in order[start:start + size]))
            start += size
        return cls(name, tuple(tasks))


@dataclass
class Benchmark:
    """Everything the continual-learning harness needs from a dataset.

    ``train``/``test`` yield ``(image, label)`` with ``image`` a float tensor (C, H, W)
    already transformed for the model and ``label`` the original label id;
    ``train_targets``/``test_targets`` hold those label ids, so tasks can be selected
    without decoding images.
    """

    name: str
    train: Dataset
    test: Dataset
    train_targets: np.ndarray
    test_targets: np.ndarray
    class_names: list[str]
    template: str
    scenario: Scenario
    info: dict = field(default_factory=dict)

    def prompts(self, label_ids: Sequence[int]) -> list[str]:
        """The prompt of each label id, e.g. ``"a bad photo of a apple."``."""
        return [self.template.format(self.class_names[c]) for c in label_ids]
