"""The offline world: a synthetic captioned image benchmark that zolib draws
deterministically (no download), used by CI, the smoke and cpu profiles, and
workshops without GPUs.

Each class is a (colour, shape) pair: 10 colours x 10 shapes = 100 classes, drawn at
32 px with random position, size, colour jitter, background and pixel noise. Captions
read "a photo of a {colour} {shape}.". The tiny CLIP is pretrained (once, cached) on a
*separate* draw covering only some of the pairs (:mod:`zolib.models.tiny`), and the
continual-learning images are drawn with a **hue shift** (``hue_shift`` degrees, a rotation of
every pixel's colour about the grey axis) that the pretraining never saw: a domain shift, like
CIFAR-100's small, blurry photos against CLIP's web images. So zero-shot accuracy on the
continual-learning test set is well above chance but far from solved, and the adapters have
something to learn that carries across classes (undoing the shift) as well as something that
does not (the classes of the current task), which is what makes forgetting visible.
See ``notebooks/00_setup.ipynb``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import TensorDataset

from .benchmark import Benchmark, Scenario
from .transforms import CLIP_MEAN, CLIP_STD

COLOURS = {
    "red": (0.90, 0.10, 0.10), "green": (0.10, 0.75, 0.15), "blue": (0.10, 0.25, 0.95),
    "yellow": (0.95, 0.90, 0.10), "cyan": (0.10, 0.85, 0.90), "magenta": (0.90, 0.10, 0.85),
    "orange": (1.00, 0.55, 0.05), "purple": (0.50, 0.15, 0.65), "white": (0.97, 0.97, 0.97),
    "brown": (0.55, 0.30, 0.10),
}
SHAPES = ("circle", "square", "triangle", "diamond", "ring", "plus", "cross", "bar", "pillar", "frame")
TEMPLATE = "a photo of a {}."
GENERATOR_VERSION = 1  # bump when the drawing code changes: it keys the caches


@dataclass(frozen=True)
class SyntheticConfig:
    """How big the synthetic benchmark is. Defaults: 100 classes in 10 tasks of 10, like CIFAR-100."""

    train_per_class: int = 60
    test_per_class: int = 20
    num_tasks: int = 10
    image_size: int = 32
    seed: int = 0  # the class order and the images; the pretraining draw uses other seeds
    hue_shift: float = 50.0  # degrees; the domain shift from the pretraining images (0 = none)

    def as_dict(self) -> dict:
        return asdict(self) | {"generator_version": GENERATOR_VERSION}


def class_names() -> list[str]:
    """The 100 class names, label id = colour index * 10 + shape index."""
    return [f"{c} {s}" for c in COLOURS for s in SHAPES]


def _shape_masks(shape: torch.Tensor, dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Boolean masks (n, H, W) of each image's shape, in coordinates scaled by its size."""
    ax, ay = dx.abs(), dy.abs()
    rad = (dx ** 2 + dy ** 2).sqrt()
    box = torch.maximum(ax, ay)
    masks = torch.stack([
        rad <= 1.0,                                                   # circle
        box <= 0.8,                                                   # square
        (dy <= 0.8) & (dy >= -1.0) & (ax <= (dy + 1.0) / 1.8 * 0.9),  # triangle (point up)
        ax + ay <= 1.0,                                               # diamond
        (rad <= 1.0) & (rad >= 0.55),                                 # ring
        ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0)),    # plus
        (((dx - dy).abs() <= 0.4) | ((dx + dy).abs() <= 0.4)) & (box <= 0.9),  # cross
        (ay <= 0.35) & (ax <= 1.0),                                   # bar (horizontal)
        (ax <= 0.35) & (ay <= 1.0),                                   # pillar (vertical)
        (box <= 0.9) & (box >= 0.55),                                 # frame
    ], dim=1)  # (n, 10, H, W)
    return masks[torch.arange(len(shape)), shape]


def hue_rotation(degrees: float) -> torch.Tensor:
    """The 3 x 3 matrix rotating RGB colours by ``degrees`` about the grey axis (greys stay put)."""
    a = math.radians(degrees)
    c, s, k = math.cos(a), math.sin(a), 1 / 3
    r = math.sqrt(k) * s
    d, o = c + (1 - c) * k, k * (1 - c)
    return torch.tensor([[d, o - r, o + r], [o + r, d, o - r], [o - r, o + r, d]])


def draw(labels: torch.Tensor, seed: int, image_size: int = 32, hue_shift: float = 0.0) -> torch.Tensor:
    """Draw one image per label id; returns uint8 (n, 3, H, W). Deterministic in ``seed``.

    ``hue_shift`` rotates every pixel's colour by that many degrees (see the module docstring).
    """
    g = torch.Generator().manual_seed(seed)
    n, s = len(labels), image_size
    colour, shape = labels // len(SHAPES), labels % len(SHAPES)
    rgb = torch.tensor(list(COLOURS.values()))[colour]
    rgb = (rgb + 0.12 * torch.randn(n, 3, generator=g)).clamp(0, 1)
    size = s * (0.16 + 0.12 * torch.rand(n, generator=g))
    cx = s / 2 + (s / 2 - size) * (2 * torch.rand(n, generator=g) - 1)
    cy = s / 2 + (s / 2 - size) * (2 * torch.rand(n, generator=g) - 1)
    grid = torch.arange(s, dtype=torch.float32) + 0.5
    dx = (grid[None, None, :] - cx[:, None, None]) / size[:, None, None]
    dy = (grid[None, :, None] - cy[:, None, None]) / size[:, None, None]
    mask = _shape_masks(shape, dx.expand(n, s, s), dy.expand(n, s, s)).float()[:, None]
    background = 0.45 * torch.rand(n, 3, 1, 1, generator=g)
    ramp = 0.15 * torch.rand(n, 1, 1, 1, generator=g) * (grid[None, None, :, None] / s)
    image = background + ramp + mask * (rgb[:, :, None, None] - background)
    image = image + 0.08 * torch.randn(n, 3, s, s, generator=g)
    if hue_shift:
        image = torch.einsum("ij,njhw->nihw", hue_rotation(hue_shift), image.clamp(0, 1))
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 3, H, W) -> float tensor with CLIP's normalisation."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def _split(per_class: int, seed: int, cfg: SyntheticConfig) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(100).repeat_interleave(per_class)
    return normalise(draw(labels, seed, cfg.image_size, cfg.hue_shift)), labels


def class_order(seed: int) -> list[int]:
    """The synthetic benchmark's class order: a seeded permutation of the 100 label ids."""
    return np.random.RandomState(seed).permutation(100).tolist()


def load_synthetic(cfg: SyntheticConfig = SyntheticConfig()) -> Benchmark:
    """The synthetic class-incremental benchmark (100 classes in ``cfg.num_tasks`` equal tasks)."""
    if 100 % cfg.num_tasks:
        raise ValueError(f"num_tasks must divide 100, got {cfg.num_tasks}")
    x_tr, y_tr = _split(cfg.train_per_class, 1000 + cfg.seed, cfg)
    x_te, y_te = _split(cfg.test_per_class, 2000 + cfg.seed, cfg)
    scenario = Scenario.from_order(f"synthetic-{cfg.num_tasks}-steps", class_order(cfg.seed),
                                   [100 // cfg.num_tasks] * cfg.num_tasks)
    return Benchmark("synthetic", TensorDataset(x_tr, y_tr), TensorDataset(x_te, y_te), y_tr.numpy(),
                     y_te.numpy(), class_names(), TEMPLATE, scenario, info={"config": cfg.as_dict()})
