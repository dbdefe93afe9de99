"""Pretrain the tiny CLIP (``zolib-tiny``) on synthetic captions, once, and cache it.

The tiny CLIP stands in for OpenAI's ViT-B/16 offline. It is pretrained from random
weights on a draw of the synthetic world that is *separate* from the continual-learning
data (other seeds) and covers only a fraction of the (colour, shape) pairs, so that
zero-shot accuracy on the benchmark is clearly above chance but far from solved. The
fraction and the number of steps are the difficulty knobs. Weights are cached under
``$ZOLIB_CACHE/models`` keyed by a hash of the model config and of these settings.
See ``notebooks/00_setup.ipynb``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..runtime import atomic_torch_save, cache_dir
from .clip import CONFIG_DIR, TINY, load_clip

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    """Pretraining of the tiny CLIP: which pairs it sees, for how long."""

    pair_fraction: float = 0.6   # share of the 100 (colour, shape) pairs whose captions are seen
    steps: int = 600
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.1
    seed: int = 12345            # separate from every benchmark seed


def _key(cfg: PretrainConfig) -> str:
    from ..data.synthetic import GENERATOR_VERSION
    blob = json.dumps({"model": json.loads((CONFIG_DIR / f"{TINY}.json").read_text()),
                       "pretrain": asdict(cfg), "generator": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def pretrain_pairs(cfg: PretrainConfig) -> list[int]:
    """Label ids of the (colour, shape) pairs whose captions the pretraining sees."""
    n = round(100 * cfg.pair_fraction)
    return sorted(np.random.RandomState(cfg.seed).permutation(100)[:n].tolist())


def pretrain(cfg: PretrainConfig = PretrainConfig(), progress: bool = True) -> torch.nn.Module:
    """Train the tiny CLIP from scratch on synthetic image-caption pairs (about 6-7 minutes on 2 CPU cores)."""
    from ..data.synthetic import TEMPLATE, class_names, draw, normalise
    torch.manual_seed(cfg.seed)
    model = load_clip(TINY, "none").train()
    tok = open_clip.get_tokenizer(TINY)
    pairs = torch.tensor(pretrain_pairs(cfg))
    names = class_names()
    texts = tok([TEMPLATE.format(names[c]) for c in pairs.tolist()])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    g = torch.Generator().manual_seed(cfg.seed)
    model.train()
    for step in tqdm(range(cfg.steps), desc="pretraining tiny CLIP", disable=not progress):
        idx = torch.randint(len(pairs), (cfg.batch_size,), generator=g)
        images = normalise(draw(pairs[idx], seed=cfg.seed * 1000 + step))
        img = F.normalize(model.encode_image(images), dim=-1)
        txt = F.normalize(model.encode_text(texts), dim=-1)
        loss = F.cross_entropy(model.logit_scale.exp() * img @ txt.T, idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def zero_shot(model: torch.nn.Module) -> float:
    """Zero-shot accuracy (%) of a tiny CLIP on the default synthetic benchmark's test set."""
    from ..data.synthetic import SyntheticConfig, load_synthetic
    bench = load_synthetic(SyntheticConfig(train_per_class=1))
    images, labels = bench.test.tensors
    text = F.normalize(model.encode_text(open_clip.get_tokenizer(TINY)(bench.prompts(range(100)))), dim=-1)
    preds = (F.normalize(model.encode_image(images), dim=-1) @ text.T).argmax(1)
    return 100 * float((preds == labels).float().mean())


def pretrained_tiny_clip(cfg: PretrainConfig = PretrainConfig(), device: str | torch.device = "cpu",
                         progress: bool = True) -> torch.nn.Module:
    """The pretrained tiny CLIP: loaded from the cache, or pretrained now and cached."""
    path = cache_dir("models") / f"{TINY}-{_key(cfg)}.pt"
    if path.exists():
        model = load_clip(TINY, "none")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        log.info("pretraining %s once; the weights are cached at %s", TINY, path)
        model = pretrain(cfg, progress=progress)
        atomic_torch_save(model.state_dict(), path)
        if progress:
            print(f"{TINY} pretrained and cached at {path}; zero-shot on the synthetic benchmark's test set: "
                  f"{zero_shot(model):.1f}% over 100 classes (chance 1%)", flush=True)
    return model.to(device).eval()
