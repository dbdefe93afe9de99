"""The command line: one-line errors with exit status 2, info, dry runs."""
import json
import os
import subprocess
import sys

import pytest


def zolib(*args, env=None):
    return subprocess.run([sys.executable, "-m", "zolib", *args], capture_output=True, text=True, timeout=600,
                          env=env)


@pytest.mark.parametrize("args, valid", [
    (["experiment", "--benchmark", "mnist"], "synthetic"),
    (["experiment", "--profile", "huge"], "smoke"),
    (["experiment", "--method", "half-zo"], "hop-odd-vision"),
    (["experiment", "--rule", "wild"], "conservative"),
    (["sweep", "--profile", "huge"], "smoke"),
    (["sweep", "--executor", "cloud"], "slurm"),
    (["info", "--adapter", "prefix"], "lora"),
    (["data", "download", "mnist"], "cifar100"),
])
def test_unknown_values_exit_2_with_one_line_listing_valid_values(args, valid):
    r = zolib(*args)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and valid in r.stderr
    assert "Traceback" not in r.stderr


def test_info_counts_moe_adapters_of_vitb16_offline():
    r = zolib("info", "--model", "ViT-B-16", "--adapter", "moe", "--pretrained", "none", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["total"] == 4_027_392 and len(info["per_unit"]) == 24


def test_dry_run_of_the_paper_cifar100_configuration(tmp_path):
    out = tmp_path / "dry.json"
    r = zolib("experiment", "--benchmark", "cifar100", "--method", "fo", "--profile", "paper", "--dry-run",
              "--batch-size", "2", "--max-steps-per-task", "1", "--device", "cpu", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["model"] == "ViT-B-16" and report["num_tasks"] == 10 and report["image_size"] == 224
    assert report["median_step_seconds"] > 0


def test_sweep_shows_its_plan_without_running_anything(tmp_path):
    r = zolib("sweep", "--profile", "cpu", "--plan", "--store", str(tmp_path / "store"))
    assert r.returncode == 0, r.stderr
    assert "runs (0 stored" in r.stdout and "calibrations to run" in r.stdout
    assert not (tmp_path / "store" / "runs").exists()


def test_slurm_without_sbatch_exits_2_with_one_line(tmp_path):
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # this Python, and no Slurm
    r = zolib("sweep", "--profile", "smoke", "--only", "02", "--executor", "slurm", "--store", str(tmp_path), env=env)
    assert r.returncode == 2 and "sbatch" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_a_degenerate_zo_setting_warns_in_one_line(tmp_path):
    r = zolib("experiment", "--method", "dual", "--sign", "elementwise", "--dry-run", "--max-steps-per-task", "1",
              "--quiet", "--protocol", "joint")
    assert r.returncode == 0, r.stderr
    warned = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(warned) == 1 and warned[0].startswith("zolib: warning: dual: conservative ZO with elementwise sign")
