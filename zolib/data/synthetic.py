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

import hashlib
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

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
GENERATOR_VERSION = 2  # bump when the drawing code changes: it keys the caches (2: bit-exact on every CPU)
JITTER = 0.12 * math.sqrt(3)  # half-width of the uniform colour jitter (standard deviation 0.12)
NOISE = 0.08 * math.sqrt(3)   # half-width of the uniform pixel noise (standard deviation 0.08)


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


def _shape_masks(shape: np.ndarray, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Boolean masks (n, H, W) of each image's shape, in coordinates scaled by its size."""
    ax, ay = np.abs(dx), np.abs(dy)
    rad = np.sqrt(dx ** 2 + dy ** 2)
    box = np.maximum(ax, ay)
    masks = np.stack([
        rad <= 1.0,                                                   # circle
        box <= 0.8,                                                   # square
        (dy <= 0.8) & (dy >= -1.0) & (ax <= (dy + 1.0) / 1.8 * 0.9),  # triangle (point up)
        ax + ay <= 1.0,                                               # diamond
        (rad <= 1.0) & (rad >= 0.55),                                 # ring
        ((ax <= 0.3) & (ay <= 1.0)) | ((ay <= 0.3) & (ax <= 1.0)),    # plus
        ((np.abs(dx - dy) <= 0.4) | (np.abs(dx + dy) <= 0.4)) & (box <= 0.9),  # cross
        (ay <= 0.35) & (ax <= 1.0),                                   # bar (horizontal)
        (ax <= 0.35) & (ay <= 1.0),                                   # pillar (vertical)
        (box <= 0.9) & (box >= 0.55),                                 # frame
    ], axis=1)  # (n, 10, H, W)
    return masks[np.arange(len(shape)), shape]


def hue_rotation(degrees: float) -> np.ndarray:
    """The 3 x 3 matrix rotating RGB colours by ``degrees`` about the grey axis (greys stay put)."""
    a = math.radians(degrees)
    c, s, k = math.cos(a), math.sin(a), 1 / 3
    r = math.sqrt(k) * s
    d, o = c + (1 - c) * k, k * (1 - c)
    return np.array([[d, o - r, o + r], [o + r, d, o - r], [o - r, o + r, d]])


def _rotate_hue(image: np.ndarray, degrees: float) -> np.ndarray:
    """``hue_rotation(degrees)`` applied to every pixel of (n, 3, H, W), written out as element-wise
    products and sums (no BLAS: a matrix product may fuse or reorder them differently per CPU)."""
    m = hue_rotation(degrees)
    r, g, b = image[:, 0], image[:, 1], image[:, 2]
    return np.stack([m[i, 0] * r + m[i, 1] * g + m[i, 2] * b for i in range(3)], axis=1)


def draw(labels: "torch.Tensor | np.ndarray | list[int]", seed: int, image_size: int = 32,
         hue_shift: float = 0.0) -> torch.Tensor:
    """Draw one image per label id; returns uint8 (n, 3, H, W). Deterministic in ``seed``.

    The same on every machine, bit for bit: the randomness is NumPy's PCG64 uniform doubles
    (exact integer arithmetic), and every later operation is an IEEE-exact element-wise
    float64 operation (+, -, *, /, sqrt, comparisons), so no vectorised ``exp``/``log`` or BLAS
    kernel, whose last bits differ between CPUs, touches a pixel before it is rounded to uint8.
    Colour jitter and pixel noise are therefore uniform (with the standard deviations 0.12 and
    0.08 of generator version 1's Gaussians). ``hue_shift`` rotates every pixel's colour by
    that many degrees (see the module docstring).
    """
    rng = np.random.Generator(np.random.PCG64(seed))

    def uniform(*shape: int) -> np.ndarray:  # in [-1, 1)
        return 2.0 * rng.random(shape) - 1.0

    labels = np.asarray(labels, dtype=np.int64)
    n, s = len(labels), image_size
    colour, shape = labels // len(SHAPES), labels % len(SHAPES)
    rgb = np.clip(np.array(list(COLOURS.values()))[colour] + JITTER * uniform(n, 3), 0, 1)
    size = s * (0.16 + 0.12 * rng.random(n))
    cx = s / 2 + (s / 2 - size) * uniform(n)
    cy = s / 2 + (s / 2 - size) * uniform(n)
    grid = np.arange(s, dtype=np.float64) + 0.5
    dx = (grid[None, None, :] - cx[:, None, None]) / size[:, None, None]
    dy = (grid[None, :, None] - cy[:, None, None]) / size[:, None, None]
    mask = _shape_masks(shape, np.broadcast_to(dx, (n, s, s)), np.broadcast_to(dy, (n, s, s)))[:, None]
    background = 0.45 * rng.random((n, 3, 1, 1))
    ramp = 0.15 * rng.random((n, 1, 1, 1)) * (grid[None, None, :, None] / s)
    image = background + ramp + mask * (rgb[:, :, None, None] - background)
    image = image + NOISE * uniform(n, 3, s, s)
    if hue_shift:
        image = _rotate_hue(np.clip(image, 0, 1), hue_shift)
    return torch.from_numpy(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))


def data_hash(*images: torch.Tensor) -> str:
    """SHA-256 of uint8 image tensors: the fingerprint of a synthetic draw (recorded with every result)."""
    h = hashlib.sha256()
    for t in images:
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 (n, 3, H, W) -> float tensor with CLIP's normalisation."""
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (images.float() / 255 - mean) / std


def _split(per_class: int, seed: int, cfg: SyntheticConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images and labels of one split: ``per_class`` images of each of the 100 classes."""
    labels = torch.arange(100).repeat_interleave(per_class)
    return draw(labels, seed, cfg.image_size, cfg.hue_shift), labels


def class_order(seed: int) -> list[int]:
    """The synthetic benchmark's class order: a seeded permutation of the 100 label ids."""
    return np.random.RandomState(seed).permutation(100).tolist()


@lru_cache(maxsize=4)
def load_synthetic(cfg: SyntheticConfig = SyntheticConfig()) -> Benchmark:
    """The synthetic class-incremental benchmark (100 classes in ``cfg.num_tasks`` equal tasks).

    Kept in memory per config (the last 4): a sweep worker runs many pieces on the same draw, and
    drawing it costs seconds (2.5 s at the cpu profile's size, a tenth of a run). The benchmark is
    shared, so treat it as read-only."""
    if 100 % cfg.num_tasks:
        raise ValueError(f"num_tasks must divide 100, got {cfg.num_tasks}")
    x_tr, y_tr = _split(cfg.train_per_class, 1000 + cfg.seed, cfg)
    x_te, y_te = _split(cfg.test_per_class, 2000 + cfg.seed, cfg)
    scenario = Scenario.from_order(f"synthetic-{cfg.num_tasks}-steps", class_order(cfg.seed),
                                   [100 // cfg.num_tasks] * cfg.num_tasks)
    info = {"config": cfg.as_dict(), "data_sha256": data_hash(x_tr, x_te)}
    return Benchmark("synthetic", TensorDataset(normalise(x_tr), y_tr), TensorDataset(normalise(x_te), y_te),
                     y_tr.numpy(), y_te.numpy(), class_names(), TEMPLATE, scenario, info=info)
