"""Downloading, importing, verifying and unpacking dataset archives.

Layout under the data root (``$ZOLIB_DATA``, default ``cache_dir("data")``, i.e.
``~/.cache/zolib/data``)::

    <root>/<dataset>/<archive file>            the verified archive
    <root>/<dataset>/<archive file>.verified   stamp: md5, size and mtime last verified
    <root>/<dataset>/<extracts_to>/            the unpacked archive (+ .zolib-extracted)

Rules: an archive is checked (size, then md5) before anything is unpacked; a file
that fails the check is deleted (download) or renamed ``*.corrupt`` (cache) and is
never unpacked; members that would land outside the target folder, links and
devices are refused; every user-facing failure is a one-line :class:`ZolibError`.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zolib.data.manifests import Manifest, resolve
from zolib.errors import ZolibError
from zolib.runtime import atomic_write_json, cache_dir

_CHUNK = 1 << 20
_MARKER = ".zolib-extracted"


def data_root() -> Path:
    """Where datasets live: ``$ZOLIB_DATA`` or ``zolib.runtime.cache_dir("data")``."""
    env = os.environ.get("ZOLIB_DATA")
    if env:
        path = Path(env).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        return path
    return cache_dir("data")


def dataset_dir(dataset: str | Manifest, root: str | Path | None = None) -> Path:
    """``<root>/<name>``, the folder of one dataset."""
    return Path(root or data_root()) / resolve(dataset).name


def archive_path(dataset: str | Manifest, root: str | Path | None = None) -> Path:
    """Where the verified archive is (or would be) kept."""
    m = resolve(dataset)
    return dataset_dir(m, root) / m.filename


def extracted_dir(dataset: str | Manifest, root: str | Path | None = None) -> Path:
    """Where the archive unpacks to."""
    m = resolve(dataset)
    return dataset_dir(m, root) / m.extracts_to


def md5sum(path: str | Path) -> str:
    """The md5 hex digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- messages

def _import_hint(m: Manifest) -> str:
    return f"`zolib data import {m.name} PATH`"


def _missing_error(m: Manifest, root: str | Path | None, reason: str) -> ZolibError:
    dest = archive_path(m, root)
    return ZolibError(
        f"{reason}; place {m.filename} (md5 {m.md5}, from {m.source}) at {dest}, "
        f"or run {_import_hint(m)}, or give a mirror with --url or ${m.env_var}")


def _mismatch_error(m: Manifest, what: str, got_md5: str, got_size: int, action: str) -> ZolibError:
    size = f", {m.size} bytes" if m.size is not None else ""
    return ZolibError(
        f"checksum mismatch for {m.filename} ({what}): expected md5 {m.md5}{size}, "
        f"got md5 {got_md5}, {got_size} bytes; {action}")


def _matches(m: Manifest, got_md5: str, got_size: int) -> bool:
    return got_md5 == m.md5 and (m.size is None or got_size == m.size)


# ----------------------------------------------------------------------------- stamps

def _stamp_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".verified")


def _write_stamp(m: Manifest, archive: Path) -> None:
    st = archive.stat()
    atomic_write_json(_stamp_path(archive), {"md5": m.md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns})


def _stamp_ok(m: Manifest, archive: Path) -> bool:
    """True if the archive was verified and has not changed since (no re-hashing)."""
    try:
        stamp = json.loads(_stamp_path(archive).read_text())
        st = archive.stat()
    except (OSError, ValueError):
        return False
    return (stamp.get("md5") == m.md5 and stamp.get("size") == st.st_size
            and stamp.get("mtime_ns") == st.st_mtime_ns and (m.size is None or st.st_size == m.size))


def _quarantine(archive: Path) -> Path:
    bad = archive.with_name(archive.name + ".corrupt")
    os.replace(archive, bad)
    _stamp_path(archive).unlink(missing_ok=True)
    return bad


def _check_cached(m: Manifest, archive: Path) -> bool:
    """Verify a cached archive: True if good; a bad one is renamed ``*.corrupt``, and False."""
    if not archive.is_file():
        return False
    if _stamp_ok(m, archive):
        return True
    size = archive.stat().st_size
    got = md5sum(archive) if m.size is None or size == m.size else "(not computed: wrong size)"
    if _matches(m, got, size):
        _write_stamp(m, archive)
        return True
    _quarantine(archive)
    return False


# ----------------------------------------------------------------------------- public API

