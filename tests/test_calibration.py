"""The calibrated ZO step sees forgetting: the first 3 tasks, held-out images, a step must act and hold."""
from __future__ import annotations

import numpy as np
import pytest

from zolib.cl import calibration
from zolib.cl.calibration import Calibration, calibrate, choose, task1_rule
from zolib.cl.profiles import profile_config

pytestmark = pytest.mark.usefixtures("single_thread")


def row(step, per_task, loss1, flips, diverged=None):
    """A scored step: held-out accuracy after each of 3 tasks, task 1's held-out loss, the flip rate."""
    return {"zo_lr": step, "held_out": per_task, "held_out_loss": [loss1], "avg": float(np.mean(per_task)),
            "flip_rate": flips, "diverged": diverged}


def test_a_task_1_rule_picks_a_step_that_collapses_later_and_this_rule_does_not():
    control_avg = 40.0  # the same stream with the ZO units held fixed
    table = [row(0.001, [50.0, 40.0, 30.0], 1.10, 0.002),  # inert: the control, give or take
             row(0.01, [50.0, 41.0, 32.0], 1.05, 0.04),    # acts and holds: +1 over the control
             row(0.1, [52.0, 30.0, 10.0], 0.60, 0.60)]     # best on task 1, then forgets: Avg 30.7
    assert task1_rule(table) == 0.1, "task 1 alone cannot see what happens after it"
    pick = choose(table, control_avg, Calibration())
    assert pick == {"zo_lr": 0.01, "qualified": True, "reason": ""}
    assert [r["qualifies"] for r in table] == [False, True, False]


def test_a_step_qualifies_only_if_its_zo_units_acted_and_it_stays_within_the_margin():
    cal = Calibration(margin=1.0, acted=0.01)
    table = [row(0.001, [40.0, 40.0, 40.0], 1.0, 0.009), row(0.01, [39.2, 39.2, 39.2], 1.0, 0.05),
             row(0.1, [38.0, 38.0, 38.0], 1.0, 0.3), row(1.0, [1.0], 1.0, None, diverged="nan")]
    pick = choose(table[:3], 40.0, cal)
    assert pick["zo_lr"] == 0.01 and pick["qualified"], "0.8 below the control is within the margin"
    none = choose([table[0], table[2], table[3]], 40.0, cal)
    assert none["qualified"] is False and none["zo_lr"] == 0.001, "falls back to the largest harmless step"
    assert "acted" in none["reason"] and "0.1" in none["reason"]
    tie = choose([row(0.01, [41.0] * 3, 1.0, 0.1), row(0.02, [41.0] * 3, 1.0, 0.2)], 40.0, cal)
    assert tie["zo_lr"] == 0.01, "a tie goes to the smaller step"


def test_a_pick_at_the_edge_of_the_grid_extends_it(monkeypatch):
    scored = []

    class Stream:  # held-out Avg rises with the step up to 0.4; every step acts
        def __init__(self, cfg, cal):
            self.val, self.train = [[0]], [[1]]

        def score(self, trial, progress=False):
            step = trial.zo.zo_lr
            scored.append(step)
            avg = 30.0 if step == 0 else 30.0 + 10 * min(step, 0.4) - 20 * max(0.0, step - 0.4)
            return {"zo_lr": step, "held_out": [avg], "held_out_loss": [1.0], "avg": avg,
                    "flip_rate": 0.0 if step == 0 else 0.5, "diverged": None}
    monkeypatch.setattr(calibration, "_Stream", Stream)
    cfg = profile_config("smoke", method="dual")
    out = calibrate(cfg, Calibration(grid=(0.025, 0.05, 0.1), extend=2))
    assert out["grid"] == [0.025, 0.05, 0.1, 0.2, 0.4] and out["zo_lr"] == 0.4 and out["qualified"]
    capped = calibrate(cfg, Calibration(grid=(0.025, 0.05, 0.1), extend=1))
    assert capped["grid"][-1] == 0.2 and capped["zo_lr"] == 0.2, "at most `extend` steps beyond each edge"


def test_the_calibration_trains_the_first_tasks_and_scores_held_out_training_images(tmp_path):
    small = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=2,
                 batch_size=16)
    cfg = profile_config("smoke", method="dual", rule="aggressive", **small)
    cal = Calibration(grid=(1e-3, 0.3), tasks=2, val_fraction=0.25, extend=0)
    out = calibrate(cfg, cal)
    assert out["val_images"] == 2 * 40 and out["train_images"] == 2 * 120, "20 classes x 8 images a task, a quarter out"
    assert [r["zo_lr"] for r in out["table"]] == [1e-3, 0.3] and len(out["control"]["held_out"]) == 2
    assert out["control"]["flip_rate"] == 0.0 and all(0 <= r["flip_rate"] <= 1 for r in out["table"])
    assert out["zo_lr"] in (1e-3, 0.3) and isinstance(out["qualified"], bool)
    assert calibrate(cfg, cal)["table"] == out["table"], "deterministic"
