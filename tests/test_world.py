"""One world on every machine: the synthetic draw's bytes, the shipped tiny CLIP's checksum, the pretraining code."""
import dataclasses
import json
import shutil

import pytest
import torch

from zolib.data.synthetic import GENERATOR_VERSION, SyntheticConfig, data_hash, draw, load_synthetic
from zolib.errors import ZolibError
from zolib.models import tiny

pytestmark = pytest.mark.usefixtures("single_thread")

# SHA-256 of two draws, computed once and committed: any machine must reproduce them byte for byte
# (zolib.data.synthetic draws with integer randomness and IEEE-exact arithmetic only).
DRAWS = {
    (7, 50.0, 1): "b8733e5da866d6911ed992b92ccd9023cf3d051c875537252d44fc640fe58fc0",
    (1001, 0.0, 3): "6b5a01c8d1f2a5596484b26f60ace1cc25a2a15ff8b8bbc850a83fa853cc1eb1",
}


@pytest.mark.parametrize("seed, hue, per_class", DRAWS)
def test_the_synthetic_draw_is_the_same_bytes_on_every_machine(seed, hue, per_class):
    assert GENERATOR_VERSION == 2, "a new generator version needs new committed hashes (and new weights)"
    images = draw(torch.arange(100).repeat_interleave(per_class), seed=seed, hue_shift=hue)
    assert images.dtype == torch.uint8 and images.shape == (100 * per_class, 3, 32, 32)
    assert data_hash(images) == DRAWS[(seed, hue, per_class)]


def test_the_shipped_weights_are_checked_before_they_are_read(tmp_path):
    record = tiny.verified_weights()
    assert record["sha256"] == tiny.file_sha256(tiny.WEIGHTS) and record["settings_key"] == tiny.settings_key(
        tiny.PretrainConfig())
    model = tiny.pretrained_tiny_clip()
    assert abs(tiny.zero_shot(model) - record["zero_shot"]) < 1e-9, "the recorded zero-shot is this file's"
    copy = tmp_path / tiny.WEIGHTS.name
    shutil.copy(tiny.WEIGHTS, copy)
    shutil.copy(tiny.WEIGHTS.with_suffix(".json"), copy.with_suffix(".json"))
    with open(copy, "r+b") as f:  # one flipped byte
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 1]))
    with pytest.raises(ZolibError, match="SHA-256") as err:
        tiny.pretrained_tiny_clip(path=copy)
    assert "\n" not in str(err.value) and "zolib world pretrain" in str(err.value)
    copy.unlink()
    with pytest.raises(ZolibError, match="missing"):
        tiny.pretrained_tiny_clip(path=copy)


def test_pretraining_runs_and_its_file_round_trips(tmp_path):
    """The code behind `zolib world pretrain`, on a few steps: it learns, and what it writes loads back."""
    cfg = dataclasses.replace(tiny.PretrainConfig(), steps=4, batch_size=32)
    model = tiny.pretrain(cfg, progress=False)
    torch.manual_seed(cfg.seed)
    fresh = tiny.random_clip(tiny.TINY)  # the same random start: pretraining must have moved it
    assert any(not torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values()))
    path = tmp_path / "tiny.safetensors"
    record = tiny.save_pretrained(model, cfg, path)
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == tiny.file_sha256(path) == record["sha256"]
    with pytest.raises(ZolibError, match="other settings"):  # 4 steps is not zolib's PretrainConfig
        tiny.pretrained_tiny_clip(path=path)


def test_a_worker_draws_the_synthetic_benchmark_once_per_config():
    cfg = SyntheticConfig(train_per_class=2, test_per_class=1, num_tasks=5, seed=3)
    assert load_synthetic(cfg) is load_synthetic(SyntheticConfig(train_per_class=2, test_per_class=1, num_tasks=5, seed=3))
    other = load_synthetic(SyntheticConfig(train_per_class=2, test_per_class=1, num_tasks=5, seed=4))
    assert other.info["data_sha256"] != load_synthetic(cfg).info["data_sha256"]
