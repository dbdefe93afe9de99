"""The preflight (zolib.cl.preflight, ``zolib doctor``): what a profile needs, checked before anything is planned,
on an empty data root, an empty weights cache and tiny archives built here (never the network)."""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path

import pytest

from zolib.cl import preflight
from zolib.cli import main
from zolib.data import download as dl
from zolib.data.manifests import load_manifest


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    """No data, no weights, no GPU, no Slurm: an empty data root, home and Hugging Face cache."""
    for name in ("data", "home", "store", "bin"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("ZOLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("ZOLIB_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home" / "hf"))
    monkeypatch.delenv("ZOLIB_CLIP_WEIGHTS", raising=False)
    monkeypatch.delenv("ZOLIB_MIRROR_CIFAR100", raising=False)
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "home" / "hf" / "hub"))
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return tmp_path


def fake_cifar(tmp_path: Path, content: bytes = b"not the real CIFAR-100"):
    """A tiny archive standing in for CIFAR-100, and the CIFAR-100 manifest with its md5 and size."""
    archive = tmp_path / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        info = tarfile.TarInfo("cifar-100-python/meta")
        info.size = len(content)
        tf.addfile(info, io.BytesIO(content))
    data = archive.read_bytes()
    return archive, replace(load_manifest("cifar100"), md5=hashlib.md5(data).hexdigest(), size=len(data),
                            urls=(), mirrors=())


def doctor(capsys, *args: str) -> tuple[int, list[str]]:
    """``zolib doctor ARGS``: its exit status and its lines, the title first, without indentation."""
    code = main(["doctor", *args])
    return code, [line.strip() for line in capsys.readouterr().out.strip().splitlines()]


def test_notebooks_workshop_without_data_or_weights_exits_2_in_a_few_short_lines(offline):
    env = {k: v for k, v in os.environ.items() if k != "ZOLIB_CLIP_WEIGHTS"}
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU, even on a machine with one
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "zolib", "notebooks", "--profile", "workshop"], capture_output=True,
                       text=True, timeout=120, env=env)
    seconds = time.perf_counter() - start
    lines = (r.stdout + r.stderr).strip().splitlines()
    assert r.returncode == 2, r.stderr
    assert len(lines) <= 10, lines
    text = "\n".join(lines)
    assert "cifar-100-python.tar.gz" in text and "zolib data download cifar100" in text
    assert "ViT-B-16" in text and "ZOLIB_CLIP_WEIGHTS" in text and "CUDA" in text and "--profile cpu" in text
    assert "FAILED" not in text and "Traceback" not in text
    assert not (offline / "store" / "logs").exists(), "a piece was started"
    assert seconds < 30, f"{seconds:.0f} s: starting zolib costs ~8 s here, failing 1042 pieces 77 s"


def test_the_check_itself_takes_well_under_a_second_and_lists_each_thing_once(offline, capsys):
    start = time.perf_counter()
    assert main(["notebooks", "--profile", "workshop"]) == 2
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("zolib: error: preflight (workshop): 3 things missing")
    assert [line.split()[0] for line in err[1:4]] == ["missing"] * 3
    assert [line.split()[1] for line in err[1:4]] == ["data", "weights", "CUDA:"]
    assert "zolib doctor --profile workshop" in err[-1] and len(err) == 5


def test_doctor_smoke_and_cpu_find_nothing_missing(offline, capsys):
    for profile in ("smoke", "cpu"):
        code, out = doctor(capsys, "--profile", profile)
        assert code == 0, out
        assert out[0].endswith("nothing missing") and all(line.split()[0] == "ok" for line in out[1:])
        assert any("zolib-tiny" in line and "shipped with zolib" in line for line in out)
    assert not any((offline / "data").iterdir()), "the synthetic world fetches nothing"


def test_doctor_workshop_reports_the_same_as_the_run_and_exits_2(offline, capsys):
    code, out = doctor(capsys, "--profile", "workshop")
    assert code == 2 and len(out) <= 10
    missing = [line for line in out if line.split()[0] == "missing"]
    assert len(missing) == 3
    assert str(offline / "data" / "cifar100") in missing[0] and "zolib data import cifar100 PATH" in missing[0]
    assert str(offline / "home" / "hf" / "hub") in missing[1] and "zolib info --model ViT-B-16" in missing[1]
    assert any(line.split()[:2] == ["ok", "disk:"] and "needs about 338 MB" in line for line in out)


