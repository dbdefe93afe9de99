"""Download, import, verification and safe unpacking, on small archives built here (no network)."""
from __future__ import annotations

import argparse
import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from zolib.data import cli as data_cli
from zolib.data import download as dl
from zolib.data.manifests import Manifest, datasets, load_manifest, mirror_env_var
from zolib.errors import ZolibError


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("ZOLIB_DATA", str(root))
    for name in [mirror_env_var(n) for n in (*datasets(), "fake")]:
        monkeypatch.delenv(name, raising=False)
    return root


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def make_tar(path: Path, files: dict[str, bytes], symlink: str | None = None) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        if symlink:
            info = tarfile.TarInfo(symlink)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tf.addfile(info)
    return path


def fake_manifest(archive: Path, **over) -> Manifest:
    m = Manifest(name="fake", filename=archive.name, md5=md5(archive), size=archive.stat().st_size,
                 urls=(archive.as_uri(),), extracts_to="fake", num_classes=2, class_order=(1, 0))
    return replace(m, **over)


@pytest.fixture
def archive(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    return make_tar(src / "fake.tar.gz", {"fake/a.txt": b"hello", "fake/sub/b.txt": b"world"})


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_fetch_file_url_verifies_and_caches(archive, data_root):
    m = fake_manifest(archive)
    path = dl.fetch(m, progress=False)
    assert path == data_root / "fake" / "fake.tar.gz" and md5(path) == m.md5
    assert dl.status(m).state == "verified"
    assert not list(path.parent.glob("*.part"))
    archive.unlink()  # the source is gone: the cached, verified copy is reused
    assert dl.fetch(m, progress=False) == path
    folder = dl.prepare(m, progress=False)
    assert folder == data_root / "fake" / "fake"
    assert (folder / "a.txt").read_bytes() == b"hello" and (folder / "sub" / "b.txt").read_bytes() == b"world"
    assert dl.status(m).state == "ready"
    path.unlink()  # once unpacked, the archive may be deleted
    assert dl.prepare(m, download=False) == folder
    assert dl.status(m).state == "ready" and not dl.status(m).present


def test_checksum_mismatch_deletes_and_never_unpacks(archive, data_root):
    m = fake_manifest(archive, md5="0" * 32)
    with pytest.raises(ZolibError) as e:
        dl.prepare(m, progress=False)
    msg = one_line(e)
    assert "0" * 32 in msg and md5(archive) in msg and "mismatch" in msg
    folder = data_root / "fake"
    assert not (folder / "fake.tar.gz").exists() and not (folder / "fake").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part") or p.name.startswith(".extract")]


def test_size_mismatch_is_refused(archive):
    m = fake_manifest(archive, size=archive.stat().st_size + 1)
    with pytest.raises(ZolibError, match="mismatch"):
        dl.fetch(m, progress=False)


def test_offline_names_the_file_and_where_to_put_it(archive, data_root):
    m = fake_manifest(archive, urls=("file:///nonexistent/fake.tar.gz",))
    with pytest.raises(ZolibError) as e:
        dl.fetch(m, progress=False)
    msg = one_line(e)
    assert str(data_root / "fake" / "fake.tar.gz") in msg
    assert m.md5 in msg and "file:///nonexistent/fake.tar.gz" in msg and "zolib data import fake" in msg
    with pytest.raises(ZolibError) as e:  # download=False: same advice, nothing fetched
        dl.prepare(m, download=False)
    assert str(data_root / "fake" / "fake.tar.gz") in one_line(e)


def test_url_and_mirror_env_override_the_manifest(archive, monkeypatch):
    m = fake_manifest(archive, urls=("file:///nonexistent/fake.tar.gz",))
    assert dl.fetch(m, url=archive.as_uri(), progress=False).is_file()
    m2 = replace(m, name="fake2")
    monkeypatch.setenv("ZOLIB_MIRROR_FAKE2", archive.parent.as_uri() + "/")  # a folder: name appended
    assert m2.candidate_urls()[0] == archive.as_uri()
    assert dl.fetch(m2, progress=False).is_file()


def test_import_archive(archive, data_root, tmp_path):
    m = fake_manifest(archive, urls=("file:///nonexistent/fake.tar.gz",))
    path = dl.import_archive(m, archive)
    assert path == data_root / "fake" / "fake.tar.gz" and md5(path) == m.md5
    assert archive.exists()  # the user's file is left alone
    assert dl.status(m).verified
    assert (dl.prepare(m, download=False) / "a.txt").exists()
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"not the archive")
    with pytest.raises(ZolibError) as e:
        dl.import_archive(replace(m, name="other"), bad)
    assert "mismatch" in one_line(e) and not (data_root / "other").exists()


