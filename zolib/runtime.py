"""Run-time plumbing shared by every entry point: seeds, cache folders,
atomic result files, and the provenance (package versions, git commit) that
is written next to every result."""
from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("zolib", "torch", "torchvision", "open_clip_torch", "numpy", "scipy",
             "papermill", "seaborn", "matplotlib")


def cache_dir(*parts: str) -> Path:
    """zolib's cache folder (``$ZOLIB_CACHE``, default ``~/.cache/zolib``), created."""
    root = Path(os.environ.get("ZOLIB_CACHE", Path.home() / ".cache" / "zolib")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh torch.Generator seeded likewise."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def package_versions() -> dict[str, str]:
    """Versions of the packages that decide the numbers, plus Python and the platform."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["torch_threads"] = str(torch.get_num_threads())
    out["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return out


def git_commit() -> str:
    """The commit of the zolib checkout (with ``+dirty`` if modified), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance() -> dict[str, Any]:
    """What to record next to every result: package versions and git commit."""
    return {"versions": package_versions(), "git_commit": git_commit()}


def _umask_mode() -> int:
    """The mode a plain new file gets (0o666 minus the umask): what mkstemp's private 0o600 should be
    for a store that several users or cluster jobs read."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _umask_mode())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


CHECKPOINT_KEY = "zolib.checkpoint"
"""The safetensors metadata field that holds a checkpoint's JSON state."""


def atomic_save_checkpoint(state: dict[str, Any], tensors: dict[str, torch.Tensor], path: str | Path) -> None:
    """Write an unfinished run's checkpoint to ``path`` atomically, as data only: ``tensors`` in the
    safetensors format and ``state`` (JSON-able numbers, lists, strings) as JSON in its metadata.
    Nothing in such a file can run code when it is read (:func:`load_checkpoint`); no pickle is involved."""
    from safetensors.torch import save
    blob = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                metadata={CHECKPOINT_KEY: json.dumps(state, allow_nan=True)})
    atomic_write_bytes(path, blob)


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(state, tensors)`` of a checkpoint written by :func:`atomic_save_checkpoint`.

    Reads the safetensors header and JSON only, so a file someone else placed there cannot run code.
    Raises ``ValueError`` with the reason when ``path`` is not such a checkpoint (a pickle, a truncated file).
    """
    from safetensors import SafetensorError, safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            state = json.loads((f.metadata() or {})[CHECKPOINT_KEY])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, ValueError, KeyError, OverflowError) as err:
        raise ValueError(f"not a zolib checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict):
        raise ValueError("not a zolib checkpoint (its state is not a JSON object)")
    return state, tensors
