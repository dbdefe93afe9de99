"""CLIP models with MoE or LoRA adapters, and the (branch, layer) trainable-units view."""
from .clip import ADAPTERS, MODELS, TINY, attach_adapters, blocks, build_adapted_clip, clip_logits, load_clip, tokenizer
from .loss import clip_loss, feature_logits
from .lora import LoRAConfig, LoRALinear
from .moe import MoEAdapter, MoEConfig
from .units import BRANCHES, ZO_INERT, count_parameters, trainable_units, unit_of, zo_inert

__all__ = ["ADAPTERS", "MODELS", "TINY", "attach_adapters", "blocks", "build_adapted_clip", "clip_logits", "clip_loss",
           "feature_logits", "load_clip", "tokenizer", "LoRAConfig", "LoRALinear", "MoEAdapter", "MoEConfig", "BRANCHES", "ZO_INERT", "zo_inert",
           "count_parameters", "trainable_units", "unit_of"]