def test_corrupted_cache_is_quarantined(archive, data_root):
    m = fake_manifest(archive)
    path = dl.fetch(m, progress=False)
    assert dl.verify(m) == path
    path.write_bytes(b"garbage")
    with pytest.raises(ZolibError) as e:
        dl.verify(m)
    assert "mismatch" in one_line(e)
    assert not path.exists() and path.with_name(path.name + ".corrupt").exists()
    with pytest.raises(ZolibError, match="not downloaded"):
        dl.verify(m)


@pytest.mark.parametrize("kind", ["tar-dotdot", "tar-absolute", "tar-symlink", "zip-dotdot"])
def test_unsafe_members_are_rejected(tmp_path, data_root, kind):
    src = tmp_path / "src"
    src.mkdir()
    if kind == "zip-dotdot":
        archive = src / "fake.zip"
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("fake/ok.txt", b"ok")
            z.writestr("../evil.txt", b"evil")
    else:
        bad = {"tar-dotdot": "fake/../../evil.txt", "tar-absolute": "/tmp/zolib-evil.txt"}.get(kind)
        files = {"fake/ok.txt": b"ok", **({bad: b"evil"} if bad else {})}
        archive = make_tar(src / "fake.tar.gz", files, symlink="fake/link" if kind == "tar-symlink" else None)
    m = fake_manifest(archive)
    with pytest.raises(ZolibError) as e:
        dl.prepare(m, progress=False)
    assert "unsafe member" in one_line(e)
    assert not (data_root / "fake" / "fake").exists()
    assert not (data_root / "evil.txt").exists() and not (data_root / "fake" / "evil.txt").exists()


def test_real_manifests_are_consistent():
    for name in datasets():
        m = load_manifest(name)
        assert sorted(m.class_order) == list(range(m.num_classes))
        assert len(m.class_names) == m.num_classes and m.template == "a bad photo of a {}."
        assert len(m.md5) == 32 and m.urls and m.filename in m.urls[0]
    c = load_manifest("cifar100")
    assert c.class_names[:3] == ("apple", "aquarium_fish", "baby") and list(c.class_names) == sorted(c.class_names)
    assert c.class_order[:5] == (87, 0, 52, 58, 44) and c.class_order[-1] == 39
    assert set(c.inner_md5) == {"train", "test", "meta"} and c.size == 169001437
    t = load_manifest("tinyimagenet")
    assert t.class_order[:4] == (131, 181, 22, 172) and t.class_order[-1] == 98
    assert t.wnids[0] == "n02124075" and len(set(t.wnids)) == 200
    r = load_manifest("imagenet-r")
    assert list(r.wnids) == sorted(r.wnids) and len(set(r.wnids)) == 200
    assert list(r.class_order) == np.random.RandomState(1993).permutation(200).tolist()
    assert r.class_names[0] == "goldfish" and r.split["rule"] == "per-class-random"


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="zolib")
    data_cli.add_data_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_list_import_verify(archive, data_root, monkeypatch, capsys):
    assert _cli(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in datasets():
        assert name in out
    assert "missing" in out and str(data_root) in out
    with pytest.raises(ZolibError) as e:
        _cli(["data", "verify", "cifar100"])
    assert str(data_root / "cifar100" / "cifar-100-python.tar.gz") in one_line(e)
    with pytest.raises(ZolibError, match="valid values"):
        _cli(["data", "verify", "mnist"])
    m = fake_manifest(archive, urls=("file:///nonexistent/fake.tar.gz",))
    monkeypatch.setattr(data_cli, "load_manifest", lambda name: m)
    assert _cli(["data", "import", "fake", str(archive)]) == 0
    assert _cli(["data", "verify", "fake"]) == 0
    assert _cli(["data", "download", "fake"]) == 0
    assert (data_root / "fake" / "fake" / "a.txt").exists()
