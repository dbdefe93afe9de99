"""The real-dataset loaders, on fake CIFAR-100 / Tiny-ImageNet / ImageNet-R archives built here, and a toy
benchmark added the way CONTRIBUTING.md says (a manifest and a loader, nothing else)."""
from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import tarfile
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zolib.data import manifests, real
from zolib.data.benchmark import Benchmark, Scenario
from zolib.data.download import prepare
from zolib.data.manifests import Manifest, datasets, load_manifest
from zolib.data.transforms import CLIP_MEAN, CLIP_STD, clip_eval_transform, clip_train_transform
from zolib.errors import ZolibError


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZOLIB_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def jpeg(colour: int, size: int = 8, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (size, size), colour if mode == "L" else (colour, 255 - colour, 0)).save(buf, "JPEG")
    return buf.getvalue()


def write_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def with_archive(m: Manifest, archive: Path, **over) -> Manifest:
    data = archive.read_bytes()
    return replace(m, md5=md5(data), size=len(data), urls=(archive.as_uri(),), mirrors=(), **over)


# ----------------------------------------------------------------------------- CIFAR-100

TRAIN_LABELS = [87, 0, 52, 87, 99, 0]
TEST_LABELS = [52, 87, 3]


def cifar_pickle(labels: list[int]) -> bytes:
    data = np.stack([np.full(3072, 10 * i, dtype=np.uint8) for i in range(len(labels))])
    return pickle.dumps({"data": data, "fine_labels": labels, "coarse_labels": [0] * len(labels)}, protocol=2)


@pytest.fixture
def fake_cifar(tmp_path) -> Manifest:
    m = load_manifest("cifar100")
    files = {"train": cifar_pickle(TRAIN_LABELS), "test": cifar_pickle(TEST_LABELS),
             "meta": pickle.dumps({"fine_label_names": list(m.class_names), "coarse_label_names": []})}
    archive = write_tar(tmp_path / "cifar-100-python.tar.gz", {f"cifar-100-python/{k}": v for k, v in files.items()})
    return with_archive(m, archive, inner_md5={k: md5(v) for k, v in files.items()})


def test_cifar_loader(fake_cifar):
    b = real.load_cifar100(image_size=32, manifest=fake_cifar, progress=False)
    assert isinstance(b, Benchmark) and b.name == "cifar100"
    assert b.train_targets.tolist() == TRAIN_LABELS and b.test_targets.tolist() == TEST_LABELS
    assert b.class_names[87] == "television" and b.class_names[0] == "apple" and len(b.class_names) == 100
    x, y = b.train[4]
    assert isinstance(x, torch.Tensor) and x.shape == (3, 32, 32) and y == 99
    x, y = b.test[2]
    # the third test image is all 20: normalised to (20/255 - mean) / std in every pixel
    assert y == 3 and torch.allclose(x[0], torch.full((32, 32), (20 / 255 - CLIP_MEAN[0]) / CLIP_STD[0]), atol=1e-4)
    assert b.scenario.name == "cifar100/10-steps" and b.scenario.tasks[0] == (87, 0, 52, 58, 44, 91, 68, 97, 51, 15)
    assert b.prompts([87]) == ["a bad photo of a television."]
    assert b.info["split"]["rule"] == "official" and b.info["num_train"] == 6


def test_cifar_inner_checksum_before_unpickling(fake_cifar, data_root, monkeypatch):
    real.load_cifar100(image_size=32, manifest=fake_cifar, progress=False)
    train = data_root / "cifar100" / "cifar-100-python" / "train"
    train.write_bytes(cifar_pickle([1, 2]))  # tampered after unpacking
    opened = []
    monkeypatch.setattr(real, "_unpickle", lambda path: opened.append(path))
    with pytest.raises(ZolibError) as e:
        real.load_cifar100(image_size=32, manifest=fake_cifar, progress=False)
    assert "not opened" in str(e.value) and "\n" not in str(e.value)
    assert opened == []


def test_cifar_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil"
    path.write_bytes(pickle.dumps({"data": Evil()}))
    with pytest.raises(ZolibError, match="refusing to unpickle"):
        real._unpickle(path)


def test_cifar_wrong_names_rejected(fake_cifar):
    names = ("zebra",) + fake_cifar.class_names[1:]
    with pytest.raises(ZolibError, match="class names"):
        real.load_cifar100(image_size=32, manifest=replace(fake_cifar, class_names=names), progress=False)


# ----------------------------------------------------------------------------- Tiny-ImageNet

