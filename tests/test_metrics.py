"""The metrics, checked on an accuracy matrix computed by hand."""
import pytest

from zolib.cl.metrics import backward_transfer, forgetting, summarise

# acc[t][j]: accuracy on task j's classes after training task t
ACC = [[90.0], [70.0, 80.0], [60.0, 75.0, 85.0]]
POOLED = [90.0, 75.0, 73.0]


def test_last_and_avg_come_from_pooled_accuracy():
    m = summarise(ACC, POOLED)
    assert m["last"] == 73.0
    assert m["avg"] == pytest.approx((90 + 75 + 73) / 3)


def test_forgetting_is_best_earlier_accuracy_minus_final():
    # task 0: max(90, 70) - 60 = 30; task 1: 80 - 75 = 5
    assert forgetting(ACC) == pytest.approx((30 + 5) / 2)


def test_backward_transfer_is_final_minus_just_learned():
    # task 0: 60 - 90 = -30; task 1: 75 - 80 = -5
    assert backward_transfer(ACC) == pytest.approx((-30 - 5) / 2)


def test_single_task_has_no_forgetting():
    assert forgetting([[50.0]]) == 0.0 and backward_transfer([[50.0]]) == 0.0
