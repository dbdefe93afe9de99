"""The class-incremental harness: results, resume, NaN handling, determinism."""
import json

import pytest
import torch

from zolib.cl import trainer
from zolib.cl.config import profile_config
from zolib.cl.trainer import run_experiment, warmup_cosine
from zolib.errors import NanLossError

SMALL = dict(synthetic_tasks=5, synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=3,
             batch_size=16)


def test_warmup_then_cosine_to_zero():
    f = warmup_cosine(30, 130)
    assert f(0) == pytest.approx(1 / 30) and f(29) == pytest.approx(1.0)
    assert f(80) == pytest.approx(0.5) and f(130) == pytest.approx(0.0, abs=1e-12)


def test_result_json_has_the_promised_fields(tmp_path):
    out = tmp_path / "r.json"
    result = run_experiment(profile_config("smoke", **SMALL), out, progress=False)
    saved = json.loads(out.read_text())
    for key in ("last", "avg", "forgetting", "bwt", "zero_shot", "acc_matrix", "config", "versions", "git_commit"):
        assert key in saved
    assert [len(row) for row in saved["acc_matrix"]] == [1, 2, 3, 4, 5]
    assert all(0 <= a <= 100 for row in saved["acc_matrix"] for a in row)
    assert saved["last"] == pytest.approx(saved["pooled"][-1]) and saved == json.loads(json.dumps(result))
    assert not (tmp_path / "r.json.ckpt").exists()


def test_interrupted_run_resumes_with_the_same_numbers(tmp_path, monkeypatch):
    cfg = profile_config("smoke", **SMALL)
    reference = run_experiment(cfg, tmp_path / "ref.json", progress=False)

    real_train = trainer.train_task

    def interrupt_at_task_3(cfg, model, bench, task, *args, **kwargs):
        if task == 2:
            raise KeyboardInterrupt
        return real_train(cfg, model, bench, task, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_task", interrupt_at_task_3)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "run.json", progress=False)
    saved = torch.load(tmp_path / "run.json.ckpt", weights_only=False)
    assert len(saved["acc_matrix"]) == 2
    monkeypatch.setattr(trainer, "train_task", real_train)
    resumed = run_experiment(cfg, tmp_path / "run.json", progress=False)
    for key in ("acc_matrix", "pooled", "losses", "zero_shot"):
        assert resumed[key] == reference[key]


def test_nan_loss_stops_with_a_clear_message_and_keeps_finished_tasks(tmp_path, nan_logits_after):
    cfg = profile_config("smoke", **SMALL)
    nan_logits_after(SMALL["max_steps_per_task"])  # NaN from the first step of task 2
    with pytest.raises(NanLossError, match="task 2") as err:
        run_experiment(cfg, tmp_path / "nan.json", progress=False)
    assert "\n" not in str(err.value)
    assert len(torch.load(tmp_path / "nan.json.ckpt", weights_only=False)["acc_matrix"]) == 1


def test_smoke_fo_learns_and_forgets():
    """The issue's acceptance run: Avg above zero-shot, forgetting above 0."""
    from zolib.nb import cached_experiment  # the same run as the world check and notebook 00: computed once
    result = cached_experiment(profile_config("smoke", method="fo"), progress=False)
    assert result["avg"] > result["zero_shot"]
    assert result["forgetting"] > 0


def test_synthetic_world_is_a_fair_stand_in_for_the_real_setting():
    """Zero-shot >= 3 x chance, yet >= 15 points below joint FO; sequential FO forgets."""
    from zolib.cl.world import world_check
    w = world_check("smoke")
    assert w["zero_shot"] >= 3 * w["chance"]
    assert w["joint_fo"] >= w["zero_shot"] + 15
    assert w["sequential_fo_forgetting"] > 0
