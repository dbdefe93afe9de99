"""Class-incremental protocols: task sizes, class orders, defaults and errors."""
from __future__ import annotations

import pytest

from zolib.data.manifests import datasets, load_manifest
from zolib.data.scenarios import make_scenario, protocols, resolve_protocol, task_sizes
from zolib.errors import ZolibError

ICARL_FIRST_10 = (87, 0, 52, 58, 44, 91, 68, 97, 51, 15)


@pytest.mark.parametrize("protocol, n_tasks, size", [("10-steps", 10, 10), ("20-steps", 20, 5), ("50-steps", 50, 2)])
def test_cifar_protocols(protocol, n_tasks, size):
    s = make_scenario("cifar100", protocol)
    assert s.num_tasks == n_tasks and all(len(t) == size for t in s.tasks)
    assert s.class_order == list(load_manifest("cifar100").class_order)
    assert s.tasks[0] == ICARL_FIRST_10[:size]


def test_cifar_default_and_aliases():
    s = make_scenario("cifar100")
    assert s.name == "cifar100/10-steps" and s.tasks[0] == ICARL_FIRST_10
    assert make_scenario("cifar100", "inc10") == s
    assert make_scenario("cifar100", "inc2").num_tasks == 50


@pytest.mark.parametrize("protocol, sizes", [
    ("b100-5", [100] + [20] * 5), ("b100-10", [100] + [10] * 10), ("b100-20", [100] + [5] * 20),
    ("inc10", [10] * 20), ("inc20", [20] * 10)])
def test_tinyimagenet_protocols(protocol, sizes):
    s = make_scenario("tinyimagenet", protocol)
    assert [len(t) for t in s.tasks] == sizes
    order = list(load_manifest("tinyimagenet").class_order)
    assert s.class_order == order and list(s.tasks[0]) == order[:sizes[0]]
    assert s.seen_classes(1) == order[:sizes[0] + sizes[1]]


def test_b100_10_has_11_tasks_first_of_100():
    s = make_scenario("tinyimagenet", "b100-10")
    assert s.num_tasks == 11 and len(s.tasks[0]) == 100 and s.tasks[0][:3] == (131, 181, 22)


def test_imagenet_r_inc20():
    s = make_scenario("imagenet-r")
    assert s.name == "imagenet-r/inc20" and [len(t) for t in s.tasks] == [20] * 10
    assert sorted(s.class_order) == list(range(200))


def test_every_protocol_builds_and_manifest_orders_are_permutations():
    assert list(protocols()) == ["synthetic", *datasets()]
    for bench, names in protocols().items():
        if bench == "synthetic":  # no manifest: zolib draws it (zolib.data.synthetic)
            assert [sum(task_sizes(bench, name, 100)) for name in names] == [100] * len(names)
            continue
        n = load_manifest(bench).num_classes
        assert sorted(load_manifest(bench).class_order) == list(range(n))
        assert resolve_protocol(bench) == load_manifest(bench).default_protocol in names
        for name, description in names.items():
            assert description and "\n" not in description
            s = make_scenario(bench, name)
            assert sorted(s.class_order) == list(range(n)) and sum(task_sizes(bench, name, n)) == n


def test_custom_order():
    s = make_scenario("imagenet-r", "inc20", order=list(range(199, -1, -1)))
    assert s.tasks[0] == tuple(range(199, 179, -1))


def test_unknown_values_list_the_valid_ones():
    with pytest.raises(ZolibError) as e:
        make_scenario("mnist", None)
    assert "cifar100" in str(e.value) and "imagenet-r" in str(e.value)
    with pytest.raises(ZolibError) as e:
        resolve_protocol("tinyimagenet", "b50-5")
    assert "b100-10" in str(e.value) and "inc20" in str(e.value)
    with pytest.raises(ZolibError):
        make_scenario("imagenet-r", "10-steps")
