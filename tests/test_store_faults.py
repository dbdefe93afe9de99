"""The run store under faults: corrupt entries are quarantined and recomputed, two sweeps share one store,
and a sweep killed with SIGKILL at any moment resumes to the same numbers."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.faults  # several smoke sweeps: `pytest -m faults` (deselected by the default run)

SWEEP = ["sweep", "--profile", "smoke", "--only", "02", "-p", "zo_lrs", "[]", "--jobs", "2"]  # 3 calibrations, 14 runs


def zolib(store: Path, *args: str, trace: Path | None = None, wait: bool = True, **kw):
    env = {**os.environ, "ZOLIB_STORE": str(store), "ZOLIB_LOCK_TTL": "60"}
    if trace:
        env["ZOLIB_STORE_TRACE"] = str(trace)
    cmd = [sys.executable, "-m", "zolib", *args]
    if not wait:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)


def numbers(store: Path) -> dict[str, dict]:
    """What a stored piece holds that must not depend on how it was computed (provenance left out)."""
    out = {}
    for kind in ("runs", "calibrations"):
        for path in sorted((store / kind).glob("*.json")):
            r = json.loads(path.read_text())
            keep = ("last", "avg", "forgetting", "acc_matrix", "pooled", "losses", "picks", "movement", "zo_effect") \
                if kind == "runs" else ("zo_lr", "qualified", "table", "control")
            out[f"{kind}/{path.name}"] = {k: r.get(k) for k in keep}
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The pieces of one uninterrupted sweep."""
    store = tmp_path_factory.mktemp("reference") / "store"
    r = zolib(store, *SWEEP)
    assert r.returncode == 0, r.stderr[-2000:]
    return store


def test_a_corrupt_entry_is_quarantined_named_in_one_line_and_computed_again(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference, store)
    runs, cals = sorted((store / "runs").glob("*.json")), sorted((store / "calibrations").glob("*.json"))
    truncated, empty, garbage = runs[0], runs[1], cals[0]
    truncated.write_text(truncated.read_text()[:200])
    empty.write_text("")
    garbage.write_bytes(b"\x89PNG not a calibration \xff\xfe")
    untouched = {p: p.stat().st_mtime_ns for p in [*runs[2:], *cals[1:]]}
    r = zolib(store, *SWEEP)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    said = [l for l in r.stderr.splitlines() if l.startswith("zolib: store:")]
    print("\n".join(said))  # what a user sees (pytest -m faults -rA shows it)
    assert len(said) == 3 and all("quarantine" in l and "computed again" in l for l in said)
    assert {Path(l.split()[2]) for l in said} == {truncated, empty, garbage}, "each line names its file"
    assert sorted(p.name.split(".json")[0] for p in (store / "quarantine").rglob("*.json.*")) == \
        sorted(p.stem for p in (truncated, empty, garbage)), "kept for inspection"
    assert numbers(store) == numbers(reference), "recomputed to the same numbers"
    assert all(p.stat().st_mtime_ns == t for p, t in untouched.items()), "nothing else in the store was touched"
    check = zolib(store, "store", "verify")
    assert check.returncode == 0 and " 0 bad" in check.stdout


def test_store_verify_lists_bad_entries_and_repair_quarantines_them(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference, store)
    bad = sorted((store / "runs").glob("*.json"))[0]
    bad.write_text("{not json")
    r = zolib(store, "store", "verify")
    print(r.stdout)
    assert r.returncode == 1 and f"BAD {bad}" in r.stdout and "1 bad" in r.stdout
    r = zolib(store, "store", "verify", "--repair")
    print(r.stdout)
    assert r.returncode == 0 and not bad.exists() and list((store / "quarantine" / "runs").glob(f"{bad.name}.*"))
    assert " 0 bad" in zolib(store, "store", "verify").stdout


def test_two_sweeps_on_one_store_both_finish_and_never_compute_a_piece_twice(reference, tmp_path):
    store, trace = tmp_path / "store", tmp_path / "trace.jsonl"
    first, second = (zolib(store, *SWEEP, trace=trace, wait=False) for _ in range(2))
    for p in (first, second):
        _, err = p.communicate(timeout=900)
        assert p.returncode == 0, err[-2000:]
    computed = [json.loads(line) for line in trace.read_text().splitlines()]
    pieces = [c["piece"] for c in computed]
    print(f"{len(pieces)} pieces computed, {len(set(pieces))} distinct, by {len({c['pid'] for c in computed})} processes")
    assert len(pieces) == len(set(pieces)) == len(numbers(reference)), "every piece computed once, by one sweep"
    assert len({c["pid"] for c in computed}) > 2, "both sweeps' workers computed pieces"
    assert numbers(store) == numbers(reference)
    assert " 0 bad" in zolib(store, "store", "verify").stdout


def start_and_kill(store: Path, folder: str) -> None:
    """Start the sweep in its own process group and SIGKILL the whole group (the sweep and every worker,
    mid-piece) as soon as something appears in ``folder`` of the store (a result or a checkpoint)."""
    p = zolib(store, *SWEEP, wait=False, start_new_session=True)
    seen = lambda: list((store / folder).glob("*.json")) + list((store / folder).glob("*.ckpt"))  # noqa: E731
    before, deadline = len(seen()), time.time() + 600
    while time.time() < deadline and len(seen()) <= before and p.poll() is None:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def test_a_sweep_killed_at_any_moment_resumes_to_the_same_numbers(reference, tmp_path):
    store = tmp_path / "store"
    start_and_kill(store, "calibrations")  # killed while calibrating
    start_and_kill(store, "runs")  # killed again while running (a run's checkpoint, or its result, appeared)
    assert numbers(store) != numbers(reference), "killed before the end"
    print(f"after two kills: {len(numbers(store))} of {len(numbers(reference))} pieces stored, "
          f"{len(list((store / 'runs').glob('*.ckpt')))} run checkpoints")
    r = zolib(store, *SWEEP)
    print("\n".join(l for l in (r.stdout + r.stderr).replace("\r", "\n").splitlines()
                    if l.startswith(("plan", "sweep: ")) and "%" not in l))
    assert r.returncode == 0, r.stderr[-2000:]
    assert numbers(store) == numbers(reference), "the same numbers, acc_matrix and losses as an uninterrupted sweep"
    assert " 0 bad" in zolib(store, "store", "verify").stdout
