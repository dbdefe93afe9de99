"""Everything zolib reads from a store, an archive or a weights file is data: nothing read can run code.

- An unfinished run's checkpoint is safetensors + JSON; a file placed where a checkpoint goes whose unpickling
  would run code is quarantined unread, and the run starts over to the uninterrupted numbers.
- An archive member that would land outside its folder (``..``, an absolute path, a link) is refused in one
  line before anything is written.
- A weights file is a state dict read as data; the only TorchScript archive loaded is OpenAI's own file,
  recognised by its published SHA-256."""
from __future__ import annotations

import io
import json
import pickle
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch

from zolib.cl.profiles import profile_config
from zolib.cl.store import Request, Store
from zolib.cl.sweep import run_sweep
from zolib.data.download import safe_extract
from zolib.errors import ZolibError

SMALL = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=2,
             batch_size=16)
NUMBERS = ("last", "avg", "forgetting", "acc_matrix", "pooled", "losses", "picks", "movement", "zo_effect",
           "zero_shot")

pytestmark = pytest.mark.usefixtures("single_thread")


class CreatesAFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, i.e. runs code that creates ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted sweep of a hybrid run (FO and ZO units)."""
    store = Store(tmp_path_factory.mktemp("reference") / "store")
    req = Request(profile_config("smoke", method="hop-odd-vision", zo_lr=0.05, **SMALL))
    report = run_sweep([req], store, executor="debug", progress=False)
    assert not report.failed and report.finished == 1, report.describe()
    return req, store.get(req.config)


@pytest.mark.parametrize("form", ["pickle", "torch.save"])
def test_a_checkpoint_whose_loading_would_run_code_is_quarantined_unread(reference, tmp_path, capfd, form):
    req, expected = reference
    store = Store(tmp_path / "store")
    path = store.run_path(req.config)
    ckpt = path.with_name(path.name + ".ckpt")
    marker = tmp_path / "the-payload-ran"
    payload = {"config": req.config.as_dict(), "acc_matrix": [[50.0]], "adapters": CreatesAFile(marker)}
    ckpt.parent.mkdir(parents=True)
    if form == "pickle":
        ckpt.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, ckpt)  # what zolib itself wrote before checkpoints became data only
    assert not marker.exists()
    found = store.verify()
    assert [b["path"] for b in found["bad"]] == [str(ckpt)] and not marker.exists(), "store verify reads it as data"

    report = run_sweep([req], store, executor="debug", progress=False)  # the sweep resumes this run

    said = [line for line in capfd.readouterr().err.splitlines() if line.startswith("zolib: store:")]
    print("\n".join(said))
    assert not marker.exists(), "the payload never ran"
    assert len(said) == 1 and str(ckpt) in said[0] and "quarantine" in said[0] and "nothing in it ran" in said[0]
    assert not ckpt.exists() and len(list((store.root / "quarantine" / "runs").glob("*.ckpt.*"))) == 1
    assert report.finished == 1 and not report.failed, report.describe()
    got = json.loads(path.read_text())
    assert {k: got[k] for k in NUMBERS} == {k: expected[k] for k in NUMBERS}, "started over: the uninterrupted numbers"


def test_a_genuine_checkpoint_resumes_in_the_sweep_to_the_uninterrupted_numbers(reference, tmp_path,
                                                                                 interrupt_at_task):
    from zolib.runtime import load_checkpoint
    req, expected = reference
    store = Store(tmp_path / "store")
    interrupt_at_task(3)
    with pytest.raises(KeyboardInterrupt):
        store.run(req.config)
    path = store.run_path(req.config)
    state, adapters = load_checkpoint(path.with_name(path.name + ".ckpt"))
    assert len(state["acc_matrix"]) == 3 and all(t.dtype.is_floating_point for t in adapters.values())
    interrupt_at_task(None)
    run_sweep([req], store, executor="debug", progress=False)
    got = store.get(req.config)
    assert {k: got[k] for k in NUMBERS} == {k: expected[k] for k in NUMBERS}
    assert not (store.root / "quarantine").exists(), "a genuine checkpoint is not quarantined"


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def tar_with(path: Path, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Path:
    with tarfile.open(path, "w:gz") as tf:
        ok = tarfile.TarInfo("data/ok.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        bad = tarfile.TarInfo(name)
        bad.type, bad.linkname = kind, link
        data = b"" if link else b"outside"
        bad.size = len(data)
        tf.addfile(bad, io.BytesIO(data))
    return path


def zip_with(path: Path, name: str, link: bool = False) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("data/ok.txt", b"ok")
        info = zipfile.ZipInfo(name)
        if link:
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, b"../../outside.txt" if link else b"outside")
    return path


@pytest.mark.parametrize("make", [
    lambda d: tar_with(d / "a.tar.gz", "data/../../outside.txt"),
    lambda d: tar_with(d / "a.tar.gz", str(d / "absolute-outside.txt")),
    lambda d: tar_with(d / "a.tar.gz", "data/link", tarfile.SYMTYPE, "../../outside.txt"),
    lambda d: tar_with(d / "a.tar.gz", "data/hard", tarfile.LNKTYPE, "/etc/passwd"),
    lambda d: zip_with(d / "a.zip", "../outside.txt"),
    lambda d: zip_with(d / "a.zip", "/absolute-outside.txt"),
    lambda d: zip_with(d / "a.zip", "data/link", link=True),
], ids=["tar-dotdot", "tar-absolute", "tar-symlink", "tar-hardlink", "zip-dotdot", "zip-absolute", "zip-symlink"])
def test_an_archive_member_outside_its_folder_is_refused_and_nothing_is_written(tmp_path, make):
    src = tmp_path / "src"
    src.mkdir()
    archive = make(src)
    dest = tmp_path / "a" / "b" / "dest"
    before = tree(tmp_path)
    with pytest.raises(ZolibError) as err:
        safe_extract(archive, dest)
    print(err.value)  # what a user sees
    assert "\n" not in str(err.value) and "unsafe member" in str(err.value) and "refusing to unpack" in str(err.value)
    assert tree(tmp_path) - before <= {"a", "a/b", "a/b/dest"}, "nothing unpacked, inside or outside"
    assert not list(dest.iterdir())


def traced_tiny(path: Path):
    """A TorchScript archive of the tiny CLIP with random weights: OpenAI's ViT-B-16.pt is such an archive."""
    from zolib.models.architectures import random_clip
    model = random_clip("zolib-tiny").eval()
    size = model.visual.image_size
    images = torch.randn(1, 3, *size) if isinstance(size, tuple) else torch.randn(1, 3, size, size)
    traced = torch.jit.trace(model, (images, torch.zeros(1, model.context_length, dtype=torch.long)),
                             strict=False, check_trace=False)
    torch.jit.save(traced, str(path))
    return model


