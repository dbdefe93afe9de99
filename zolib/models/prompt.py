"""A learnable prompt context for CLIP's text encoder (CoOp), parameterised as SharpZO does.

CoOp (Zhou et al. 2022) replaces the first words of the class prompt ("a photo of a" in
"a photo of a {class}.") by ``n_ctx`` learned token embeddings shared by every class. SharpZO
(arXiv 2506.20990) tunes them forward-only through a low-dimensional vector: the context is
``ctx = ctx_init + (A z).view(n_ctx, width)``, with ``A`` a fixed random projection
(``N(0, 1/dim)`` entries, seeded) and ``z`` the ``dim``-dimensional trainable vector, so an
optimizer over ``z`` (CMA-ES, ZO-SGD) searches a small space. ``ctx_init`` is the embedding of the
template's own first ``n_ctx`` words, so ``z = 0`` is exactly zero-shot CLIP.

:func:`attach_prompt` puts a :class:`PromptContext` on an open_clip CLIP as ``model.prompt`` and a
forward hook on its token embedding, which writes the context into positions ``1..n_ctx`` of every
prompt while the hook is active: ``model.encode_text`` runs unchanged, so partial forwards, the
harness and evaluation work as for any other model. Its trainable unit is ``("prompt", 0)``.
"""
from __future__ import annotations

import torch
from torch import nn


class PromptContext(nn.Module):
    """``n_ctx`` context embeddings of width ``width`` from a ``dim``-dimensional vector ``z``."""

    def __init__(self, ctx_init: torch.Tensor, dim: int, seed: int = 0):
        super().__init__()
        n_ctx, width = ctx_init.shape
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("ctx_init", ctx_init.detach().clone())
        self.register_buffer("projection", torch.randn(n_ctx * width, dim, generator=g) / dim ** 0.5)
        self.z = nn.Parameter(torch.zeros(dim, dtype=ctx_init.dtype))

    @property
    def n_ctx(self) -> int:
        return self.ctx_init.shape[0]

    def context(self) -> torch.Tensor:
        """The ``(n_ctx, width)`` context embeddings for the current ``z``."""
        return self.ctx_init + (self.projection @ self.z).view_as(self.ctx_init)


def attach_prompt(model: nn.Module, template_tokens: torch.Tensor, n_ctx: int = 4, dim: int = 512,
                  seed: int = 0) -> PromptContext:
    """Give an open_clip CLIP a learnable prompt context (``model.prompt``), initialised from the first
    ``n_ctx`` words of ``template_tokens`` (the tokenised template of one class, shape ``(1, L)``)."""
    with torch.no_grad():
        ctx_init = model.token_embedding(template_tokens.to(model.token_embedding.weight.device))[0, 1:1 + n_ctx]
    prompt = PromptContext(ctx_init, dim, seed).to(model.token_embedding.weight.device)
    model.prompt = prompt

    def insert(module, args, output):
        return torch.cat([output[:, :1], prompt.context().to(output.dtype).expand(output.shape[0], -1, -1),
                          output[:, 1 + prompt.n_ctx:]], dim=1)
    model.token_embedding.register_forward_hook(insert)
    return prompt
