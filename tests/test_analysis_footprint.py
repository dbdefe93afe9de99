"""The memory table of notebook 06 and the mask helpers (zolib.analysis.footprint, zolib.widgets)."""
from __future__ import annotations

import pytest
import torch

from zolib.analysis import fo_layer_sweep, memory_table, predict_mask_memory
from zolib.cl.randomstep import measurement_config, random_step
from zolib.errors import ZolibError
from zolib.optim.methods import custom, resolve_mask
from zolib.widgets import has_frontend, method_to_mask

METHODS = ["fo", "dual", "vision", "language"]


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module", params=["moe", "lora"])
def table(request):
    torch.set_num_threads(1)
    rows = memory_table("zolib-tiny", request.param, METHODS, batch=2, device="cpu")
    return {r["config"]: r for r in rows}


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return random_step(measurement_config("zolib-tiny"), batch=2)


def test_dual_saves_nothing_and_its_step_peaks_at_inference(table):
    dual = table["Dual"]
    assert dual["saved_bytes"] == dual["saved_vision_bytes"] == dual["saved_text_bytes"] == 0
    assert dual["gradient_bytes"] == dual["optimizer_state_bytes"] == 0
    # forwards only, nothing kept: an inference forward plus one perturbed copy of the adapters (zolib.optim.zo)
    assert dual["peak_bytes"] < 1.1 * (dual["inference_peak_bytes"] + dual["parameter_bytes"])
    assert dual["peak_over_fo"] < 0.2 and dual["cuda_peak_bytes"] is None  # CPU: no allocator column


def test_fo_saves_in_both_branches_and_holds_grad_plus_adamw_state(table):
    fo = table["FO"]
    assert fo["saved_vision_bytes"] > 0 and fo["saved_text_bytes"] > 0
    assert fo["saved_bytes"] >= fo["saved_vision_bytes"] + fo["saved_text_bytes"]
    assert fo["gradient_bytes"] == fo["parameter_bytes"] > 0
    # gradient + AdamW exp_avg + exp_avg_sq (+ a 4-byte step count per tensor): 3x the parameter bytes
    held = fo["gradient_bytes"] + fo["optimizer_state_bytes"]
    assert 3 * fo["parameter_bytes"] <= held < 3.01 * fo["parameter_bytes"]
    for b in ("vision", "text"):
        assert fo[f"gradient_{b}_bytes"] == fo[f"parameter_{b}_bytes"] > 0
    assert fo["peak_over_fo"] == 1.0 and fo["step_over_inference"] > 2


def test_a_zo_branch_saves_nothing_and_keeps_no_state(table):
    vision, language, fo = table["Vision"], table["Language"], table["FO"]
    assert vision["saved_vision_bytes"] == 0 and vision["saved_text_bytes"] > 0
    assert language["saved_text_bytes"] == 0 and language["saved_vision_bytes"] > 0
    assert vision["gradient_vision_bytes"] == vision["optimizer_state_vision_bytes"] == 0
    assert language["gradient_text_bytes"] == language["optimizer_state_text_bytes"] == 0
    for row in (vision, language):
        assert row["inference_peak_bytes"] < row["peak_bytes"] < fo["peak_bytes"]
        assert 0 < row["peak_over_fo"] < 1


def test_backprop_reaches_down_to_the_lowest_fo_layer(tiny):
    only = lambda k: {"vision": [l != k for l in range(12)], "text": [True] * 12}  # noqa: E731
    top, bottom = predict_mask_memory(tiny, only(11)), predict_mask_memory(tiny, only(0))
    assert 0 < top["saved_vision_bytes"] < bottom["saved_vision_bytes"] / 5
    assert top["saved_text_bytes"] == bottom["saved_text_bytes"] == 0
    assert top["lowest_fo_layer"] == {"vision": 11, "text": None}
    # every layer from the lowest FO one up keeps its activations: a mask with FO at 0 and ZO
    # everywhere above it saves as much as all-FO vision (layer-wise ZO inside a branch)
    hop = predict_mask_memory(tiny, "hop-odd-vision")
    vision_fo = predict_mask_memory(tiny, "language")
    # (all but the dropout masks of the ZO adapters, which run in eval mode: zolib.optim.hybrid)
    assert 0.95 * vision_fo["saved_vision_bytes"] < hop["saved_vision_bytes"] <= vision_fo["saved_vision_bytes"]


def test_fo_layer_sweep_decreases_layer_by_layer(tiny):
    saved = [r["saved_vision_bytes"] for r in fo_layer_sweep(tiny, "vision")]
    assert len(saved) == 12 and all(a > b > 0 for a, b in zip(saved, saved[1:]))


