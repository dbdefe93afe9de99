"""MoZO's ingredients: the degeneracy of conservative + sign with one direction, and a default where eps acts."""
import pytest

from zolib.analysis import eps_sensitivity
from zolib.cl.profiles import profile_config
from zolib.cl.trainer import run_experiment
from zolib.optim import ZOConfig

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("sign", ["elementwise", "projected"])
def test_conservative_sign_with_one_direction_cannot_see_eps(sign):
    """sign(c z) = sign(c) sign(z): the candidates theta -+ eta sign(z) do not depend on c, so after 200 steps
    eps_vision of 1e-3, 5e-4 and 1e-1 leave bit-identical parameters."""
    r = eps_sensitivity("conservative", sign, q=1, eps_visions=(1e-3, 5e-4, 1e-1), steps=200)
    assert r["identical"] and r["max_param_diff"] == 0.0
    assert ZOConfig(rule="conservative", sign=sign).degeneracy() is not None


@pytest.mark.parametrize("rule, q", [("conservative", 2), ("conservative", 3), ("aggressive", 1)])
def test_with_two_directions_or_the_aggressive_rule_eps_acts(rule, q):
    r = eps_sensitivity(rule, "elementwise", q=q, eps_visions=(1e-3, 5e-4), steps=50)
    assert not r["identical"] and r["max_param_diff"] > 0
    assert ZOConfig(rule=rule, sign="elementwise", q=q).degeneracy() is None


def test_default_mozo_eps_vision_changes_the_run(tmp_path):
    """The issue's acceptance: for the default MoZO, changing eps_vision changes the run (its losses differ)."""
    small = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=3,
                 batch_size=16, zo_lr=0.05)
    a = run_experiment(profile_config("smoke", method="mozo", **small), tmp_path / "a.json", progress=False)
    b = run_experiment(profile_config("smoke", method="mozo", eps_vision=2e-4, **small), tmp_path / "b.json",
                       progress=False)
    assert a["config"]["zo"]["q"] == 2 and a["losses"][0][0] == b["losses"][0][0], "the same start"
    assert a["losses"] != b["losses"]
