"""The command line: one-line errors with exit status 2, info, dry runs."""
import json
import subprocess
import sys

import pytest


def zolib(*args):
    return subprocess.run([sys.executable, "-m", "zolib", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args, valid", [
    (["experiment", "--benchmark", "mnist"], "synthetic"),
    (["experiment", "--profile", "huge"], "smoke"),
    (["experiment", "--method", "half-zo"], "hop-odd-vision"),
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
              "--batch-size", "2", "--steps", "1", "--device", "cpu", "--quiet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert report["model"] == "ViT-B-16" and report["num_tasks"] == 10 and report["image_size"] == 224
    assert report["median_step_seconds"] > 0
