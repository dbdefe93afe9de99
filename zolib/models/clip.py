"""CLIP through open_clip, with adapters attached to every block of both encoders.

Real path: ``ViT-B-16`` with OpenAI weights (open_clip's cache, or a local weights file
for clusters without internet). Offline path: ``zolib-tiny``, a 12+12-layer CLIP whose
open_clip config ships in ``zolib/models/configs`` and which zolib pretrains once on
synthetic captions (:mod:`zolib.models.tiny`).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import open_clip
import torch
from open_clip.transformer import ResidualAttentionBlock
from torch import nn

from ..errors import ZolibError, check_choice
from .architectures import MODELS, TINY, random_clip
from .loss import feature_logits
from .lora import LoRAConfig, add_lora
from .moe import MoEAdapter, MoEConfig
from .tiny import pretrained_tiny_clip

ADAPTERS = ("moe", "lora", "none")
OPENAI_URL = ("https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078"
              "d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt")
OPENAI_SHA256 = OPENAI_URL.split("/")[-2]
"""OpenAI names each file by its SHA-256: the one TorchScript archive zolib will load."""

class AdaptedBlock(ResidualAttentionBlock):
    """open_clip's block with an MoE adapter parallel to the MLP (made by class swap)."""

    adapter: MoEAdapter

    def forward(self, q_x, k_x=None, v_x=None, attn_mask=None):  # noqa: D401 - open_clip signature
        x = q_x + self.ls_1(self.attention(q_x=self.ln_1(q_x), attn_mask=attn_mask))
        return x + self.ls_2(self.mlp(self.ln_2(x))) + self.adapter(x)


def blocks(model: nn.Module) -> dict[str, list[ResidualAttentionBlock]]:
    """The transformer blocks of each branch: ``{"vision": [...], "text": [...]}``."""
    return {"vision": list(model.visual.transformer.resblocks),
            "text": list(model.transformer.resblocks)}


def attach_adapters(model: nn.Module, adapter: str = "moe", *, moe: MoEConfig = MoEConfig(),
                    lora: LoRAConfig = LoRAConfig()) -> nn.Module:
    """Freeze ``model`` and attach adapters to every block of both encoders, in place.

    Only adapter parameters are left trainable; read them with
    :func:`zolib.models.units.trainable_units`.
    """
    check_choice("adapter", adapter, ADAPTERS)
    for p in model.parameters():
        p.requires_grad_(False)
    for branch_blocks in blocks(model).values():
        for block in branch_blocks:
            if type(block) is not ResidualAttentionBlock:
                raise TypeError(f"cannot adapt {type(block).__name__}; expected open_clip's ResidualAttentionBlock")
            ref = block.mlp.c_fc.weight
            if adapter == "moe":
                block.__class__ = AdaptedBlock
                block.adapter = MoEAdapter(ref.shape[1], moe).to(ref.device, ref.dtype)
            elif adapter == "lora":
                for name in lora.targets:
                    add_lora(getattr(block.mlp, name), lora)
    return model


def _openai_missing(err: Exception) -> ZolibError:
    from huggingface_hub import constants
    cache = constants.HF_HUB_CACHE  # where open_clip's hub download puts them (zolib.cl.preflight looks there too)
    return ZolibError(
        f"could not load the OpenAI ViT-B-16 weights ({type(err).__name__}); with internet, "
        f"open_clip caches them under {cache}; offline, download {OPENAI_URL} elsewhere and pass "
        f"--weights /path/to/ViT-B-16.pt (or set ZOLIB_CLIP_WEIGHTS)")