def fetch(dataset: str | Manifest, url: str | None = None, *, root: str | Path | None = None,
          progress: bool = True) -> Path:
    """Return the verified archive, downloading it first if it is not cached.

    Sources are tried in the order of :meth:`Manifest.candidate_urls`. The download
    goes to a temporary file in the dataset folder, is checked (size, md5), then
    renamed into place; a file that fails the check is deleted.
    """
    m = resolve(dataset)
    dest = archive_path(m, root)
    corrupt_before = dest.is_file()
    if _check_cached(m, dest):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    mismatch: ZolibError | None = None
    for u in m.candidate_urls(url):
        try:
            tmp, got_md5, got_size = _download(u, dest, m, progress)
        except (OSError, ValueError) as e:
            failures.append(f"{u}: {_reason(e)}")
            continue
        if _matches(m, got_md5, got_size):
            os.replace(tmp, dest)
            _write_stamp(m, dest)
            return dest
        tmp.unlink(missing_ok=True)
        mismatch = mismatch or _mismatch_error(
            m, f"downloaded from {u}", got_md5, got_size,
            f"the file was deleted and nothing was unpacked; retry, or use another source (--url or ${m.env_var})")
    if mismatch is not None:
        raise mismatch
    reason = f"cannot download {m.filename} ({'; '.join(failures) or 'no source URL'})"
    if corrupt_before:
        reason += f"; the cached copy failed its checksum and was renamed {dest.name}.corrupt"
    raise _missing_error(m, root, reason)


