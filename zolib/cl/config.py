"""The resolved experiment config: one object that names one computation.

:func:`resolve` turns what a user, a notebook or a profile asks for (a method name plus any
experiment or ZO field, flat) into an :class:`ExperimentConfig` with nothing left open: the
method becomes its ZO mask and settings (:mod:`zolib.optim.methods`), the ZO step size a number,
the protocol and adapter size the benchmark's, and fields that cannot change the numbers are set
to one canonical value (the ZO settings of a run without ZO updates, the LoRA fields of an MoE
run, the synthetic-world fields of a real benchmark). So its :meth:`~ExperimentConfig.key` names
the computation: conservative Dual asked for as ``method="dual"`` or as ``method="custom:..."``
with ``rule="conservative"`` is one stored run. The method name is kept as a label only.

ZO fields keep :class:`~zolib.optim.zo.ZOConfig`'s names everywhere (``zo_lr``, ``rule``, ``sign``,
``q``, ``eps_vision``, ...): a notebook's variant ``dict(method="dual", zo_lr=0.01)``, the CLI's
``--zo-lr 0.01`` and the results JSON's ``config.zo.zo_lr`` are the same field, which reaches
the optimizer as ``cfg.zo``. Defaults where the paper is silent are documented on the fields.
"""
from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, field, fields, replace
from collections import OrderedDict
from typing import Any, Mapping

from ..data.manifests import datasets
from ..data.scenarios import protocols, resolve_protocol
from ..errors import ZolibError, check_choice
from ..optim.hybrid import FO_OPTIMIZERS
from ..optim.methods import mask_text, parse, resolve_mask, setting_names, unit_modes, zo_optimizer
from ..optim.sharpzo import SharpZOConfig
from ..optim.zo import ZO_FIELDS, ZOConfig
from ..models.specs import model_spec, world_model
from ..models.units import PROMPT

NOT_KEYED = ("method", "device", "num_workers", "eval_batch_size")  # labels and settings that leave the numbers alone
INACTIVE_ZO = ZOConfig(zo_lr=0.0)  # the canonical ZO settings of a run without ZO updates


def benchmarks() -> tuple[str, ...]:
    """The offline world, then every dataset with a manifest (:func:`zolib.data.manifests.datasets`)."""
    return ("synthetic", *datasets())


