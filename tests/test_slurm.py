"""The sweep engine against a real Slurm: `pytest -m slurm` after `.ci/slurm-single-node up`.

Skipped (with the reason) where no Slurm answers; `.ci/run` starts one when it can install it.
"""
import shutil
import subprocess

import pytest

from zolib import studies
from zolib.cl.store import Store
from zolib.cl.sweep import SlurmOptions, run_sweep

pytestmark = pytest.mark.slurm

SMALL = dict(protocol="5-steps", synthetic_train_per_class=4, synthetic_test_per_class=2, max_steps_per_task=2,
             batch_size=16)


@pytest.fixture(scope="module")
def cluster():
    if shutil.which("sbatch") is None:
        pytest.skip("no sbatch on PATH: start a single-node Slurm with `.ci/slurm-single-node up`")
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    if not any(s in ("idle", "mixed", "mix", "allocated") for s in states):
        pytest.skip(f"Slurm answers but no node is up ({states}): run `.ci/slurm-single-node up`")


def test_a_two_run_sweep_runs_as_slurm_job_arrays_and_lands_in_the_store(tmp_path, cluster):
    store = Store(tmp_path / "store")
    study = {"FO": {"method": "fo", **SMALL}, "Dual": {"method": "dual", "rule": "aggressive", "zo_lr": "calibrated",
                                                       **SMALL}}
    reqs = studies.requests("smoke", study, seeds=(0,))
    report = run_sweep(reqs.values(), store, "slurm", slurm=SlurmOptions(cpus_per_task=1, timeout_min=10),
                       progress=False)
    assert not report.failed, report.describe()
    assert report.finished == 3  # one calibration, then two runs
    for (label, _, _), req in reqs.items():
        result = store.result(req)
        assert result is not None and 0 <= result["last"] <= 100, label
    assert store.result(reqs[("Dual", "synthetic", 0)])["config"]["zo"]["zo_lr"] in (1e-3, 1e-2, 1e-1)
    logs = list((store.root / "logs").rglob("*_log.out"))
    assert logs, "submitit's Slurm logs are kept under the store"
    again = run_sweep(reqs.values(), store, "slurm", progress=False)
    assert again.finished == 0 and again.plan.stored == 2, "a finished sweep submits nothing"