TINY_WNIDS = ["n02124075", "n01443537", "n04067472"]  # wnids.txt order (not sorted)


@pytest.fixture
def fake_tiny(tmp_path) -> Manifest:
    top = "tiny-imagenet-200"
    files = {f"{top}/wnids.txt": ("\n".join(TINY_WNIDS) + "\n").encode(),
             f"{top}/words.txt": b"n01443537\tgoldfish, Carassius auratus\nn02124075\tEgyptian cat\n"
                                 b"n04067472\treel\nn00000001\tentity\n"}
    for i, w in enumerate(TINY_WNIDS):
        for k in range(2):
            files[f"{top}/train/{w}/images/{w}_{k}.JPEG"] = jpeg(50 * i, mode="L" if k else "RGB")
        files[f"{top}/train/{w}/{w}_boxes.txt"] = b""
    annotations = [("val_0.JPEG", "n04067472"), ("val_1.JPEG", "n02124075"), ("val_2.JPEG", "n01443537")]
    for name, w in annotations:
        files[f"{top}/val/images/{name}"] = jpeg(7)
    files[f"{top}/val/val_annotations.txt"] = "".join(f"{n}\t{w}\t0\t0\t8\t8\n" for n, w in annotations).encode()
    files[f"{top}/test/images/test_0.JPEG"] = jpeg(9)
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    m = Manifest(name="tinyimagenet", filename=archive.name, md5="", size=None, urls=(), extracts_to=top,
                 num_classes=3, class_order=(2, 0, 1), class_names=("Egyptian Mau", "goldfish", "reel"),
                 wnids=tuple(TINY_WNIDS))
    return with_archive(m, archive)


def test_tiny_loader(fake_tiny):
    sc = Scenario.from_order("fake", fake_tiny.class_order, [2, 1])
    b = real.load_tinyimagenet(image_size=16, manifest=fake_tiny, scenario=sc, progress=False)
    assert b.train_targets.tolist() == [0, 0, 1, 1, 2, 2]  # label = index in wnids.txt
    assert b.test_targets.tolist() == [2, 0, 1]  # from val_annotations.txt
    assert b.class_names == ["Egyptian Mau", "goldfish", "reel"] and b.scenario is sc
    x, y = b.train[3]  # a greyscale JPEG comes out as 3 channels
    assert x.shape == (3, 16, 16) and y == 1
    words = real.load_tinyimagenet(image_size=16, manifest=fake_tiny, scenario=sc, names="words", download=False)
    assert words.class_names == ["Egyptian cat", "goldfish", "reel"]
    with pytest.raises(ZolibError, match="valid values"):
        real.load_tinyimagenet(manifest=fake_tiny, scenario=sc, names="wordnet")


def test_tiny_wnids_must_match_manifest(fake_tiny):
    m = replace(fake_tiny, wnids=tuple(sorted(TINY_WNIDS)))
    with pytest.raises(ZolibError, match="wnids"):
        real.load_tinyimagenet(manifest=m, scenario=Scenario("s", ((0, 1, 2),)), progress=False)


# ----------------------------------------------------------------------------- ImageNet-R

R_WNIDS = ["n01443537", "n01484850", "n01494475"]


@pytest.fixture
def fake_imagenet_r(tmp_path) -> Manifest:
    files = {"imagenet-r/README.txt": b"renditions"}
    for i, w in enumerate(R_WNIDS):
        for k in range(5 + i):
            files[f"imagenet-r/{w}/img_{k}.jpg"] = jpeg(20 * k)
    archive = write_tar(tmp_path / "imagenet-r.tar", files, mode="w")
    m = replace(load_manifest("imagenet-r"), num_classes=3, class_order=(1, 2, 0),
                class_names=("goldfish", "great white shark", "hammerhead shark"), wnids=tuple(R_WNIDS))
    return with_archive(m, archive)


def test_imagenet_r_loader_and_split(fake_imagenet_r, data_root):
    sc = Scenario.from_order("fake", fake_imagenet_r.class_order, [1, 2])
    b = real.load_imagenet_r(image_size=16, manifest=fake_imagenet_r, scenario=sc, progress=False)
    counts = [(int((b.train_targets == c).sum()), int((b.test_targets == c).sum())) for c in range(3)]
    assert counts == [(4, 1), (4, 2), (5, 2)]  # floor(0.8 n) train per class
    folder = data_root / "imagenet-r" / "imagenet-r"
    for c, w in enumerate(R_WNIDS):
        files = sorted((folder / w).iterdir())
        tr, te = real.split_files(files)
        assert sorted(tr + te) == files and not set(tr) & set(te)
        perm = np.random.RandomState(1993).permutation(len(files))
        assert te == [files[i] for i in perm[int(0.8 * len(files)):]]
        assert {Path(p) for p, y in zip(b.test.paths, b.test_targets) if y == c} == set(te)
    x, y = b.test[0]
    assert x.shape == (3, 16, 16) and y == 0 and b.class_names[1] == "great white shark"


