"""The class-incremental harness: results, resume, NaN handling, what a run records about its ZO units."""
import json

import pytest

from zolib.cl.profiles import get_profile, profile_config
from zolib.cl.store import Store
from zolib.cl.evaluation import accuracy
from zolib.cl.factory import warmup_cosine
from zolib.cl.trainer import run_experiment
from zolib.errors import NanLossError
from zolib.runtime import load_checkpoint

SMALL = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=3,
             batch_size=16)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_warmup_then_cosine_to_zero():
    f = warmup_cosine(30, 130)
    assert f(0) == pytest.approx(1 / 30) and f(29) == pytest.approx(1.0)
    assert f(80) == pytest.approx(0.5) and f(130) == pytest.approx(0.0, abs=1e-12)


def test_accuracies_come_from_integer_counts():
    assert accuracy(16, 25) == 64.0 and repr(accuracy(16, 25)) == "64.0"
    assert accuracy(1, 3) == 100 / 3


def test_result_json_has_the_promised_fields(tmp_path):
    out = tmp_path / "r.json"
    result = run_experiment(profile_config("smoke", method="hop-odd-vision", zo_lr=0.05, **SMALL), out, progress=False)
    saved = json.loads(out.read_text())
    for key in ("last", "avg", "forgetting", "bwt", "zero_shot", "acc_matrix", "picks", "movement", "zo_effect",
                "world", "config", "versions", "git_commit"):
        assert key in saved
    assert [len(row) for row in saved["acc_matrix"]] == [1, 2, 3, 4, 5]
    assert all(0 <= a <= 100 for row in saved["acc_matrix"] for a in row)
    assert saved["last"] == pytest.approx(saved["pooled"][-1]) and saved == json.loads(json.dumps(result))
    assert set(saved["movement"][-1]["vision"]) == {"zo", "fo"} and set(saved["movement"][-1]["text"]) == {"fo"}
    assert all(sum(task.values()) == SMALL["max_steps_per_task"] for task in saved["picks"]), "one pick per step"
    assert 0 <= saved["zo_effect"]["flip_rate"] <= 1 and saved["zo_effect"]["test_images"] == 400
    assert len(saved["world"]["weights_sha256"]) == 64 and len(saved["world"]["data_sha256"]) == 64
    assert not (tmp_path / "r.json.ckpt").exists()


def test_interrupted_run_resumes_with_the_same_numbers(tmp_path, interrupt_at_task):
    cfg = profile_config("smoke", method="language", **SMALL)
    reference = run_experiment(cfg, tmp_path / "ref.json", progress=False)
    interrupt_at_task(2)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, tmp_path / "run.json", progress=False)
    saved, adapters = load_checkpoint(tmp_path / "run.json.ckpt")
    assert len(saved["acc_matrix"]) == 2 and adapters, "the state as JSON, the adapters as tensors"
    interrupt_at_task(None)
    resumed = run_experiment(cfg, tmp_path / "run.json", progress=False)
    for key in ("acc_matrix", "pooled", "losses", "zero_shot", "movement", "picks", "zo_effect"):
        assert resumed[key] == reference[key]


def test_nan_loss_stops_with_a_clear_message_and_keeps_finished_tasks(tmp_path, nan_logits_after):
    cfg = profile_config("smoke", **SMALL)
    nan_logits_after(SMALL["max_steps_per_task"])  # NaN from the first step of task 2
    with pytest.raises(NanLossError, match="task 2") as err:
        run_experiment(cfg, tmp_path / "nan.json", progress=False)
    assert "\n" not in str(err.value)
    assert len(load_checkpoint(tmp_path / "nan.json.ckpt")[0]["acc_matrix"]) == 1


def test_the_frozen_run_trains_nothing_and_records_its_loss_on_the_same_batches(tmp_path):
    frozen = run_experiment(profile_config("smoke", method="frozen", **SMALL), tmp_path / "f.json", progress=False)
    fo = run_experiment(profile_config("smoke", method="fo", **SMALL), tmp_path / "fo.json", progress=False)
    assert frozen["movement"][-1] == {"vision": {"frozen": 0.0}, "text": {"frozen": 0.0}}
    assert frozen["zo_effect"] is None and frozen["pooled"][-1] == frozen["zero_shot"], "Last of a frozen model"
    # the same first batch, the same unperturbed loss (up to the fused attention kernels: a step without FO
    # units runs every forward in inference mode on PyTorch's fast path; FO's autograd forward cannot)
    assert frozen["losses"][0][0] == pytest.approx(fo["losses"][0][0], rel=1e-5)
    assert frozen["pooled"][0] > frozen["pooled"][-1], "the label space grows: a frozen model 'forgets' too"


def test_zo_effect_separates_acting_from_inert_zo_units(tmp_path):
    literal = run_experiment(profile_config("smoke", method="dual", **SMALL), tmp_path / "lit.json", progress=False)
    big = run_experiment(profile_config("smoke", method="dual", zo_lr=0.2, **SMALL),
                         tmp_path / "big.json", progress=False)
    assert literal["zo_effect"]["flip_rate"] < 0.01 < big["zo_effect"]["flip_rate"]
    assert literal["movement"][-1]["vision"]["zo"] < big["movement"][-1]["vision"]["zo"]
    assert big["zo_effect"]["last_reverted"] == big["zero_shot"], "Dual with its ZO units put back is the frozen model"


def test_profiles_fix_the_workshop_warmup_and_tinyimagenet_batch():
    workshop = get_profile("workshop").experiment()
    assert workshop.warmup_fraction == 0.75 and workshop.train_fraction == 0.2
    assert get_profile("paper").experiment("tinyimagenet").batch_size == 64
    assert get_profile("paper").experiment("cifar100").batch_size == 128
    assert all(len(get_profile(p).judged_seeds) == 5 for p in ("cpu", "workshop", "paper"))


def test_workshop_warmup_reaches_the_peak_learning_rate():
    """8 steps per task (20% of CIFAR-100's 5000 images at batch 128): the schedule reaches lr's peak."""
    cfg = get_profile("workshop").experiment()
    warmup = round(cfg.warmup_fraction * 8)
    f = warmup_cosine(warmup, 8)
    assert max(f(s) for s in range(8)) == 1.0 and sum(f(s) for s in range(8)) > 4


@pytest.mark.slow
def test_synthetic_world_is_a_fair_stand_in_for_the_real_setting(tmp_path):
    """The cpu profile's world: zero-shot >= 3 x chance, yet >= 15 points below joint FO; sequential FO forgets."""
    from zolib.cl.world import world_check
    w = world_check("cpu", store=Store(tmp_path))
    assert w["zero_shot"] >= 3 * w["chance"]
    assert w["joint_fo"] >= w["zero_shot"] + 15
    assert w["sequential_fo_forgetting"] > 0 and w["sequential_fo_last"] > w["zero_shot"] + 10
