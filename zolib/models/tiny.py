"""The tiny CLIP (``zolib-tiny``): zolib's offline stand-in for OpenAI's ViT-B/16.

It is pretrained from random weights on a draw of the synthetic world that is *separate* from
the continual-learning data (other seeds) and covers only a fraction of the (colour, shape)
pairs, so that zero-shot accuracy on the benchmark is clearly above chance but far from solved.
The fraction and the number of steps are the difficulty knobs (:class:`PretrainConfig`).

The pretrained weights SHIP with zolib (``zolib/models/weights/zolib-tiny.safetensors``, with a
JSON record of their SHA-256, the settings and the command that made them): pretraining is
not bit-reproducible across machines or thread counts (float sums in another order), so
pretraining on each machine would give each machine its own world. The loader checks the
SHA-256 before it reads the file. ``zolib world pretrain`` regenerates the file (about 6-7
minutes on 2 CPU cores); tests run the pretraining code on a few steps.
See ``notebooks/00_setup.ipynb``.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import ZolibError
from ..runtime import atomic_write_bytes, atomic_write_json, provenance
from .architectures import CONFIG_DIR, TINY, random_clip
from .loss import clip_loss, feature_logits

WEIGHTS = Path(__file__).parent / "weights" / f"{TINY}.safetensors"
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


def settings_key(cfg: "PretrainConfig") -> str:
    """A hash of what decides the pretrained weights: the model config, the pretraining settings
    and the synthetic generator's version. The shipped weights record the key they were made with."""
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
    model = random_clip(TINY).train()
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
        loss = clip_loss(feature_logits(model, img, txt), idx)
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
    return 100.0 * int((preds == labels).sum()) / len(labels)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def weights_record(path: Path = WEIGHTS) -> dict:
    """The JSON record shipped next to the weights file: sha256, settings, zero-shot, provenance."""
    record = path.with_suffix(".json")
    if not path.exists() or not record.exists():
        raise ZolibError(f"the tiny CLIP weights {path} (or its record {record.name}) are missing; restore them "
                         f"with `git checkout -- {path.parent}` or regenerate them with `zolib world pretrain`")
    return json.loads(record.read_text())


def verified_weights(path: Path = WEIGHTS) -> dict:
    """The weights record, after checking the file's SHA-256 and that the current code would make
    the same weights (same model config, pretraining settings and synthetic generator)."""
    record = weights_record(path)
    digest = file_sha256(path)
    if digest != record["sha256"]:
        raise ZolibError(f"{path} has SHA-256 {digest[:12]}..., its record says {record['sha256'][:12]}...; "
                         f"restore it with `git checkout -- {path}` or regenerate it with `zolib world pretrain`")
    if record["settings_key"] != settings_key(PretrainConfig()):
        raise ZolibError(f"{path} was pretrained with other settings than zolib's current PretrainConfig or "
                         f"synthetic generator; regenerate it with `zolib world pretrain` and commit it")
    return record


def save_pretrained(model: torch.nn.Module, cfg: PretrainConfig, path: Path = WEIGHTS, seconds: float = 0.0) -> dict:
    """Write ``model``'s weights as safetensors and their JSON record next to them (atomically)."""
    from safetensors.torch import save
    data = save({k: v.contiguous() for k, v in model.state_dict().items()}, metadata={"model": TINY})
    atomic_write_bytes(path, data)
    record = {"model": TINY, "sha256": hashlib.sha256(data).hexdigest(), "settings_key": settings_key(cfg),
              "pretrain": asdict(cfg), "zero_shot": zero_shot(model), "seconds": round(seconds, 1),
              "command": "zolib world pretrain", **provenance()}
    from ..data.synthetic import GENERATOR_VERSION
    record["generator_version"] = GENERATOR_VERSION
    atomic_write_json(path.with_suffix(".json"), record)
    return record


def pretrained_tiny_clip(device: str | torch.device = "cpu", path: Path = WEIGHTS) -> torch.nn.Module:
    """The shipped pretrained tiny CLIP, its SHA-256 checked before it is read."""
    from safetensors.torch import load_file
    verified_weights(path)
    model = random_clip(TINY)
    model.load_state_dict(load_file(path))
    return model.to(device).eval()