def test_imagenet_r_folders_must_match_manifest(fake_imagenet_r):
    m = replace(fake_imagenet_r, wnids=("n0", "n1", "n2"))
    with pytest.raises(ZolibError, match="wnids"):
        real.load_imagenet_r(manifest=m, scenario=Scenario("s", ((0, 1, 2),)), progress=False)


# ----------------------------------------------------------------------------- a new benchmark

TOY_NAMES = ["ant", "bee", "cat", "dog"]


def load_toy(root=None, image_size=224, download=True, *, protocol=None, scenario=None, manifest=None, url=None,
             progress=True) -> Benchmark:
    """A new dataset's loader as it would sit in zolib/data/real.py: ``<split>/<class name>/*.jpg``, labels in
    the manifest's class-name order."""
    m = manifest or load_manifest("toy")
    folder = prepare(m, root=root, download=download, url=url, progress=progress)

    def split(part: str, transform) -> tuple[real.FileImages, np.ndarray]:
        paths, labels = [], []
        for label, name in enumerate(m.class_names):
            files = sorted((folder / part / name).iterdir())
            paths += files
            labels += [label] * len(files)
        return real.FileImages(paths, np.array(labels), transform), np.array(labels)

    train, ytr = split("train", clip_train_transform(image_size))
    test, yte = split("test", clip_eval_transform(image_size))
    return real._benchmark(m, train, test, ytr, yte, list(m.class_names), real._scenario("toy", m, protocol, scenario),
                           folder)


@pytest.fixture
def toy_benchmark(tmp_path, monkeypatch) -> Path:
    """The shipped manifests plus ``toy.json`` in a manifest folder read in place of data_manifests/, and
    ``load_toy`` in ``LOADERS``: the two places CONTRIBUTING.md names. Returns the toy archive (a local file)."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    for path in manifests.MANIFEST_DIR.glob("*.json"):
        shutil.copy(path, folder)
    archive = write_tar(tmp_path / "toy.tar.gz", {f"toy/{part}/{name}/{k}.jpg": jpeg(60 * c + k)
                                                  for part, n in (("train", 2), ("test", 1))
                                                  for c, name in enumerate(TOY_NAMES) for k in range(n)})
    data = archive.read_bytes()
    (folder / "toy.json").write_text(json.dumps({
        "name": "toy", "num_classes": 4, "class_names": TOY_NAMES, "class_order": [2, 0, 3, 1],
        "archive": {"filename": archive.name, "md5": md5(data), "size": len(data), "urls": [archive.as_uri()],
                    "extracts_to": "toy"},
        "protocols": {"inc2": {"base": 0, "step": 2, "help": "2 tasks of 2 classes"},
                      "b2-1": {"base": 2, "step": 1, "help": "2 base classes, then 2 tasks of 1"}},
        "default_protocol": "inc2"}))
    monkeypatch.setattr(manifests, "MANIFEST_DIR", folder)
    monkeypatch.setitem(real.LOADERS, "toy", load_toy)
    return archive


def test_a_new_benchmark_is_a_manifest_and_a_loader(toy_benchmark, data_root):
    """CONTRIBUTING.md's "a benchmark dataset": with its manifest and its loader, and no other edit, the toy
    is listed with the datasets and benchmarks, has its manifest's protocols and default, resolves as a
    config, and loads from its checksum-verified local archive with its manifest's names and class order."""
    from zolib.cl.config import benchmarks, resolve
    from zolib.data.scenarios import protocols, resolve_protocol
    assert datasets() == ("cifar100", "imagenet-r", "tinyimagenet", "toy")
    assert benchmarks() == ("synthetic", *datasets())
    assert protocols()["toy"] == {"inc2": "2 tasks of 2 classes", "b2-1": "2 base classes, then 2 tasks of 1"}
    assert resolve_protocol("toy") == "inc2" and resolve({"benchmark": "toy"}).protocol == "inc2"
    assert resolve({"benchmark": "toy", "protocol": "b2-1", "method": "dual"}).protocol == "b2-1"

    m = load_manifest("toy")
    with pytest.raises(ZolibError, match="checksum mismatch"):  # the md5 gates the unpack
        real.load_benchmark("toy", manifest=replace(m, md5="0" * 32), progress=False)
    assert not (data_root / "toy" / "toy").exists()
    b = real.load_benchmark("toy", image_size=16, progress=False)
    assert b.info["data"]["archive_md5"] == m.md5 == md5(toy_benchmark.read_bytes())
    assert b.name == "toy" and b.class_names == TOY_NAMES
    assert b.scenario.name == "toy/inc2" and b.scenario.tasks == ((2, 0), (3, 1))
    assert [b.class_names[c] for c in b.scenario.class_order] == ["cat", "ant", "dog", "bee"]
    assert b.train_targets.tolist() == [0, 0, 1, 1, 2, 2, 3, 3] and b.test_targets.tolist() == [0, 1, 2, 3]
    x, y = b.test[2]
    assert x.shape == (3, 16, 16) and y == 2
    base = real.load_benchmark("toy", image_size=16, protocol="b2-1", download=False)
    assert base.scenario.tasks == ((2, 0), (3,), (1,))