def import_archive(dataset: str | Manifest, path: str | Path, *, root: str | Path | None = None) -> Path:
    """Verify an already-downloaded archive and hard-link (or copy) it into the data root."""
    m = resolve(dataset)
    src = Path(path).expanduser()
    if not src.is_file():
        raise ZolibError(f"{src} is not a file; give the path of {m.filename} (md5 {m.md5}, from {m.source})")
    size = src.stat().st_size
    got = md5sum(src)
    if not _matches(m, got, size):
        raise _mismatch_error(m, f"at {src}", got, size,
                              f"nothing was imported; download it again from {m.source}")
    dest = archive_path(m, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and dest.resolve() == src.resolve():
        _write_stamp(m, dest)
        return dest
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    os.unlink(tmp)
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        if md5sum(tmp) != m.md5:  # the copy itself went wrong
            raise ZolibError(f"copying {src} to {dest.parent} corrupted it; check the disk and retry")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    _write_stamp(m, dest)
    return dest


def verify(dataset: str | Manifest, *, root: str | Path | None = None) -> Path:
    """Re-hash the cached archive; return it, or raise (missing, or mismatch: renamed ``*.corrupt``)."""
    m = resolve(dataset)
    dest = archive_path(m, root)
    if not dest.is_file():
        raise _missing_error(m, root, f"{m.name} is not downloaded")
    _stamp_path(dest).unlink(missing_ok=True)
    size = dest.stat().st_size
    got = md5sum(dest)
    if not _matches(m, got, size):
        _quarantine(dest)
        raise _mismatch_error(m, f"at {dest}", got, size,
                              f"it was renamed {dest.name}.corrupt; run `zolib data download {m.name}` "
                              f"or {_import_hint(m)}")
    _write_stamp(m, dest)
    return dest


@dataclass(frozen=True)
class Status:
    """What the data root holds for one dataset (no hashing: uses the verification stamp).

    ``extracted`` means unpacked from a verified archive, which may since have been deleted.
    """

    name: str
    archive: Path
    present: bool
    verified: bool
    extracted: bool

    @property
    def state(self) -> str:
        if self.extracted:
            return "ready"
        if self.verified:
            return "verified"
        return "present (unverified)" if self.present else "missing"


def status(dataset: str | Manifest, *, root: str | Path | None = None) -> Status:
    """Presence, verification and extraction state of one dataset."""
    m = resolve(dataset)
    dest = archive_path(m, root)
    present = dest.is_file()
    verified = present and _stamp_ok(m, dest)
    return Status(m.name, dest, present, verified, _is_extracted(m, root))


def prepare(dataset: str | Manifest, *, root: str | Path | None = None, download: bool = True,
            url: str | None = None, progress: bool = True) -> Path:
    """Make the dataset ready to load and return its unpacked folder.

    With ``download=False`` a missing archive is an error saying where to put it.
    Once unpacked, the archive may be deleted to save space.
    """
    m = resolve(dataset)
    if _is_extracted(m, root):  # unpacked from a verified archive (which may since be deleted)
        return extracted_dir(m, root)
    if download:
        fetch(m, url, root=root, progress=progress)
    elif not _check_cached(m, archive_path(m, root)):
        raise _missing_error(m, root, f"{m.name} is not in the data root and download=False")
    return extract(m, root=root)


def extract(dataset: str | Manifest, *, root: str | Path | None = None) -> Path:
    """Unpack the verified archive (once) and return the unpacked folder."""
    m = resolve(dataset)
    archive = archive_path(m, root)
    if not _check_cached(m, archive):
        raise _missing_error(m, root, f"no verified {m.filename} to unpack")
    out = extracted_dir(m, root)
    if _is_extracted(m, root):
        return out
    tmp = Path(tempfile.mkdtemp(dir=archive.parent, prefix=".extract-"))
    try:
        safe_extract(archive, tmp)
        top = tmp / m.extracts_to
        if not top.is_dir():
            raise ZolibError(f"{m.filename} does not contain the folder {m.extracts_to}/; "
                             f"is it the right file? (expected md5 {m.md5})")
        (top / _MARKER).write_text(m.md5 + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(top, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def check_inner(dataset: str | Manifest, folder: str | Path) -> None:
    """Check the md5 of the unpacked files listed in the manifest's ``inner_md5``.

    Called before any of them is opened (CIFAR's pickles); raises on a mismatch.
    """
    m = resolve(dataset)
    for rel, expected in m.inner_md5.items():
        path = Path(folder) / rel
        if not path.is_file():
            raise ZolibError(f"{path} is missing from the unpacked {m.name}; delete {folder} and load again")
        got = md5sum(path)
        if got != expected:
            raise ZolibError(f"checksum mismatch for {path}: expected md5 {expected}, got {got}; "
                             f"it was not opened; delete {folder} and load again")


# ----------------------------------------------------------------------------- internals

def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    return " ".join(str(reason).split()) or type(e).__name__


def _download(url: str, dest: Path, m: Manifest, progress: bool) -> tuple[Path, str, int]:
    """Stream ``url`` into a temporary file next to ``dest``; return it with its md5 and size."""
    from tqdm.auto import tqdm

    h = hashlib.md5()
    n = 0
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=60) as r:
            total = r.headers.get("Content-Length") if hasattr(r, "headers") else None
            total = int(total) if total and total.isdigit() else m.size
            with tqdm(total=total, unit="B", unit_scale=True, desc=m.filename, disable=not progress,
                      leave=False) as bar:
                while chunk := r.read(_CHUNK):
                    f.write(chunk)
                    h.update(chunk)
                    n += len(chunk)
                    bar.update(len(chunk))
                    if m.size is not None and n > m.size:
                        break  # larger than the real file: stop, it will fail the check
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp), h.hexdigest(), n


def extracted_md5(folder: str | Path) -> str | None:
    """The md5 of the verified archive an unpacked dataset folder came from (written when it was unpacked)."""
    try:
        return (Path(folder) / _MARKER).read_text().strip()
    except OSError:
        return None


def _is_extracted(m: Manifest, root: str | Path | None) -> bool:
    marker = extracted_dir(m, root) / _MARKER
    try:
        return marker.read_text().strip() == m.md5
    except OSError:
        return False


def _check_member(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise ZolibError(f"unsafe member {name!r} in {archive.name} (it would be written outside the "
                         f"target folder); refusing to unpack; delete the archive and get a clean copy")


def safe_extract(archive: str | Path, dest: str | Path) -> None:
    """Unpack a tar (any compression) or zip into ``dest`` after checking every member.

    Refused: absolute paths, ``..`` components, drive letters, links (tar and zip), devices and FIFOs.
    Nothing is written unless all members pass.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                _check_member(info.filename, archive)
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ZolibError(f"unsafe member {info.filename!r} in {archive.name} (a link); refusing to "
                                     f"unpack; delete the archive and get a clean copy")
            z.extractall(dest)
        return
    try:
        tf = tarfile.open(archive)
    except tarfile.TarError:
        raise ZolibError(f"{archive} is neither a tar nor a zip archive") from None
    with tf:
        members = tf.getmembers()
        for mem in members:
            _check_member(mem.name, archive)
            if not (mem.isfile() or mem.isdir()):
                raise ZolibError(f"unsafe member {mem.name!r} in {archive.name} (a link or special file); "
                                 f"refusing to unpack; delete the archive and get a clean copy")
        if hasattr(tarfile, "data_filter"):
            tf.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tf.extractall(dest, members=members)