class ZOWarning(UserWarning):
    """A ZO configuration that cannot do what it looks like it does (printed as one line)."""


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides an experiment's numbers; build it with :func:`resolve`."""

    benchmark: str = "synthetic"
    protocol: str = "10-steps"         # class-incremental protocol (zolib.data.scenarios.protocols())
    method: str = "fo"                 # the name asked for: a label, not part of the key
    zo_mask: str = "vision=000000000000,text=000000000000"  # 1 = ZO unit, layer 0 first (from the method)
    adapter: str = "moe"               # moe | lora
    moe_bottleneck: int = 0            # 0: the model's (zolib.models.specs: 64 for ViT-B/16, 16 for the tiny CLIP)
    moe_experts: int = 2
    lora_rank: int = 8
    lora_alpha: float = 16.0
    # training: MoE-Adapters4CL's AdamW lr 1e-3, wd 0, 30-step warm-up then cosine, 1 epoch per task
    batch_size: int = 128
    epochs: int = 1
    max_steps_per_task: int = 0        # 0: no cap
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = 30
    warmup_fraction: float = 0.0       # > 0: warm up over this share of each task's steps instead
    schedule: str = "warmup-cosine"    # warmup-cosine (MoE-Adapters4CL) | constant (MeZO's ZO-SGD)
    fo_train_mode: bool = True         # FO units train with dropout and router noise (zolib.optim.hybrid)
    fo_optimizer: str = "adamw"        # adamw (MoE-Adapters4CL) | sgd (momentum 0.9: ZO-FC's)
    classifier: str = "text"           # text: CLIP's prompts | head: a linear head (ZO-FC) | prompt: a learned context (SharpZO, CoOp)
    fc_epochs: int = 0                 # head: epochs per task in which it trains (0: all of them; ZO-FC's fc_epoch)
    zo_backend: str = "zolib"          # zolib | infty: the ZeroFlow optimizer of the `infty` package (cross-check)
    mix: float = 1.0                   # the paper's lambda: ZO update scale relative to FO
    zo: ZOConfig = field(default_factory=lambda: INACTIVE_ZO)
    sharpzo: SharpZOConfig = field(default_factory=SharpZOConfig)  # the prompt classifier's settings (SharpZO, CoOp)
    # data size
    train_fraction: float = 1.0        # share of each task's training set (workshop profile)
    synthetic_train_per_class: int = 60
    synthetic_test_per_class: int = 20
    synthetic_hue_shift: float = 50.0  # domain shift of the benchmark vs the pretraining (zolib.data.synthetic)
    eval_batch_size: int = 256
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"

    @property
    def model_name(self) -> str:
        return world_model(self.benchmark)

    @property
    def pretrained(self) -> str:
        return model_spec(self.model_name).pretrained

    @property
    def has_zo(self) -> bool:
        """Whether any unit is trained forward-only and moves: a ZO adapter with a ZO step above 0, or
        a prompt context tuned by ZO-SGD, CMA-ES or SharpZO."""
        if self.classifier == "prompt":
            return self.sharpzo.prompt_mode != "fo"
        return "1" in self.zo_mask and not self.zo.holds_fixed

    @property
    def held_fixed(self) -> bool:
        """Whether the mask has ZO units that are held fixed (``zo_lr = 0``: a control, or frozen)."""
        return "1" in self.zo_mask and self.zo.holds_fixed

    @property
    def mask(self) -> dict[str, str]:
        return dict(part.split("=") for part in self.zo_mask.split(","))

    def unit_modes(self, units: Mapping) -> "OrderedDict":
        """``{unit: "fo" | "zo" | "frozen"}``: the one place a run's units get their modes. The method's
        mask; with a classifier head (ZO-FC) the text adapters are held fixed (the text encoder only
        initialised the head's rows); with a prompt classifier only the context trains; and ZO units are
        held fixed where the resolved ZO step is 0 (:attr:`zolib.optim.zo.ZOConfig.holds_fixed`: a
        control, or the frozen model). Optimizers take these modes as given."""
        if self.classifier == "prompt":  # FO (CoOp) or forward-only (ZO-SGD, CMA-ES, SharpZO)
            mode = "fo" if self.sharpzo.prompt_mode == "fo" else "zo"
            modes = OrderedDict((k, mode if k == PROMPT else "frozen") for k in units)
        else:
            modes = OrderedDict((k, "frozen" if self.classifier == "head" and k[0] == "text" else m)
                                for k, m in unit_modes(self.mask, units).items())
        return OrderedDict((k, "frozen" if m == "zo" and self.zo.holds_fixed else m) for k, m in modes.items())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def key(self) -> str:
        """A short hash of every field that decides the numbers: the run store's key."""
        d = {k: v for k, v in self.as_dict().items() if k not in NOT_KEYED}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "ExperimentConfig":
        """A re-resolved copy with ``changes`` (experiment or ZO field names, flat)."""
        return resolve({**flat(self), **changes})

    def with_method(self, method: str, **changes: Any) -> "ExperimentConfig":
        """The same experiment with another ``method``: the experiment fields kept, the ZO and prompt
        settings the new method's own (``replace(method=...)`` would keep this config's resolved ZO
        step, which is 0 for a run without ZO units)."""
        experiment = {k: getattr(self, k) for k in EXPERIMENT_FIELDS if k not in METHOD_FIELDS}
        return resolve({**experiment, "method": method, **changes})


EXPERIMENT_FIELDS = tuple(f.name for f in fields(ExperimentConfig) if f.name not in ("zo", "zo_mask", "sharpzo"))
METHOD_FIELDS = ("method", *sorted(set(setting_names()) & set(EXPERIMENT_FIELDS)))  # what a method may set (ZO-FC: lr, ...)
SHARPZO_FIELDS = tuple(f.name for f in fields(SharpZOConfig))
FIELDS = EXPERIMENT_FIELDS + ZO_FIELDS + SHARPZO_FIELDS
SCHEDULES = ("warmup-cosine", "constant")
CLASSIFIERS = ("text", "head", "prompt")
BACKENDS = ("zolib", "infty")


def flat(cfg: ExperimentConfig) -> dict[str, Any]:
    """The config's fields as :func:`resolve` takes them (experiment and ZO fields side by side)."""
    return {**{k: getattr(cfg, k) for k in EXPERIMENT_FIELDS}, **asdict(cfg.zo), **asdict(cfg.sharpzo)}


