"""CLIP with adapters: parameter counts, identity at start, the units view."""
import pytest
import torch

from zolib.errors import ZolibError
from zolib.models import (MoEAdapter, MoEConfig, build_adapted_clip, count_parameters, load_clip, tokenizer,
                          trainable_units)
from zolib.models.clip import AdaptedBlock


@pytest.fixture(scope="module")
def vitb16_moe():
    return build_adapted_clip("ViT-B-16", "none", "moe")


def test_vitb16_moe_matches_moe_adapters_count(vitb16_moe):
    counts = count_parameters(trainable_units(vitb16_moe))
    # per vision block: router+noise 2*768*2, two experts of 768*64+64 + 64*768+768
    assert counts["per_branch"] == {"vision": 2_416_128, "text": 1_611_264}
    assert counts["total"] == 4_027_392  # "about 4.03 M" in MoE-Adapters4CL


def test_units_cover_exactly_the_trainable_parameters(vitb16_moe):
    units = trainable_units(vitb16_moe)
    assert list(units)[:2] == [("vision", 0), ("vision", 1)] and len(units) == 24
    in_units = {id(p) for ps in units.values() for p in ps.values()}
    trainable = {id(p) for p in vitb16_moe.parameters() if p.requires_grad}
    assert in_units == trainable


def test_lora_counts_and_placement():
    model = build_adapted_clip("ViT-B-16", "none", "lora")
    counts = count_parameters(trainable_units(model))
    # rank 8 on c_fc (768->3072) and c_proj (3072->768): 2 * 8 * (768 + 3072) per vision block
    assert counts["per_branch"]["vision"] == 12 * 2 * 8 * (768 + 3072)
    assert counts["per_branch"]["text"] == 12 * 2 * 8 * (512 + 2048)


@pytest.mark.parametrize("adapter", ["moe", "lora"])
def test_adapters_start_as_the_frozen_model(adapter):
    torch.manual_seed(0)
    base = load_clip("zolib-tiny", "none")
    adapted = build_adapted_clip("zolib-tiny", "none", adapter, moe=MoEConfig(bottleneck=16))
    adapted.load_state_dict(base.state_dict(), strict=False)
    images, text = torch.randn(3, 3, 32, 32), tokenizer("zolib-tiny")(["a photo of a red circle."])
    with torch.no_grad():
        torch.testing.assert_close(adapted.encode_image(images), base.encode_image(images), atol=1e-5, rtol=0)
        torch.testing.assert_close(adapted.encode_text(text), base.encode_text(text), atol=1e-5, rtol=0)


def test_moe_adapter_reads_the_post_attention_residual_in_parallel_to_the_mlp():
    model = build_adapted_clip("zolib-tiny", "none", "moe", moe=MoEConfig(bottleneck=16)).eval()
    block = model.visual.transformer.resblocks[0]
    assert isinstance(block, AdaptedBlock)
    torch.nn.init.normal_(block.adapter.experts[0].up.weight)
    x = torch.randn(2, 5, 96)
    with torch.no_grad():
        h = x + block.attention(q_x=block.ln_1(x))
        expected = h + block.mlp(block.ln_2(h)) + block.adapter(h)
        torch.testing.assert_close(block(x), expected)


def test_router_noise_only_in_train_mode():
    adapter = MoEAdapter(8, MoEConfig(bottleneck=4, dropout=0.0))
    torch.nn.init.normal_(adapter.noise)
    torch.nn.init.normal_(adapter.router)
    h = torch.randn(4, 8)
    adapter.eval()
    assert torch.equal(adapter.gates(h), adapter.gates(h))
    adapter.train()
    assert not torch.equal(adapter.gates(h), adapter.gates(h))
    assert torch.allclose(adapter.gates(h).sum(-1), torch.ones(4))


def test_openai_weights_offline_give_one_line_error(monkeypatch, tmp_path):
    import open_clip

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(open_clip, "create_model", offline)
    monkeypatch.delenv("ZOLIB_CLIP_WEIGHTS", raising=False)
    with pytest.raises(ZolibError) as err:
        load_clip("ViT-B-16", "openai")
    assert "\n" not in str(err.value) and "--weights" in str(err.value)
    with pytest.raises(ZolibError, match="does not exist"):
        load_clip("ViT-B-16", "openai", weights=tmp_path / "missing.pt")
