"""What notebooks call: cached experiments, diverged runs recorded as results, summaries."""
import json
import math

import pytest

from zolib import nb
from zolib.cl.config import profile_config
from zolib.errors import NanLossError

SMALL = dict(synthetic_tasks=5, synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=2,
             batch_size=16)


def test_a_diverged_run_is_recorded_once_and_served_from_the_cache(tmp_path, monkeypatch, nan_logits_after):
    monkeypatch.setattr(nb, "_result_path", lambda cfg: tmp_path / f"{cfg.key()}.json")
    cfg = profile_config("smoke", **SMALL)
    calls = nan_logits_after(SMALL["max_steps_per_task"])  # NaN from the first step of task 2
    with pytest.raises(NanLossError, match="task 2"):
        nb.cached_experiment(cfg, progress=False)
    result = nb.cached_experiment(cfg, progress=False, allow_divergence=True)  # resumes after task 1, diverges
    assert "task 2" in result["diverged"] and result["last"] is None
    assert len(result["pooled"]) == 1 and len(result["losses"]) == 1 and result["zero_shot"] > 0
    on_disk = nb.cached_result(cfg)
    assert on_disk == json.loads(json.dumps(result)) and not list(tmp_path.rglob("*.ckpt"))
    calls["n"] = 0
    assert nb.cached_experiment(cfg, progress=False, allow_divergence=True) == on_disk and calls["n"] == 0
    with pytest.raises(NanLossError, match="task 2"):
        nb.cached_experiment(cfg, progress=False)

    summary = nb.Session.summary({"synthetic": {"diverged": [on_disk], "fine": [dict(on_disk, last=40.0, avg=45.0,
                                                                                       forgetting=3.0, diverged=None)]}})
    row = summary.set_index("label")
    assert row.loc["diverged", "diverged"] == 1 and math.isnan(row.loc["diverged", "last"])
    assert row.loc["fine", "diverged"] == 0 and row.loc["fine", "last"] == 40.0
