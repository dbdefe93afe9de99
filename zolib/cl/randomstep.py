"""One random-weight training step of a config: what the dry run and the footprint measure.

:func:`random_step` builds the config's own architecture with random weights (no download), the
benchmark's real class names, prompt template and task split (:func:`benchmark_shape`, read from the
manifest, never from the data), the harness's classifier (text prompts, classifier head or prompt
context) and the harness's optimizer (:func:`zolib.cl.factory.make_optimizer`), on a random batch of
the benchmark's real image size. ``zolib experiment --dry-run`` (:mod:`zolib.cl.dryrun`) steps it on
every task; notebook 07's memory and cost (:func:`zolib.analysis.footprint.run_footprint`) measure
one step of task 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from ..models import clip_loss, tokenizer
from ..models.specs import model_spec
from .config import ExperimentConfig, resolve
from .evaluation import classifier
from .factory import build_model, make_optimizer, resolve_device


@dataclass(frozen=True)
class Shape:
    """The parts of a benchmark a classifier reads, without its images (see :func:`benchmark_shape`)."""

    class_names: list[str]
    template: str
    tasks: list[list[int]]
    image_size: int

    def prompts(self, ids: Sequence[int]) -> list[str]:
        return [self.template.format(self.class_names[c]) for c in ids]


def benchmark_shape(cfg: ExperimentConfig) -> Shape:
    """Class names, prompt template, tasks (label ids) and image size of ``cfg``'s benchmark, without its data."""
    size = model_spec(cfg.model_name).image_size
    if cfg.benchmark == "synthetic":
        from ..data.scenarios import task_sizes
        from ..data.synthetic import TEMPLATE, class_names, class_order
        order, k = class_order(cfg.seed), task_sizes("synthetic", cfg.protocol, 100)[0]
        return Shape(class_names(), TEMPLATE, [order[i:i + k] for i in range(0, 100, k)], size)
    from ..data.manifests import load_manifest
    from ..data.scenarios import make_scenario
    m = load_manifest(cfg.benchmark)
    names = list(m.class_names) or [f"class {i}" for i in range(m.num_classes)]
    return Shape(names, m.template, [list(t) for t in make_scenario(cfg.benchmark, cfg.protocol).tasks], size)


@dataclass
class RandomStep:
    """A random-weight model of a config with its classifier over one task's classes (see the module
    docstring). ``closure()`` is the training loss on ``images`` (the batch); :meth:`optimizer` makes
    the harness's optimizer for it; :meth:`forward` is one inference forward of the same batch."""

    cfg: ExperimentConfig
    model: torch.nn.Module
    shape: Shape
    classes: list[int]
    images: torch.Tensor
    labels: torch.Tensor
    logits: Callable[[torch.Tensor], torch.Tensor]
    text_tokens: torch.Tensor  # the task's class prompts, tokenized

    def closure(self) -> torch.Tensor:
        return clip_loss(self.logits(self.images), self.labels)

    def optimizer(self, cfg: ExperimentConfig | None = None, total_steps: int = 100, seed: int = 0,
                  partial: bool = True) -> Any:
        """The harness's optimizer of ``cfg`` (default: this step's config; another method on the same
        architecture and adapter: a row of notebook 06) over this model, gradients cleared first."""
        self.model.zero_grad(set_to_none=True)
        return make_optimizer(cfg or self.cfg, self.model, seed=seed, total_steps=total_steps, partial=partial)

    @torch.no_grad()
    def forward(self) -> None:
        """One inference forward of the batch (eval mode, ``no_grad``; the training flag restored)."""
        was_training = self.model.training
        self.model.eval()
        try:
            self.closure()
        finally:
            self.model.train(was_training)

    def for_task(self, task: int, generator: torch.Generator | None = None) -> "RandomStep":
        """The same model over task ``task``'s classes, with a new random batch."""
        return _step(self.cfg, self.model, self.shape, task, len(self.images), generator)


def measurement_config(model_name: str, adapter: str = "moe", method: str = "fo", device: str = "cpu",
                       **fields: Any) -> ExperimentConfig:
    """A config of ``model_name`` on the benchmark its measurements use (:attr:`ModelSpec.benchmark`, 10-step
    protocol: one task of 10 classes, as CIFAR-100 Inc10 trains), harness defaults otherwise."""
    return resolve({"benchmark": model_spec(model_name).benchmark, "protocol": "10-steps", "adapter": adapter,
                    "method": method, "device": device, **fields})


def random_step(cfg: ExperimentConfig, batch: int | None = None, task: int = 0, seed: int = 0) -> RandomStep:
    """The :class:`RandomStep` of ``cfg`` on task ``task`` with ``batch`` images (default ``cfg.batch_size``)."""
    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    shape = benchmark_shape(cfg)
    model = build_model(cfg, device, pretrained="none", bench=shape).train()
    return _step(cfg, model, shape, task, batch or cfg.batch_size, torch.Generator().manual_seed(seed))


def _step(cfg: ExperimentConfig, model: torch.nn.Module, shape: Shape, task: int, batch: int,
          generator: torch.Generator | None) -> RandomStep:
    device = next(model.parameters()).device
    classes = shape.tasks[task]
    images = torch.randn(batch, 3, shape.image_size, shape.image_size, generator=generator).to(device)
    labels = torch.randint(len(classes), (batch,), generator=generator).to(device)
    tok = tokenizer(cfg.model_name)
    logits = classifier(model, shape, classes, tok, device)
    return RandomStep(cfg, model, shape, classes, images, labels, logits, tok(shape.prompts(classes)).to(device))
