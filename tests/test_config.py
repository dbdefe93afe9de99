"""The resolved experiment config: one key per computation, ZO settings under one name, CLI flags from fields."""
import warnings

import pytest

from zolib.cl.config import FIELDS, ZOWarning, from_dict, resolve
from zolib.cl.profiles import profile_config
from zolib.errors import ZolibError


def test_the_same_computation_has_one_key_whatever_it_is_called():
    dual = resolve({"method": "dual"})
    assert dual.key() == resolve({"method": "custom:vision=111111111111,text=111111111111", "rule": "conservative",
                                  "zo_lr": 1e-3}).key()
    assert resolve({"method": "frozen"}).key() == resolve({"method": "dual", "zo_lr": 0}).key()
    assert resolve({"method": "fo"}).key() == resolve({"method": "fo", "rule": "aggressive", "q": 4}).key(), \
        "ZO settings of a run without ZO units cannot change its numbers"
    assert resolve({"method": "fo", "adapter": "moe", "lora_rank": 4}).key() == resolve({"method": "fo"}).key()
    assert dual.key() != resolve({"method": "dual", "rule": "aggressive"}).key()
    assert resolve({"method": "dual", "device": "cpu"}).key() == dual.key(), "where it runs is not what it computes"


def test_nothing_is_left_open_and_zo_settings_keep_their_names():
    cfg = profile_config("smoke", method="mozo")
    assert cfg.zo.zo_lr == cfg.lr == 1e-3 and cfg.protocol == "5-steps" and cfg.moe_bottleneck == 16
    assert (cfg.zo.rule, cfg.zo.sign, cfg.zo.q, cfg.zo.eps_vision, cfg.zo.eps_text) == \
        ("conservative", "elementwise", 2, 5e-4, 1e-3)
    assert cfg.zo_mask == "vision=101010101010,text=101010101010" and cfg.has_zo
    assert profile_config("smoke", method="mozo", q=3).zo.q == 3, "an explicit setting wins over the method's"
    assert profile_config("paper", benchmark="cifar100").moe_bottleneck == 64
    assert from_dict(cfg.as_dict()) == cfg and from_dict(cfg.replace(zo_lr=0.02).as_dict()).zo.zo_lr == 0.02
    assert {"zo_lr", "rule", "sign", "q", "eps_vision", "method", "lr", "fo_train_mode"} <= set(FIELDS)


@pytest.mark.parametrize("values, message", [
    ({"zo_rule": "aggressive"}, "unknown experiment parameter"), ({"benchmark": "mnist"}, "benchmark"),
    ({"method": "half-zo"}, "hop-odd-vision"), ({"rule": "wild"}, "ZO rule"), ({"zo_lr": -1.0}, "zo_lr"),
    ({"protocol": "7-steps"}, "protocol"), ({"train_fraction": 2.0}, "train_fraction"),
])
def test_bad_values_give_one_line_errors(values, message):
    with pytest.raises(ZolibError, match=message) as err:
        resolve(values)
    assert "\n" not in str(err.value)


def test_a_degenerate_zo_setting_warns_once_in_one_line():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve({"method": "dual", "sign": "elementwise"})
        resolve({"method": "dual", "sign": "elementwise", "q": 2})
        resolve({"method": "dual", "sign": "projected", "rule": "aggressive"})
        resolve({"method": "fo", "sign": "elementwise"})  # no ZO units: nothing to warn about
    assert len(caught) == 1 and issubclass(caught[0].category, ZOWarning)
    assert "ignores its estimate" in str(caught[0].message) and "\n" not in str(caught[0].message)


def test_cli_flags_are_derived_from_the_config_fields(capsys):
    from zolib.cli import main
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    help_text = capsys.readouterr().out
    for flag in ("--zo-lr", "--rule", "--sign", "--q", "--eps-vision", "--fo-train-mode", "--warmup-fraction",
                 "--max-steps-per-task", "--adam-betas"):
        assert flag in help_text
    assert "frozen" in help_text and "custom:<mask>" in help_text
