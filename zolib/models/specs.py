"""One spec per model: the facts about each CLIP architecture that the rest of zolib reads.

Layers and widths come from the open_clip configuration the model is built from (so they cannot
drift from the weights); the image size, the MoE adapter bottleneck, the prompt template and the
default weights are zolib's choices, written once here:

- ``ViT-B-16``: OpenAI's CLIP (224 px), MoE-Adapters4CL's bottleneck 64 and its prompt
  "a bad photo of a {}."; weights ``openai``;
- ``zolib-tiny``: the offline world's CLIP (32 px, :mod:`zolib.models.tiny`), bottleneck 16 (a
  quarter of the vision width 96, about MoE-Adapters' 64 / 768 of ViT-B/16 scaled to a model this
  small), the prompt its synthetic captions use, "a photo of a {}."; weights ``synthetic``.

The experiment config (MoE bottleneck, layer counts of the method masks), the harness (adapter
size), the random-weight step of the dry run and the footprint (image size, prompt), the benchmark
scripts and notebook 06 read :func:`model_spec`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import open_clip

from ..errors import check_choice
from .architectures import MODELS, TINY


@dataclass(frozen=True)
class ModelSpec:
    """What zolib needs to know about one CLIP architecture (see the module docstring)."""

    name: str
    layers: dict[str, int]       # transformer blocks per branch: {"vision": 12, "text": 12}
    widths: dict[str, int]       # residual width per branch: {"vision": 768, "text": 512}
    image_size: int              # input pixels (square)
    moe_bottleneck: int          # hidden width of each MoE expert
    pretrained: str              # default weights: "openai" | "synthetic"
    benchmark: str               # the benchmark whose shapes a measurement without data uses (class names, prompts)


# name -> (MoE bottleneck, default weights, benchmark of measurements without data)
_CHOICES = {"ViT-B-16": (64, "openai", "cifar100"), TINY: (16, "synthetic", "synthetic")}


@lru_cache(maxsize=None)
def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` of ``name`` (one-line error listing the models otherwise)."""
    check_choice("model", name, MODELS)
    cfg = open_clip.get_model_config(name)
    if cfg is None:  # pragma: no cover - open_clip ships ViT-B-16 and architectures registers zolib-tiny
        raise RuntimeError(f"open_clip has no configuration for {name}")
    cfg = json.loads(json.dumps(cfg))
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    size = vision["image_size"]
    bottleneck, pretrained, benchmark = _CHOICES[name]
    return ModelSpec(name, {"vision": vision["layers"], "text": text["layers"]},
                     {"vision": vision["width"], "text": text["width"]},
                     size if isinstance(size, int) else size[0], bottleneck, pretrained, benchmark)


def world_model(benchmark: str) -> str:
    """The model a benchmark is trained with: the tiny CLIP in the synthetic world, ViT-B/16 on real data."""
    return TINY if benchmark == "synthetic" else "ViT-B-16"
