"""The preflight: what a run needs from this machine, checked before anything is planned or started.

``zolib sweep``, ``zolib notebooks`` and ``zolib experiment`` call :func:`require` first; ``zolib doctor``
prints :func:`report` of the same :func:`check`. What is checked, for the benchmarks and models a
profile (or one experiment) uses, the device and the executor:

- **data**: each real benchmark's archive in the data root (``$ZOLIB_DATA``), verified with the download
  code's own checks (:func:`zolib.data.download.status` reads the verification stamp, without hashing;
  an archive found unverified is hashed once by :func:`zolib.data.download.verify`, which stamps it, or
  renames it ``*.corrupt`` when its checksum is wrong: it would be refused when loaded anyway). An
  archive not in the data root is *missing*, even with internet: the fix is the command that fetches it
  (``zolib data download NAME``), or ``zolib data import NAME PATH`` offline. The network is never
  probed. The synthetic world is drawn on the fly.
- **weights**: the OpenAI ViT-B/16 weights in open_clip's cache (Hugging Face's hub cache, or
  ``~/.cache/clip`` for open_clip's URL download), or a ``--weights`` / ``$ZOLIB_CLIP_WEIGHTS`` file; the
  tiny CLIP's weights ship with zolib.
- **CUDA**: needed when the device is ``cuda``, or ``auto`` in a profile that expects a GPU
  (:attr:`Profile.gpu <zolib.cl.profiles.Profile.gpu>`: workshop, paper). Without one it is *missing*, not a
  warning: the workshop profile takes about an hour per seed on a GPU and days on 2 CPU cores, and the cpu
  profile is the workshop run designed for a machine without a GPU. ``--device cpu`` (zolib experiment)
  says CPU on purpose. With the Slurm executor the GPUs are the nodes' (``--gpus-per-node``), not this machine's.
- **executor**: Slurm's ``sbatch`` on the PATH for ``--executor slurm``.
- **disk**: free space under the data root against the archives still to fetch and unpack (about twice an
  archive's size: the archive and its unpacked copy; an archive of unknown size counts 0 and is named).

Nothing here changes a plan, a number or a store key; the smoke and cpu profiles pass with nothing to fetch.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..data import download as dl
from ..data.manifests import load_manifest
from ..errors import ZolibError
from ..models.specs import model_spec, world_model
from .profiles import Profile, get_profile

OK, MISSING, BAD = "ok", "missing", "bad"
SYNTHETIC = "synthetic"
UNPACK_FACTOR = 2  # an archive to fetch needs its own size and about as much again unpacked


@dataclass(frozen=True)
class Finding:
    """One thing a run needs: what it is, whether it is here (ok / missing / bad), where it is or goes, and
    the command that fetches it (empty when nothing is to do)."""

    what: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        return f"{self.status:<7}  {self.what}: {self.detail}" + (f"; {self.fix}" if self.fix else "")


def _gb(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def data_findings(benchmarks: Iterable[str]) -> tuple[list[Finding], int, list[str]]:
    """One finding per benchmark; also the bytes still to fetch and unpack, and the archives of unknown size."""
    found, need, unknown = [], 0, []
    for bench in dict.fromkeys(benchmarks):
        if bench == SYNTHETIC:
            found.append(Finding("data synthetic", OK, "drawn on the fly, nothing to download"))
            continue
        m = load_manifest(bench)
        st = dl.status(m)
        size = f" ({_gb(m.size)})" if m.size else ""
        fetch = f"fetch: zolib data download {m.name} (offline: zolib data import {m.name} PATH)"
        if st.extracted:
            found.append(Finding(f"data {m.name}", OK, f"unpacked in {dl.extracted_dir(m)}"))
            continue
        if m.size is None:
            unknown.append(m.filename)
        if not st.present:
            need += UNPACK_FACTOR * (m.size or 0)
            found.append(Finding(f"data {m.name}", MISSING, f"{m.filename}{size} is not in {st.archive.parent}", fetch))
            continue
        need += m.size or 0
        if st.verified:
            found.append(Finding(f"data {m.name}", OK, f"{st.archive} (md5 verified)"))
            continue
        try:
            dl.verify(m)
        except ZolibError as err:  # wrong checksum: renamed *.corrupt, the message says what to do
            found.append(Finding(f"data {m.name}", BAD, str(err)))
        else:
            found.append(Finding(f"data {m.name}", OK, f"{st.archive} (md5 verified now)"))
    return found, need, unknown


def openai_weights_in_cache(model: str) -> Path | None:
    """The file open_clip would read ``model``'s OpenAI weights from, if it is in its cache; never downloads.

    The same places as ``open_clip.pretrained.download_pretrained``: with huggingface_hub installed, the hub
    cache (its safetensors first, then the pickle), else the URL's file under ``~/.cache/clip``."""
    from open_clip import pretrained
    cfg = pretrained.get_pretrained_cfg(model, "openai") or {}
    hub, url = cfg.get("hf_hub", ""), cfg.get("url", "")
    if hub and pretrained.has_hf_hub():
        from huggingface_hub import try_to_load_from_cache
        repo, filename = os.path.split(hub)
        for name in ("open_clip_model.safetensors", filename or pretrained.HF_WEIGHTS_NAME):
            hit = try_to_load_from_cache(repo, name)
            if isinstance(hit, str) and Path(hit).is_file():
                return Path(hit)
    if url and (path := Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file():
        return path
    return None


def weights_findings(models: Iterable[str], weights: str | Path | None = None) -> list[Finding]:
    """One finding per model: its default weights (:func:`zolib.models.specs.model_spec`) present or not."""
    from ..models.clip import OPENAI_URL
    weights = weights or os.environ.get("ZOLIB_CLIP_WEIGHTS") or None
    found = []
    for model in dict.fromkeys(models):
        pretrained = model_spec(model).pretrained
        what = f"weights {model} ({pretrained})"
        if pretrained == "synthetic":
            from ..models.tiny import WEIGHTS
            status = OK if WEIGHTS.is_file() else BAD
            found.append(Finding(what, status, f"shipped with zolib: {WEIGHTS}" if status == OK else
                                 f"{WEIGHTS} is missing from this install", "" if status == OK else
                                 "reinstall zolib, or regenerate them with `zolib world pretrain`"))
        elif weights:
            path = Path(weights).expanduser()
            found.append(Finding(what, OK, f"{path} (--weights / ZOLIB_CLIP_WEIGHTS)") if path.is_file() else
                         Finding(what, MISSING, f"{path} (--weights / ZOLIB_CLIP_WEIGHTS) does not exist",
                                 f"download {OPENAI_URL} and give its path"))
        elif (cached := openai_weights_in_cache(model)) is not None:
            found.append(Finding(what, OK, f"in open_clip's cache: {cached}"))
        else:
            from huggingface_hub import constants
            found.append(Finding(what, MISSING, f"not in open_clip's cache ({constants.HF_HUB_CACHE})",
                                 f"fetch: zolib info --model {model} --pretrained openai (offline: download "
                                 f"{OPENAI_URL} elsewhere, then set ZOLIB_CLIP_WEIGHTS=FILE or pass --weights FILE)"))
    return found


def device_finding(device: str, gpu: bool, profile: str, executor: str, gpus_per_node: int | None) -> Finding:
    """Whether the device the runs ask for is here (see the module docstring)."""
    wants_cuda = device.startswith("cuda") or (device == "auto" and gpu)
    why = f"the {profile} profile expects one" if device == "auto" else f"--device {device}"
    if executor == "slurm":
        if wants_cuda and not gpus_per_node:
            return Finding("GPU per job", MISSING, f"--gpus-per-node {gpus_per_node or 0} ({why})",
                           "add --gpus-per-node 1")
        return Finding("device", OK, f"on the cluster's nodes ({gpus_per_node or 0} GPUs per job)")
    import torch
    if torch.cuda.is_available():
        return Finding("device", OK, f"CUDA: {torch.cuda.get_device_name(0)}")
    if wants_cuda:
        alt = "run on a GPU machine, or use --profile cpu (the workshop run without a GPU)" if device == "auto" \
            else "use --device cpu or auto"
        return Finding("CUDA", MISSING, f"no GPU visible to torch {torch.__version__} ({why})", alt)
    return Finding("device", OK, "CPU (no GPU needed)" if device == "auto" else f"{device}, as asked")


def executor_finding(executor: str) -> Finding:
    """Slurm's ``sbatch`` on the PATH for the slurm executor; the others run here."""
    if executor != "slurm":
        return Finding("executor", OK, f"{executor}, on this machine")
    sbatch = shutil.which("sbatch")
    if sbatch:
        return Finding("executor", OK, f"slurm ({sbatch})")
    return Finding("sbatch", MISSING, "not on this machine's PATH (needed by --executor slurm)",
                   "run on a cluster login node, or use --executor local")


def disk_finding(need: int, unknown: Sequence[str]) -> Finding | None:
    """Free space under the data root against what is still to fetch and unpack (None: nothing to fetch)."""
    if not need and not unknown:
        return None
    root = dl.data_root()
    free = shutil.disk_usage(root).free
    extra = f" (and {', '.join(unknown)}, size unknown)" if unknown else ""
    detail = f"{_gb(free)} free under {root}; the data to fetch and unpack needs about {_gb(need)}{extra}"
    if free < need:
        return Finding("disk", MISSING, detail, "free some space, or point ZOLIB_DATA at a larger disk")
    return Finding("disk", OK, detail)


def check(benchmarks: Iterable[str], models: Iterable[str] | None = None, *, device: str = "auto",
          gpu: bool = False, profile: str = "", executor: str = "local", gpus_per_node: int | None = None,
          weights: str | Path | None = None) -> list[Finding]:
    """Every finding for runs on ``benchmarks`` with ``models`` (default: each benchmark's,
    :func:`zolib.models.specs.world_model`) on ``device`` through ``executor``."""
    benchmarks = list(benchmarks)
    models = list(models) if models is not None else [world_model(b) for b in benchmarks]
    data, need, unknown = data_findings(benchmarks)
    out = [*data, *weights_findings(models, weights), device_finding(device, gpu, profile, executor, gpus_per_node),
           executor_finding(executor)]
    disk = disk_finding(need, unknown)
    return out + ([disk] if disk else [])


def check_profile(profile: str | Profile, benchmark: str | None = None, *, device: str | None = None,
                  executor: str = "local", gpus_per_node: int | None = None,
                  weights: str | Path | None = None) -> list[Finding]:
    """:func:`check` for what ``profile`` runs (its benchmarks, or ``benchmark`` alone) on its device."""
    p = get_profile(profile)
    return check([benchmark] if benchmark else p.benchmarks, device=device or p.config.get("device", "auto"),
                 gpu=p.gpu, profile=p.name, executor=executor, gpus_per_node=gpus_per_node, weights=weights)


def problems(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that stop a run: missing or bad."""
    return [f for f in findings if f.status != OK]


def report(findings: Sequence[Finding], title: str) -> str:
    """Every finding, one line each, under a title line that counts the problems (``zolib doctor``)."""
    n = len(problems(findings))
    head = f"{title}: " + (f"{n} missing or bad, see below" if n else "nothing missing")
    return "\n".join([head, *("  " + f.line() for f in findings)])


def require(findings: Sequence[Finding], profile: str, doctor: str = "") -> None:
    """Raise one short :class:`~zolib.errors.ZolibError` (exit status 2) listing what is missing, if anything:
    one line for one problem, else a line per problem between a title and how to check again (``zolib doctor
    --profile PROFILE`` and ``doctor``, its other options)."""
    bad = problems(findings)
    if not bad:
        return
    if len(bad) == 1:
        raise ZolibError(f"preflight ({profile}): {bad[0].line()}; nothing was run")
    raise ZolibError("\n".join([f"preflight ({profile}): {len(bad)} things missing, nothing was run:",
                                *("  " + f.line() for f in bad),
                                f"`zolib doctor --profile {profile}{doctor}` checks again; --no-preflight skips the check"]))
