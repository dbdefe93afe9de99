"""zolib's one training loss and the logits it reads: every run and measurement calls these."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def feature_logits(model: nn.Module, image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """CLIP's classification logits from normalised features: ``exp(logit_scale) * f_img @ f_txt.T``."""
    return model.logit_scale.exp() * image_features @ text_features.T


def clip_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """zolib's one training loss, for every run and measurement (the harness, few-shot, the random-weight step,
    the tiny CLIP's pretraining, the variance and memory studies): cross-entropy over CLIP's classification
    logits (:func:`clip_logits`, :func:`feature_logits`, or a classifier head's)."""
    return F.cross_entropy(logits, labels)