def load_clip(name: str = "ViT-B-16", pretrained: Literal["openai", "synthetic", "none"] = "openai",
              *, weights: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """Build an open_clip CLIP (no adapters yet), frozen-ready, on ``device``.

    - ``ViT-B-16`` + ``openai``: OpenAI weights from open_clip's cache, or from ``weights``
      (or ``$ZOLIB_CLIP_WEIGHTS``), a local ``ViT-B-16.pt`` for clusters without internet.
    - ``zolib-tiny`` + ``synthetic``: the tiny CLIP pretrained on synthetic captions (cached).
    - any model + ``none``: random weights (architecture, memory and time checks).
    """
    check_choice("model", name, MODELS)
    check_choice("pretrained", pretrained, ("openai", "synthetic", "none"))
    if pretrained == "synthetic":
        if name != TINY:
            raise ZolibError(f"pretrained='synthetic' exists only for {TINY}; use 'openai' or 'none' for {name}")
        model = pretrained_tiny_clip(device=device)
        from .tiny import WEIGHTS, weights_record
        model.weights_provenance = {"source": "shipped with zolib", "path": str(WEIGHTS),
                                    "sha256": weights_record()["sha256"]}
        return model
    weights = weights or (os.environ.get("ZOLIB_CLIP_WEIGHTS") if pretrained == "openai" else None)
    if pretrained == "openai" and name == TINY and not weights:
        raise ZolibError(f"{TINY} has no OpenAI weights; use pretrained='synthetic' or 'none', or a local file")
    if pretrained == "none":
        model = random_clip(name)
        provenance = {"source": "random (pretrained=none)", "path": None, "sha256": None}
    else:
        if weights is not None and not Path(weights).is_file():
            raise ZolibError(f"weights file {weights} does not exist; download {OPENAI_URL} and pass its path")
        try:
            if weights and _is_torchscript(Path(weights)):
                model = _openai_torchscript(name, Path(weights))
            else:  # open_clip reads a state dict as data: safetensors, or torch.load(weights_only=True)
                model = open_clip.create_model(name, pretrained=str(weights) if weights else "openai",
                                               force_quick_gelu=name != TINY)
        except ZolibError:
            raise
        except Exception as err:  # network and hub errors come in many types
            raise _openai_missing(err) from err
        provenance = file_provenance(Path(weights), "local file") if weights else _openai_provenance(name)
    model.weights_provenance = provenance
    return model.to(device).eval()


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime: float) -> str:
    """SHA-256 of a weights file (cached per path, size and modification time: hundreds of MB)."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's ``ViT-B-16.pt`` is one): a zip with ``constants.pkl``."""
    import zipfile
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in z.namelist())


def _openai_torchscript(name: str, path: Path) -> nn.Module:
    """``name``'s architecture with the weights of OpenAI's own TorchScript file at ``path``.

    Loading TorchScript runs the archive's code, so zolib loads only the file OpenAI published, recognised by
    its SHA-256 (:data:`OPENAI_SHA256`); any other TorchScript archive is refused in one line."""
    digest = file_provenance(path, "local file")["sha256"]
    if digest != OPENAI_SHA256:
        raise ZolibError(f"{path} is a TorchScript archive but not OpenAI's ViT-B-16.pt (SHA-256 {digest[:16]}..., "
                         f"expected {OPENAI_SHA256[:16]}...); zolib loads no other TorchScript, since loading one "
                         f"runs its code: download {OPENAI_URL} again, or pass a state dict (.safetensors)")
    model = random_clip(name)
    state = torch.jit.load(str(path), map_location="cpu").state_dict()
    model.load_state_dict({k: v for k, v in state.items() if k in model.state_dict()})
    return model


def file_provenance(path: Path, source: str) -> dict:
    """``{"source", "path", "sha256"}`` of a weights file."""
    if not path.is_file():
        raise ZolibError(f"weights file {path} does not exist; download {OPENAI_URL} and pass its path")
    st = path.stat()
    return {"source": source, "path": str(path.resolve()), "sha256": _sha256(str(path.resolve()), st.st_size,
                                                                             st.st_mtime)}


def _openai_provenance(name: str) -> dict:
    """The open_clip tag and the cached file open_clip read the OpenAI weights from (already downloaded:
    the model just loaded from it)."""
    from open_clip import pretrained
    cfg = pretrained.get_pretrained_cfg(name, "openai")
    path = Path(pretrained.download_pretrained(cfg))
    return {**file_provenance(path, "open_clip pretrained='openai'"), "url": cfg.get("url") or cfg.get("hf_hub")}


def tokenizer(name: str):
    """open_clip's BPE tokenizer at the model's context length (ships with open_clip)."""
    return open_clip.get_tokenizer(name)


def build_adapted_clip(name: str = "ViT-B-16", pretrained: str = "openai", adapter: str = "moe", *,
                       moe: MoEConfig = MoEConfig(), lora: LoRAConfig = LoRAConfig(),
                       weights: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """:func:`load_clip` then :func:`attach_adapters`: the model every experiment trains."""
    model = load_clip(name, pretrained, weights=weights, device=device)
    return attach_adapters(model, adapter, moe=moe, lora=lora).to(device)


def clip_logits(model: nn.Module, images: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
    """CLIP's classification logits: :func:`feature_logits` of ``norm(f_img)`` and ``norm(f_txt)``."""
    img = model.encode_image(images, normalize=True)
    txt = model.encode_text(text_tokens, normalize=True)
    return feature_logits(model, img, txt)