@pytest.mark.parametrize("method", ["fo", "dual", "vision", "language", "hop-odd-vision", "hop-even-both",
                                    "prefix6-language", "custom:vision=100000000001,text=010101010101"])
def test_a_widget_mask_round_trips_through_the_method_registry(method):
    mask = method_to_mask(method, 12)
    name = custom(mask)
    assert name.startswith("custom:vision=") and len(name) == len("custom:vision=,text=") + 24
    bits = resolve_mask(name, {"vision": 12, "text": 12})
    assert {b: [c == "1" for c in bits[b]] for b in ("vision", "text")} == mask
    assert method_to_mask(name, 12) == mask


def test_mask_names_examples_and_errors():
    assert custom({"vision": [False, True] * 6, "language": [False] * 12}) == \
        "custom:vision=010101010101,text=000000000000"
    assert method_to_mask("hop-odd-vision")["vision"] == [False, True] * 6
    with pytest.raises(ZolibError):
        custom({"audio": [True] * 12})


def test_no_frontend_outside_a_notebook_and_the_picker_reports_masks(monkeypatch):
    monkeypatch.delenv("ZOLIB_FRONTEND", raising=False)
    assert has_frontend() is False
    monkeypatch.setenv("ZOLIB_FRONTEND", "1")
    assert has_frontend() is True
    pytest.importorskip("ipywidgets")
    from zolib.widgets import mask_picker
    seen = []
    picker = mask_picker(lambda mask, method: seen.append((mask, method)), initial="hop-even-vision")
    assert seen[-1][1] == "custom:vision=101010101010,text=000000000000"
    vision_row = picker.children[1].children[1:]
    assert [b.description for b in vision_row] == [str(l) for l in range(12)]
    vision_row[1].value = True  # press layer 1 of the vision row
    assert seen[-1][1] == "custom:vision=111010101010,text=000000000000" and picker.mask == seen[-1][0]


def test_extrapolating_to_another_batch_matches_a_measured_one():
    from zolib.analysis import extrapolate_batch
    small = {r["config"]: r for r in memory_table("zolib-tiny", "moe", ["language", "vision"], batch=2)}
    large = {r["config"]: r for r in memory_table("zolib-tiny", "moe", ["language", "vision"], batch=6)}
    for config in ("Language", "Vision"):
        guess = extrapolate_batch(small[config], 6)
        assert guess["source"] == "extrapolated"
        assert guess["saved_text_bytes"] == large[config]["saved_text_bytes"]
        assert guess["saved_vision_bytes"] == pytest.approx(large[config]["saved_vision_bytes"], rel=0.05)


def test_the_dry_run_and_the_footprint_step_the_benchmarks_own_classes_and_prompt():
    """One random-weight step (zolib.cl.randomstep): the benchmark's class names, template and task split,
    read from its manifest without data, at the model's image size."""
    from zolib.cl.config import resolve
    from zolib.cl.randomstep import benchmark_shape
    from zolib.data.manifests import load_manifest
    m = load_manifest("cifar100")
    shape = benchmark_shape(resolve({"benchmark": "cifar100", "protocol": "20-steps"}))
    assert shape.template == m.template == "a bad photo of a {}." and shape.image_size == 224
    assert shape.tasks[0] == list(m.class_order[:5]) and len(shape.tasks) == 20
    assert shape.prompts([0]) == [f"a bad photo of a {m.class_names[0]}."]
    step = random_step(measurement_config("zolib-tiny"), batch=3)
    assert len(step.classes) == 10 and step.text_tokens.shape[0] == 10 and tuple(step.images.shape) == (3, 3, 32, 32)
    assert step.shape.prompts(step.classes[:1])[0].startswith("a photo of a ")


def test_every_step_peak_counts_the_optimizer_state_it_holds():
    """A steady-state step (the optimizer's second) holds its state: ZO-Adam's two moments and momentum's
    buffer are on top of plain ZO-SGD's peak, as they would be on a device."""
    from zolib.analysis.footprint import run_footprint
    from zolib.cl.profiles import profile_config
    peaks = {m: run_footprint(profile_config("smoke", method="dual", zo_optimizer=m), batch=2, repeats=1)
             for m in ("zo-sgd", "zo-sgd-momentum", "zo-adam")}
    state = {m: r["optimizer_state_bytes"] for m, r in peaks.items()}
    assert state["zo-sgd"] == 0 and state["zo-adam"] == 2 * state["zo-sgd-momentum"] > 0
    for m in ("zo-sgd-momentum", "zo-adam"):
        assert peaks[m]["peak_bytes"] >= peaks["zo-sgd"]["peak_bytes"] + state[m]
