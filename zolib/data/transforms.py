"""CLIP image transforms (paper.md section 2): MoE-Adapters' training crop and the
standard CLIP evaluation resize + centre crop, both with CLIP's normalisation.

The baseline's public code evaluates with the training augmentation; zolib does not
copy that quirk and evaluates with :func:`clip_eval_transform`.
"""
from __future__ import annotations

from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _to_rgb(img):
    return img.convert("RGB") if getattr(img, "mode", "RGB") != "RGB" else img


def clip_train_transform(size: int = 224, scale: tuple[float, float] = (0.9, 1.0)) -> T.Compose:
    """RandomResizedCrop(size, scale, bicubic) + ToTensor + CLIP normalisation."""
    return T.Compose([
        T.Lambda(_to_rgb),
        T.RandomResizedCrop(size, scale=scale, interpolation=InterpolationMode.BICUBIC),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


def clip_eval_transform(size: int = 224) -> T.Compose:
    """Resize(size, bicubic) + CenterCrop(size) + ToTensor + CLIP normalisation."""
    return T.Compose([
        T.Lambda(_to_rgb),
        T.Resize(size, interpolation=InterpolationMode.BICUBIC),
        T.CenterCrop(size),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])
