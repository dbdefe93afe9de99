"""A linear classifier head over CLIP's image features: ZO-FC's FO-trained classifier, in CLIP form.

ZO-FC (arXiv 2510.21019) trains a PEFT module of a ViT by ZO and a linear classifier by FO. On
CLIP, zolib's translation (documented in notebooks/07_peers.ipynb): the classifier is a matrix ``W``
with one row per class over the normalised image features, ``logits = exp(logit_scale) *
norm(f_img) @ W.T``, each row initialised from its class prompt's normalised text feature when the
class first appears. So at initialisation the head is exactly zero-shot CLIP (a fair start, like
the text classifier of every other method), and afterwards its rows are free linear weights.

Rows of classes from earlier tasks are frozen: :func:`freeze_rows` zeroes their gradient.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class ClassHead(nn.Module):
    """``num_classes`` rows of width ``dim``, read as a linear classifier."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(num_classes, dim))
        self.trainable_rows: torch.Tensor | None = None
        self.weight.register_hook(self._mask)

    def _mask(self, grad: torch.Tensor) -> torch.Tensor:
        if self.trainable_rows is None:
            return grad
        return grad * self.trainable_rows.to(grad.device, grad.dtype)[:, None]

    def freeze_rows(self, trainable: Sequence[int]) -> None:
        """Only the rows ``trainable`` get gradient from now on (the others are frozen)."""
        mask = torch.zeros(self.weight.shape[0], dtype=torch.bool)
        mask[torch.as_tensor(list(trainable), dtype=torch.long)] = True
        self.trainable_rows = mask

    @torch.no_grad()
    def init_rows(self, classes: Sequence[int], features: torch.Tensor) -> None:
        """Set the rows of ``classes`` to ``features`` (normalised text features of their prompts)."""
        self.weight[torch.as_tensor(list(classes), dtype=torch.long)] = features.to(self.weight)


def attach_head(model: nn.Module, num_classes: int) -> ClassHead:
    """Give an adapted CLIP a trainable :class:`ClassHead` (``model.head``) over its image features."""
    dim = model.text_projection.shape[1] if getattr(model, "text_projection", None) is not None else model.embed_dim
    model.head = ClassHead(num_classes, dim).to(model.logit_scale.device)
    return model.head


def head_logits(model: nn.Module, images: torch.Tensor, classes: Sequence[int]) -> torch.Tensor:
    """``exp(logit_scale) * norm(f_img) @ W[classes].T``: the head's logits over ``classes``."""
    img = model.encode_image(images, normalize=True)
    rows = model.head.weight[torch.as_tensor(list(classes), dtype=torch.long, device=img.device)]
    return model.logit_scale.exp() * img @ rows.T