def test_a_torchscript_weights_file_is_loaded_only_when_it_is_openais_own(tmp_path, monkeypatch):
    from zolib.models import clip
    path = tmp_path / "ViT-B-16.pt"
    model = traced_tiny(path)
    with pytest.raises(ZolibError) as err:  # its SHA-256 is not the one OpenAI published
        clip.load_clip("zolib-tiny", "openai", weights=path)
    print(err.value)
    assert "\n" not in str(err.value) and "TorchScript" in str(err.value) and clip.OPENAI_URL in str(err.value)
    digest = clip.file_provenance(path, "local file")["sha256"]
    monkeypatch.setattr(clip, "OPENAI_SHA256", digest)  # stand-in: this file is "the one OpenAI published"
    loaded = clip.load_clip("zolib-tiny", "openai", weights=path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert loaded.weights_provenance["sha256"] == digest


def test_a_state_dict_weights_file_is_read_as_data(tmp_path):
    """open_clip reads a non-TorchScript file with torch.load(weights_only=True): a payload is refused unrun."""
    from zolib.models import clip
    path, marker = tmp_path / "weights.pt", tmp_path / "the-payload-ran"
    torch.save({"state_dict": CreatesAFile(marker)}, path)
    with pytest.raises(ZolibError):
        clip.load_clip("zolib-tiny", "openai", weights=path)
    assert not marker.exists()