def test_a_correct_archive_and_weights_on_a_gpu_pass(offline, capsys, monkeypatch):
    archive, m = fake_cifar(offline)
    monkeypatch.setattr(preflight, "load_manifest", lambda name: m)
    dest = dl.archive_path(m)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(archive.read_bytes())
    weights = offline / "ViT-B-16.pt"
    weights.write_bytes(b"weights")
    monkeypatch.setenv("ZOLIB_CLIP_WEIGHTS", str(weights))
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    code, out = doctor(capsys, "--profile", "workshop")
    assert code == 0, out
    assert out[0].endswith("nothing missing")
    assert f"ok       data cifar100: {dest} (md5 verified now)" in out
    assert any(str(weights) in line and line.startswith("ok") for line in out)
    assert "ok       device: CUDA: Fake GPU" in out
    code, out = doctor(capsys, "--profile", "workshop")  # the stamp: no second hashing
    assert code == 0 and f"ok       data cifar100: {dest} (md5 verified)" in out


def test_an_archive_with_a_wrong_checksum_is_bad_and_says_what_to_do(offline, capsys, monkeypatch):
    archive, m = fake_cifar(offline)
    monkeypatch.setattr(preflight, "load_manifest", lambda name: m)
    dest = dl.archive_path(m)
    dest.parent.mkdir(parents=True)
    data = archive.read_bytes()
    dest.write_bytes(data[:20] + bytes([data[20] ^ 0xFF]) + data[21:])  # same size, one byte changed
    code, out = doctor(capsys, "--profile", "workshop")
    assert code == 2
    bad = [line for line in out if line.split()[0] == "bad"]
    assert len(bad) == 1 and "checksum mismatch" in bad[0] and f"expected md5 {m.md5}" in bad[0]
    assert "zolib data download cifar100" in bad[0] and ".corrupt" in bad[0]
    assert not dest.exists() and dest.with_name(dest.name + ".corrupt").exists()  # as loading would have done


def test_open_clips_cache_is_where_the_weights_are_looked_for(offline):
    hub = offline / "home" / "hf" / "hub" / "models--timm--vit_base_patch16_clip_224.openai"
    assert preflight.openai_weights_in_cache("ViT-B-16") is None
    (hub / "refs").mkdir(parents=True)
    (hub / "refs" / "main").write_text("abc")
    (hub / "snapshots" / "abc").mkdir(parents=True)
    (hub / "snapshots" / "abc" / "open_clip_model.safetensors").write_bytes(b"weights")
    assert preflight.openai_weights_in_cache("ViT-B-16") == hub / "snapshots" / "abc" / "open_clip_model.safetensors"
    found = preflight.weights_findings(["ViT-B-16"])
    assert found[0].status == "ok" and "open_clip's cache" in found[0].detail


def test_slurm_without_sbatch_and_without_gpus_is_reported(offline, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(offline / "bin"))
    code, out = doctor(capsys, "--profile", "smoke", "--executor", "slurm")
    assert code == 2
    assert out[0] == "zolib doctor (profile smoke, executor slurm): 1 missing or bad, see below"
    assert [line for line in out[1:] if line.split()[0] != "ok"] == [
        "missing  sbatch: not on this machine's PATH (needed by --executor slurm); run on a cluster login node, "
        "or use --executor local"]
    (offline / "bin" / "sbatch").write_text("#!/bin/sh\n")
    (offline / "bin" / "sbatch").chmod(0o755)
    findings = preflight.check_profile("paper", executor="slurm", gpus_per_node=0)
    gpu = [f for f in findings if f.what == "GPU per job"]
    assert len(gpu) == 1 and gpu[0].status == "missing" and gpu[0].fix == "add --gpus-per-node 1"
    assert not [f for f in preflight.check_profile("paper", executor="slurm", gpus_per_node=1)
                if f.what in ("GPU per job", "sbatch")]


def test_an_experiment_checks_its_own_benchmark_and_device(offline, capsys):
    assert main(["experiment", "--benchmark", "cifar100", "--protocol", "10-steps", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "2 things missing" in err[0] and "CUDA" not in "\n".join(err)  # smoke needs no GPU, even on cifar100
    assert err[-1].startswith("`zolib doctor --profile smoke --benchmark cifar100`")
    assert main(["experiment", "--device", "cuda", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing  CUDA: no GPU visible" in err and "--device cuda" in err


def test_too_little_disk_for_the_data_is_missing(offline, monkeypatch):
    import shutil
    from types import SimpleNamespace
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10**12, used=10**12 - 10**6, free=10**6))
    disk = [f for f in preflight.check_profile("workshop") if f.what == "disk"]
    assert len(disk) == 1 and disk[0].status == "missing" and "1 MB free" in disk[0].detail
    assert "about 338 MB" in disk[0].detail and "ZOLIB_DATA" in disk[0].fix
