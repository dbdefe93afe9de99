"""The real benchmarks: CIFAR-100, Tiny-ImageNet-200 and ImageNet-R as :class:`Benchmark`s.

Each loader makes sure the verified archive is unpacked under the data root
(:func:`zolib.data.download.prepare`), reads labels and class names as the manifest
says, and cuts the manifest's class order into tasks (:mod:`zolib.data.scenarios`).
Datasets yield ``(transformed image tensor, original label id)``. CIFAR stays in
memory as uint8 arrays; Tiny-ImageNet and ImageNet-R are file lists read with PIL.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from zolib.data.benchmark import Benchmark, Scenario
from zolib.data.download import check_inner, extracted_md5, prepare
from zolib.data.manifests import Manifest, load_manifest
from zolib.data.scenarios import make_scenario
from zolib.data.transforms import clip_eval_transform, clip_train_transform
from zolib.errors import ZolibError, check_choice


class ArrayImages(Dataset):
    """Images held as a uint8 array (N, H, W, 3) with their label ids."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable | None = None):
        self.images, self.labels, self.transform = images, np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), int(self.labels[i])


class FileImages(Dataset):
    """Images read from files with PIL (converted to RGB), with their label ids."""

    def __init__(self, paths: Sequence[str | Path], labels: np.ndarray, transform: Callable | None = None):
        self.paths = [str(p) for p in paths]
        self.labels, self.transform = np.asarray(labels, dtype=np.int64), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        with Image.open(self.paths[i]) as f:
            img = f.convert("RGB")
        return (self.transform(img) if self.transform else img), int(self.labels[i])


def _benchmark(m: Manifest, train: Dataset, test: Dataset, train_y: np.ndarray, test_y: np.ndarray,
               class_names: list[str], scenario: Scenario, folder: Path, **info) -> Benchmark:
    data = {"dataset": m.name, "archive": m.filename, "archive_md5": extracted_md5(folder),
            "checked": "the archive's md5 before it was unpacked" + (" and each listed file's before it was read"
                                                                     if m.inner_md5 else ""),
            "inner_md5": dict(m.inner_md5)}
    return Benchmark(
        name=m.name, train=train, test=test,
        train_targets=np.asarray(train_y, dtype=np.int64), test_targets=np.asarray(test_y, dtype=np.int64),
        class_names=class_names, template=m.template, scenario=scenario,
        info={"folder": str(folder), "split": dict(m.split), "class_order_source": m.class_order_source,
              "class_names_source": m.class_names_source, "scenario": scenario.name,
              "num_train": len(train_y), "num_test": len(test_y), "data": data, **info},
    )


def _scenario(benchmark: str, m: Manifest, protocol: str | None, scenario: Scenario | None) -> Scenario:
    return scenario if scenario is not None else make_scenario(benchmark, protocol, m.class_order)


# ----------------------------------------------------------------------------- CIFAR-100

class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"),
                ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("_codecs", "encode")}  # bytes in protocol-2 pickles written by Python 3

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise ZolibError(f"refusing to unpickle {module}.{name} from a CIFAR file; the file is not genuine")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def load_cifar100(root: str | Path | None = None, image_size: int = 224, download: bool = True, *,
                  protocol: str | None = None, scenario: Scenario | None = None,
                  manifest: Manifest | None = None, url: str | None = None, progress: bool = True) -> Benchmark:
    """CIFAR-100 with torchvision's label ids, the iCaRL order and the official split.

    The md5 of ``train``, ``test`` and ``meta`` is checked before they are unpickled.
    """
    m = manifest or load_manifest("cifar100")
    folder = prepare(m, root=root, download=download, url=url, progress=progress)
    check_inner(m, folder)
    names = list(_unpickle(folder / "meta")["fine_label_names"])
    if m.class_names and names != list(m.class_names):
        raise ZolibError(f"class names in {folder / 'meta'} differ from the manifest's; the archive is not the official one")

    def split(file: str) -> tuple[np.ndarray, np.ndarray]:
        d = _unpickle(folder / file)
        images = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(images), np.asarray(d["fine_labels"], dtype=np.int64)

    (xtr, ytr), (xte, yte) = split("train"), split("test")
    train = ArrayImages(xtr, ytr, clip_train_transform(image_size))
    test = ArrayImages(xte, yte, clip_eval_transform(image_size))
    return _benchmark(m, train, test, ytr, yte, names, _scenario("cifar100", m, protocol, scenario), folder)


# ----------------------------------------------------------------------------- Tiny-ImageNet

TINY_NAME_SOURCES = ("clip", "words")


def _read_lines(path: Path) -> list[str]:
    try:
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise ZolibError(f"{path} is missing from the unpacked archive; delete {path.parent} and load again") from None


