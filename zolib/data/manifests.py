"""Dataset manifests: where an archive comes from, its checksums, class names,
class order and split rule, one JSON file per dataset under ``data_manifests/``.

A :class:`Manifest` is a frozen dataclass; tests and users build their own with
:meth:`Manifest.from_dict` or change one with ``dataclasses.replace``, and every
download or loading function accepts a manifest in place of a dataset name.
"""
from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from zolib.errors import ZolibError, unknown_value
from zolib.runtime import REPO_ROOT

# A checkout or editable install reads the top-level folder; a wheel ships it as zolib/_manifests.
MANIFEST_DIR = next((d for d in (REPO_ROOT / "data_manifests", Path(__file__).parent.parent / "_manifests")
                     if d.is_dir()), REPO_ROOT / "data_manifests")


@dataclass(frozen=True)
class Manifest:
    """One dataset's sources, checksums, classes, class order and split rule."""

    name: str
    filename: str                      # archive file name
    md5: str                           # archive md5
    size: int | None                   # archive size in bytes (None: unknown, md5 only)
    urls: tuple[str, ...]              # official sources
    extracts_to: str                   # top-level folder the archive unpacks to
    num_classes: int
    class_order: tuple[int, ...]
    template: str = "a bad photo of a {}."
    class_names: tuple[str, ...] = ()
    wnids: tuple[str, ...] | None = None
    mirrors: tuple[str, ...] = ()      # extra sources, tried before ``urls``
    inner_md5: Mapping[str, str] = field(default_factory=dict)
    split: Mapping[str, Any] = field(default_factory=lambda: {"rule": "official"})
    protocols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # name -> {base, step, help}
    default_protocol: str = ""
    protocol_aliases: Mapping[str, str] = field(default_factory=dict)
    title: str = ""
    homepage: str = ""
    class_names_source: str = ""
    class_order_source: str = ""
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if sorted(self.class_order) != list(range(self.num_classes)):
            raise ValueError(f"manifest {self.name}: class_order is not a permutation of range({self.num_classes})")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"manifest {self.name}: {len(self.class_names)} class names for {self.num_classes} classes")
        if self.protocols and self.default_protocol not in self.protocols:
            raise ValueError(f"manifest {self.name}: default_protocol {self.default_protocol!r} is not one of its protocols")
        if self.wnids is not None and len(self.wnids) != self.num_classes:
            raise ValueError(f"manifest {self.name}: {len(self.wnids)} wnids for {self.num_classes} classes")

    @property
    def env_var(self) -> str:
        """The mirror variable, e.g. ``ZOLIB_MIRROR_CIFAR100`` or ``ZOLIB_MIRROR_IMAGENET_R``."""
        return mirror_env_var(self.name)

    @property
    def source(self) -> str:
        """The first official URL (for messages)."""
        return self.urls[0] if self.urls else "(no official URL)"

    def candidate_urls(self, url: str | None = None) -> list[str]:
        """URLs to try, in order: ``url`` alone if given, else ``$ZOLIB_MIRROR_<NAME>``
        (whitespace-separated), the manifest's mirrors, then the official URLs.

        A mirror ending in ``/`` is a folder: the archive file name is appended.
        """
        if url:
            return [self._expand(url)]
        env = os.environ.get(self.env_var, "").split()
        out: list[str] = []
        for u in [*env, *self.mirrors, *self.urls]:
            u = self._expand(u)
            if u not in out:
                out.append(u)
        return out

    def _expand(self, url: str) -> str:
        return url + self.filename if url.endswith("/") else url

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Manifest":
        """Build from the JSON layout of ``data_manifests/*.json``."""
        a = d["archive"]
        return cls(
            name=d["name"], filename=a["filename"], md5=a["md5"].lower(), size=a.get("size"),
            urls=tuple(a.get("urls", ())), mirrors=tuple(a.get("mirrors", ())),
            extracts_to=a["extracts_to"], num_classes=int(d["num_classes"]),
            class_order=tuple(int(c) for c in d["class_order"]),
            template=d.get("template", "a bad photo of a {}."),
            class_names=tuple(d.get("class_names") or ()),
            wnids=tuple(d["wnids"]) if d.get("wnids") else None,
            inner_md5=dict(d.get("inner_md5") or {}), split=dict(d.get("split") or {"rule": "official"}),
            title=d.get("title", ""), homepage=d.get("homepage", ""),
            class_names_source=d.get("class_names_source", ""),
            class_order_source=d.get("class_order_source", ""), notes=tuple(d.get("notes", ())),
            protocols=dict(d.get("protocols") or {}), default_protocol=d.get("default_protocol", ""),
            protocol_aliases=dict(d.get("protocol_aliases") or {}),
        )


def datasets() -> tuple[str, ...]:
    """Every real dataset: one manifest file each in :data:`MANIFEST_DIR`, listed when first asked for that
    folder (a new dataset is a new manifest plus its loader in :mod:`zolib.data.real`)."""
    return _datasets(MANIFEST_DIR)


@functools.cache
def _datasets(folder: Path) -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in folder.glob("*.json")))


def mirror_env_var(name: str) -> str:
    """``ZOLIB_MIRROR_`` + the name upper-cased, non-alphanumerics as ``_``."""
    return "ZOLIB_MIRROR_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def manifest_path(name: str) -> Path:
    """The JSON file of a known dataset."""
    if name not in datasets():
        raise unknown_value("dataset", name, datasets())
    return MANIFEST_DIR / f"{name}.json"


def load_manifest(name: str) -> Manifest:
    """Read ``data_manifests/<name>.json``."""
    path = manifest_path(name)
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ZolibError(f"manifest {path} is missing; reinstall zolib or restore data_manifests/") from None


def resolve(dataset: "str | Manifest") -> Manifest:
    """A manifest given either its dataset name or the manifest itself."""
    return dataset if isinstance(dataset, Manifest) else load_manifest(dataset)
