"""Evaluation: logits over a set of classes, predictions, and accuracy from integer counts.

After task t, accuracy is pooled over all test images of the classes of tasks 0..t, the
prediction being the argmax over every seen class (paper.md 2.1); it is also given per task.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from ..models import clip_logits
from ..models.head import head_logits


def classifier(model: torch.nn.Module, bench, classes: Sequence[int], tok,
               device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """``images -> logits`` over ``classes``: CLIP's text prompts, or the classifier head's rows when the
    model has one (ZO-FC, :mod:`zolib.models.head`)."""
    if hasattr(model, "head"):
        return lambda images: head_logits(model, images, classes)
    text = tok(bench.prompts(classes)).to(device)
    return lambda images: clip_logits(model, images, text)


def class_matrix(model: torch.nn.Module, bench, classes: Sequence[int], tok, device: torch.device) -> torch.Tensor:
    """One row per class that image features are compared with: normalised prompt features, or head rows."""
    if hasattr(model, "head"):
        return model.head.weight[torch.as_tensor(list(classes), dtype=torch.long, device=device)]
    return model.encode_text(tok(bench.prompts(classes)).to(device), normalize=True)


def label_map(n_classes: int, classes: Sequence[int]) -> torch.Tensor:
    """``remap[label id]`` = the label's position among ``classes`` (-1 for the others)."""
    remap = torch.full((n_classes,), -1, dtype=torch.long)
    remap[torch.tensor(list(classes))] = torch.arange(len(classes))
    return remap


@torch.no_grad()
def predict(model: torch.nn.Module, bench, classes: Sequence[int], idx: Sequence[int], tok, device: torch.device,
            batch_size: int = 256, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Predicted label ids (argmax over ``classes``) and true label ids of the images ``idx`` of ``split``
    (``test``, or ``train`` for a calibration's held-out share)."""
    was_training = model.training
    model.eval()
    text = class_matrix(model, bench, classes, tok, device)
    classes_t = torch.tensor(list(classes))
    preds, labels = [], []
    for images, y in DataLoader(Subset(bench.test if split == "test" else bench.train, list(idx)), batch_size=batch_size):
        img = model.encode_image(images.to(device), normalize=True)
        preds.append(classes_t[(img @ text.T).argmax(1).cpu()])
        labels.append(torch.as_tensor(y))
    model.train(was_training)
    return torch.cat(preds).numpy(), torch.cat(labels).numpy()


def accuracy(correct: int, total: int) -> float:
    """``100 * correct / total`` from integer counts (no float32 sums: 64% is 64.0, not 63.9999986)."""
    return 100.0 * int(correct) / int(total)


def evaluate(model: torch.nn.Module, bench, tasks_seen: int, tok, device: torch.device,
             batch_size: int = 256, predictions: dict | None = None) -> tuple[list[float], float]:
    """Accuracy (%) on each seen task's test classes, and pooled over all of them.

    Predictions are the argmax over every class of tasks ``0..tasks_seen-1``; they are stored in
    ``predictions`` (``pred``, ``labels``) when it is given.
    """
    seen = bench.scenario.seen_classes(tasks_seen - 1)
    idx = np.flatnonzero(np.isin(bench.test_targets, seen))
    pred, labels = predict(model, bench, seen, idx, tok, device, batch_size)
    if predictions is not None:
        predictions.update(pred=pred, labels=labels)
    hit = pred == labels
    per_task = [accuracy(hit[np.isin(labels, t)].sum(), np.isin(labels, t).sum())
                for t in bench.scenario.tasks[:tasks_seen]]
    return per_task, accuracy(hit.sum(), len(hit))


@torch.no_grad()
def held_out(model: torch.nn.Module, bench, classes: Sequence[int], idx: Sequence[int], tok, device: torch.device,
             batch_size: int = 256) -> dict[str, float]:
    """Accuracy and mean cross-entropy over ``classes`` on *training* images ``idx`` (eval mode): the
    held-out share a calibration scores (:mod:`zolib.cl.calibration`)."""
    was_training = model.training
    model.eval()
    text = class_matrix(model, bench, classes, tok, device)
    remap = label_map(len(bench.class_names), classes)
    correct, total, loss = 0, 0, 0.0
    for images, labels in DataLoader(Subset(bench.train, list(idx)), batch_size=batch_size):
        target = remap[torch.as_tensor(labels)].to(device)
        logits = model.logit_scale.exp() * model.encode_image(images.to(device), normalize=True) @ text.T
        correct += int((logits.argmax(1) == target).sum())
        loss += float(F.cross_entropy(logits, target, reduction="sum"))
        total += len(target)
    model.train(was_training)
    return {"accuracy": accuracy(correct, total), "loss": loss / total}