def resolve(values: Mapping[str, Any]) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from flat ``values`` (experiment and ZO field names; None = default).

    Order: the dataclass defaults, the method's settings (e.g. MoZO's), the settings of
    ``zo_optimizer`` (a name of :data:`zolib.optim.methods.ZO_OPTIMIZERS`, e.g. ``zo-adam``: sugar, not
    a field), then ``values``. Unknown names and bad choices raise a one-line
    :class:`~zolib.errors.ZolibError`; a ZO setting that cannot act
    (:meth:`~zolib.optim.zo.ZOConfig.degeneracy`) warns with :class:`ZOWarning`.
    """
    unknown = sorted(set(values) - set(FIELDS) - {"zo_optimizer"})
    if unknown:
        raise ZolibError(f"unknown experiment parameter(s) {', '.join(unknown)}; valid: {', '.join(FIELDS)}")
    given = {k: v for k, v in values.items() if v is not None}
    method = str(given.get("method", "fo"))
    family = zo_optimizer(given.pop("zo_optimizer")) if given.get("zo_optimizer") else {}
    settings = {**parse(method).settings, **family, **given}
    exp = {k: v for k, v in settings.items() if k in EXPERIMENT_FIELDS}
    check_choice("benchmark", exp.get("benchmark", "synthetic"), benchmarks())
    benchmark = exp.get("benchmark", "synthetic")
    exp["protocol"] = resolve_protocol(benchmark, exp.get("protocol") or None)
    check_choice("adapter", exp.get("adapter", "moe"), ("moe", "lora"))
    defaults = ExperimentConfig()
    spec = model_spec(world_model(benchmark))
    mask = resolve_mask(method, spec.layers)
    lr = float(exp.get("lr", defaults.lr))
    zo_values = {k: v for k, v in settings.items() if k in ZO_FIELDS}
    zo = ZOConfig(**zo_values).with_step(lr)
    zo = replace(zo, zo_lr=float(zo.zo_lr))
    classifier = exp.get("classifier", "text")
    sharpzo = SharpZOConfig(**{k: v for k, v in settings.items() if k in SHARPZO_FIELDS})
    if classifier == "prompt":  # only the context is trained: the adapters are not, whatever the mask says
        mask = {b: "0" * len(bits) for b, bits in mask.items()}
        zo_prompt = sharpzo.prompt_mode in ("zo", "sharpzo")
    else:
        sharpzo, zo_prompt = SharpZOConfig(), False
    if ("1" not in "".join(mask.values()) and not zo_prompt) or zo.holds_fixed:
        zo = INACTIVE_ZO
    adapter = exp.get("adapter", "moe")
    canonical = {"zo_mask": mask_text(mask), "zo": zo, "sharpzo": sharpzo}
    if adapter == "moe":
        canonical.update(lora_rank=defaults.lora_rank, lora_alpha=defaults.lora_alpha)
        if not exp.get("moe_bottleneck"):
            canonical["moe_bottleneck"] = spec.moe_bottleneck
    else:
        canonical.update(moe_bottleneck=0, moe_experts=defaults.moe_experts)
    if exp.get("warmup_fraction"):
        canonical["warmup_steps"] = 0
    if exp.get("classifier", "text") == "text":
        canonical["fc_epochs"] = 0
    if zo is INACTIVE_ZO:
        canonical["zo_backend"] = "zolib"
    if benchmark != "synthetic":
        canonical.update(synthetic_train_per_class=defaults.synthetic_train_per_class,
                         synthetic_test_per_class=defaults.synthetic_test_per_class,
                         synthetic_hue_shift=defaults.synthetic_hue_shift)
    try:
        cfg = ExperimentConfig(**{**exp, **canonical})
    except TypeError as err:  # a value of the wrong type for a field
        raise ZolibError(f"bad experiment parameter: {err}") from None
    _check(cfg)
    if cfg.has_zo and cfg.zo.degeneracy():
        warnings.warn(f"{method}: {cfg.zo.degeneracy()}", ZOWarning, stacklevel=2)
    return cfg


def _check(cfg: ExperimentConfig) -> None:
    if cfg.batch_size < 1 or cfg.epochs < 1:
        raise ZolibError("batch_size and epochs must be positive integers")
    if not 0 < cfg.train_fraction <= 1:
        raise ZolibError(f"train_fraction must be in (0, 1], got {cfg.train_fraction}")
    check_choice("schedule", cfg.schedule, SCHEDULES)
    check_choice("classifier", cfg.classifier, CLASSIFIERS)
    check_choice("FO optimizer", cfg.fo_optimizer, FO_OPTIMIZERS)
    check_choice("ZO backend", cfg.zo_backend, BACKENDS)
    if not 0 <= cfg.warmup_fraction < 1:
        raise ZolibError(f"warmup_fraction must be in [0, 1), got {cfg.warmup_fraction}")
    if cfg.max_steps_per_task < 0:
        raise ZolibError(f"max_steps_per_task must be >= 0 (0: no cap), got {cfg.max_steps_per_task}")
    if cfg.protocol not in protocols()[cfg.benchmark]:
        raise ZolibError(f"protocol {cfg.protocol!r} is not one of {cfg.benchmark}'s")


def from_dict(d: Mapping[str, Any]) -> ExperimentConfig:
    """The config a results JSON or checkpoint recorded (its ``as_dict`` form), resolved again."""
    values = {k: v for k, v in d.items() if k in EXPERIMENT_FIELDS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ZOWarning)
        cfg = resolve({**values, "method": "custom:" + d["zo_mask"], **d["zo"], **d.get("sharpzo", {})})
    return replace(cfg, method=d.get("method", cfg.method))