def load_tinyimagenet(root: str | Path | None = None, image_size: int = 224, download: bool = True, *,
                      protocol: str | None = None, scenario: Scenario | None = None,
                      manifest: Manifest | None = None, url: str | None = None, progress: bool = True,
                      names: str = "clip") -> Benchmark:
    """Tiny-ImageNet-200: labels in ``wnids.txt`` order, official train split, ``val/`` as test.

    ``names="clip"`` uses the manifest's names (MoE-Adapters' list = open_clip's ImageNet
    names); ``names="words"`` reads the first synonym of each wnid from ``words.txt``.
    """
    check_choice("Tiny-ImageNet class-name source", names, TINY_NAME_SOURCES)
    m = manifest or load_manifest("tinyimagenet")
    folder = prepare(m, root=root, download=download, url=url, progress=progress)
    wnids = _read_lines(folder / "wnids.txt")
    if m.wnids is not None and list(m.wnids) != wnids:
        raise ZolibError(f"{folder / 'wnids.txt'} differs from the manifest's wnids; the archive is not the official one")
    if len(wnids) != m.num_classes:
        raise ZolibError(f"{folder / 'wnids.txt'} lists {len(wnids)} classes, the manifest {m.num_classes}")
    label = {w: i for i, w in enumerate(wnids)}
    if names == "words":
        words = dict(line.split("\t", 1) for line in _read_lines(folder / "words.txt") if "\t" in line)
        class_names = [words[w].split(",")[0].strip() for w in wnids]
    else:
        class_names = list(m.class_names)

    train_paths, train_y = [], []
    for w in wnids:
        files = sorted(p for p in (folder / "train" / w / "images").iterdir() if p.is_file())
        train_paths += files
        train_y += [label[w]] * len(files)
    test_paths, test_y = [], []
    for line in sorted(_read_lines(folder / "val" / "val_annotations.txt")):
        file, w = line.split("\t")[:2]
        test_paths.append(folder / "val" / "images" / file)
        test_y.append(label[w])

    train = FileImages(train_paths, np.array(train_y), clip_train_transform(image_size))
    test = FileImages(test_paths, np.array(test_y), clip_eval_transform(image_size))
    return _benchmark(m, train, test, np.array(train_y), np.array(test_y), class_names,
                      _scenario("tinyimagenet", m, protocol, scenario), folder, wnids=wnids, names=names)


# ----------------------------------------------------------------------------- ImageNet-R

def split_files(files: Sequence[Path], seed: int = 1993, train_fraction: float = 0.8) -> tuple[list[Path], list[Path]]:
    """zolib's ImageNet-R split of one class: sort, permute with RandomState(seed),
    first floor(train_fraction * n) files train, the rest test."""
    files = sorted(files)
    perm = np.random.RandomState(seed).permutation(len(files))
    n_train = int(train_fraction * len(files))
    return [files[i] for i in perm[:n_train]], [files[i] for i in perm[n_train:]]


def load_imagenet_r(root: str | Path | None = None, image_size: int = 224, download: bool = True, *,
                    protocol: str | None = None, scenario: Scenario | None = None,
                    manifest: Manifest | None = None, url: str | None = None, progress: bool = True) -> Benchmark:
    """ImageNet-R: labels = index of the sorted wnid folders, per-class 80/20 split (seed 1993)."""
    m = manifest or load_manifest("imagenet-r")
    folder = prepare(m, root=root, download=download, url=url, progress=progress)
    wnids = sorted(p.name for p in folder.iterdir() if p.is_dir())
    if m.wnids is not None and list(m.wnids) != wnids:
        raise ZolibError(f"the class folders in {folder} differ from the manifest's wnids; the archive is not the official one")
    if len(wnids) != m.num_classes:
        raise ZolibError(f"{folder} has {len(wnids)} class folders, the manifest {m.num_classes}")
    seed = int(m.split.get("seed", 1993))
    fraction = float(m.split.get("train_fraction", 0.8))
    train_paths, train_y, test_paths, test_y = [], [], [], []
    for label, w in enumerate(wnids):
        files = [p for p in (folder / w).iterdir() if p.is_file() and not p.name.startswith(".")]
        tr, te = split_files(files, seed, fraction)
        train_paths += tr
        test_paths += te
        train_y += [label] * len(tr)
        test_y += [label] * len(te)
    class_names = list(m.class_names) if m.class_names else wnids
    train = FileImages(train_paths, np.array(train_y), clip_train_transform(image_size))
    test = FileImages(test_paths, np.array(test_y), clip_eval_transform(image_size))
    return _benchmark(m, train, test, np.array(train_y), np.array(test_y), class_names,
                      _scenario("imagenet-r", m, protocol, scenario), folder, wnids=wnids)


LOADERS: dict[str, Callable[..., Benchmark]] = {
    "cifar100": load_cifar100, "tinyimagenet": load_tinyimagenet, "imagenet-r": load_imagenet_r,
}
"""Dataset name (its manifest's file name) -> loader. A new dataset: its manifest under ``data_manifests/``
and its loader here (tests/test_structure.py checks that every manifest has one; tests/test_data_real.py
adds a toy dataset this way)."""


def load_benchmark(name: str, **kwargs) -> Benchmark:
    """Load a real benchmark by name (``cifar100``, ``tinyimagenet``, ``imagenet-r``)."""
    check_choice("dataset", name, LOADERS)
    return LOADERS[name](**kwargs)
