"""The CLIP architectures zolib builds: OpenAI's ViT-B/16 and the tiny CLIP, registered with open_clip.

``zolib-tiny``'s configuration lives in ``configs/`` and is registered with open_clip on import, so
``open_clip.create_model("zolib-tiny")`` and its tokenizer work like any built-in model.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import open_clip
from torch import nn

from ..errors import check_choice

CONFIG_DIR = Path(__file__).parent / "configs"
TINY = "zolib-tiny"
MODELS = ("ViT-B-16", TINY)

open_clip.add_model_config(CONFIG_DIR)


@contextmanager
def _quiet_open_clip():
    """Silence open_clip's 'No pretrained weights loaded' warning where random weights are wanted."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def random_clip(name: str) -> nn.Module:
    """The architecture ``name`` with random weights (OpenAI's ViT-B/16 keeps its QuickGELU), in eval mode."""
    check_choice("model", name, MODELS)
    with _quiet_open_clip():
        return open_clip.create_model(name, pretrained=None, force_quick_gelu=name == "ViT-B-16").eval()
