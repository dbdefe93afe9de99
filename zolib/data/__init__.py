"""Benchmarks: the real datasets (manifests, verified downloads, loaders), the offline
synthetic benchmark, and class-incremental scenarios."""
from .benchmark import Benchmark, Scenario
from .download import data_root, fetch, import_archive, prepare, status, verify
from .manifests import Manifest, datasets, load_manifest
from .real import load_benchmark, load_cifar100, load_imagenet_r, load_tinyimagenet
from .scenarios import make_scenario, protocols, resolve_protocol
from .synthetic import SyntheticConfig, load_synthetic
from .transforms import CLIP_MEAN, CLIP_STD, clip_eval_transform, clip_train_transform

__all__ = ["Benchmark", "Scenario", "data_root", "fetch", "import_archive", "prepare", "status", "verify",
           "Manifest", "datasets", "load_manifest", "load_benchmark", "load_cifar100", "load_imagenet_r",
           "load_tinyimagenet", "make_scenario", "protocols", "resolve_protocol", "SyntheticConfig",
           "load_synthetic", "CLIP_MEAN", "CLIP_STD", "clip_eval_transform", "clip_train_transform"]