# ----------------------------------------------------------------------------- transforms and dispatch

def test_transforms_shapes_and_determinism():
    img = Image.new("RGB", (40, 30), (255, 0, 0))
    ev = clip_eval_transform(24)(img)
    assert ev.shape == (3, 24, 24) and torch.equal(ev, clip_eval_transform(24)(img))
    assert clip_train_transform(24)(img).shape == (3, 24, 24)
    crop = clip_train_transform(24).transforms[1]
    assert crop.scale == (0.9, 1.0) and crop.interpolation.value == "bicubic"


def test_load_benchmark_dispatch(fake_cifar):
    b = real.load_benchmark("cifar100", image_size=32, manifest=fake_cifar, protocol="20-steps", progress=False)
    assert b.scenario.num_tasks == 20
    with pytest.raises(ZolibError, match="valid values"):
        real.load_benchmark("mnist")


# ----------------------------------------------------------------------------- provenance of a real-data run

def test_a_real_data_run_records_the_weights_file_and_the_data_checksums_it_used(tmp_path, monkeypatch):
    """CIFAR-100's format through the real loader (one training and one test image per task), the CLIP weights
    from a local file through ZOLIB_CLIP_WEIGHTS: the result names that file and its SHA-256, and the
    archive's and pickles' verified md5, not just "openai". (The tiny CLIP's architecture stands in for
    ViT-B/16's to keep the test fast: the weights are read and recorded by the same code.)"""
    from zolib.cl import config
    from zolib.cl.config import ExperimentConfig
    from zolib.cl.profiles import profile_config
    from zolib.cl.trainer import run_experiment
    from zolib.models.clip import random_clip
    m = load_manifest("cifar100")
    order = list(m.class_order)
    train, test = [order[t * 10] for t in range(10)], [order[t * 10 + 1] for t in range(10)]
    files = {"train": cifar_pickle(train), "test": cifar_pickle(test),
             "meta": pickle.dumps({"fine_label_names": list(m.class_names), "coarse_label_names": []})}
    archive = write_tar(tmp_path / "cifar-100-python.tar.gz", {f"cifar-100-python/{k}": v for k, v in files.items()})
    fake = with_archive(m, archive, inner_md5={k: md5(v) for k, v in files.items()})
    monkeypatch.setattr(real, "load_manifest", lambda name: fake)
    monkeypatch.setattr(config, "world_model", lambda benchmark: "zolib-tiny")
    monkeypatch.setattr(ExperimentConfig, "model_name", property(lambda self: "zolib-tiny"))
    monkeypatch.setattr(ExperimentConfig, "pretrained", property(lambda self: "openai"))
    weights = tmp_path / "clip.pt"
    torch.save(random_clip("zolib-tiny").state_dict(), weights)
    monkeypatch.setenv("ZOLIB_CLIP_WEIGHTS", str(weights))
    cfg = profile_config("paper", benchmark="cifar100", method="frozen", batch_size=4, num_workers=0)
    result = run_experiment(cfg, tmp_path / "run.json", progress=False)
    world = result["world"]
    assert world["weights"]["source"] == "local file" and world["weights"]["path"] == str(weights.resolve())
    assert world["weights"]["sha256"] == world["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert world["data"]["archive_md5"] == fake.md5 and world["data"]["inner_md5"] == fake.inner_md5
    assert world["dataset"] == "cifar100" and "md5" in world["data"]["checked"]
