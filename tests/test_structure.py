"""The shape of the package: layers point one way, no module reads another's private attributes, the
run store hashes what decides its numbers, and each per-model fact lives in one spec."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from zolib.runtime import REPO_ROOT

PACKAGE = REPO_ROOT / "zolib"
SOURCES = sorted(PACKAGE.rglob("*.py")) + sorted((REPO_ROOT / "benchmarks").glob("*.py"))
LAYERS = [  # lowest first; a module may import its own layer and the ones below, never one above
    ("__init__", "errors", "rng", "runtime", "paper", "models", "data"),
    ("optim",),
    ("cl",),
    ("analysis", "claims", "plotting"),
    ("studies",),
    ("nb", "widgets", "report", "notebooks", "cli", "__main__"),
]


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO_ROOT).with_suffix("")
    return ".".join(p for p in rel.parts if p != "__init__") if rel.parts[0] == "zolib" else rel.as_posix()


def zolib_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(imported zolib module, names)`` of every import in ``path`` (lazy ones inside functions too)."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("zolib")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            if base.startswith("zolib"):
                for a in node.names:  # ``from zolib import paper`` imports the module zolib.paper
                    sub = PACKAGE.joinpath(*f"{base}.{a.name}".split(".")[1:])
                    is_module = sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()
                    out.append((f"{base}.{a.name}", []) if is_module else (base, [a.name]))
    return out


def private_names() -> set[str]:
    """Private (``_x``, not dunder) names zolib defines: functions, classes, attributes set on ``self``."""
    names = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


@pytest.mark.parametrize("path", [p for p in SOURCES if p.is_relative_to(PACKAGE)],
                         ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_layers_point_one_way(path):
    mine = layer_of(module_name(path))
    for module, _ in zolib_imports(path):
        assert layer_of(module) <= mine, f"{module_name(path)} (layer {mine}) imports {module} (layer {layer_of(module)})"


def test_the_cl_layer_names_no_notebook_and_no_display_label():
    """A notebook's stem, grids and labels live in its object in zolib/studies/: no string of zolib/cl (docstrings
    aside) names a notebook or one of notebook 01's rule families that is not the optimizer's own rule name."""
    from zolib import studies
    from zolib.optim.zo import RULES
    from zolib.studies.naive_full_zo import FAMILIES
    names = [*studies.NOTEBOOKS, *(set(FAMILIES) - set(RULES))]
    found = []
    for path in sorted((PACKAGE / "cl").rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
        found += [f"{path.relative_to(REPO_ROOT)}:{n.lineno} {n.value!r}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
                  and any(name in n.value for name in names)]
    assert not found, "\n".join(found)


def test_no_module_reads_another_modules_private_attributes():
    """Checked on the source: an attribute ``x._name`` of a zolib-defined private name where ``x`` is not
    ``self`` or ``cls``, ``getattr(x, "_name")``, and ``from zolib... import _name``, anywhere in zolib or
    benchmarks/."""
    private = private_names()
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr in private and isinstance(node.ctx, ast.Load)
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} reads .{node.attr}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
                    and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value in private):
                found.append(f"{path.relative_to(REPO_ROOT)}:{node.lineno} reads {node.args[1].value!r} by name")
        for module, names in zolib_imports(path):
            found += [f"{path.relative_to(REPO_ROOT)} imports {module}.{n}" for n in names if n in private]
    assert not found, "\n".join(found)


def test_the_store_hashes_every_module_the_harness_imports_and_nothing_that_only_reads_results():
    from zolib.cl.store import code_hash, code_sources
    hashed = {p.relative_to(REPO_ROOT).as_posix() for p in code_sources()}
    assert {"zolib/cl/trainer.py", "zolib/cl/diagnostics.py", "zolib/cl/calibration.py", "zolib/cl/fewshot.py",
            "zolib/optim/hybrid.py", "zolib/optim/sharpzo.py", "zolib/data/real.py", "zolib/models/specs.py",
            "zolib/data/synthetic.py", "data_manifests/cifar100.json", "zolib/models/weights/zolib-tiny.json"} <= hashed
    assert not {"zolib/nb.py", "zolib/notebooks.py", "zolib/plotting.py", "zolib/claims.py", "zolib/cl/profiles.py",
                "zolib/cl/sweep.py", "zolib/analysis/footprint.py"} & hashed, "reading results must not re-key them"
    assert len(code_hash()) == 12


def test_each_per_model_fact_comes_from_its_spec():
    from zolib.cl.config import resolve
    from zolib.cl.randomstep import measurement_config, random_step
    from zolib.models.specs import model_spec
    for name, benchmark in (("zolib-tiny", "synthetic"), ("ViT-B-16", "cifar100")):
        spec = model_spec(name)
        cfg = resolve({"benchmark": benchmark})
        assert cfg.model_name == name and cfg.moe_bottleneck == spec.moe_bottleneck and cfg.pretrained == spec.pretrained
        assert measurement_config(name).benchmark == benchmark
    assert model_spec("ViT-B-16").widths == {"vision": 768, "text": 512} and model_spec("zolib-tiny").image_size == 32
    step = random_step(measurement_config("zolib-tiny"), batch=2)
    assert step.images.shape[-1] == 32 and step.shape.template == "a photo of a {}."


def test_benchmarks_come_from_the_manifests_with_their_protocols_and_loaders():
    from zolib.cl.config import benchmarks
    from zolib.data.manifests import MANIFEST_DIR, datasets, load_manifest
    from zolib.data.real import LOADERS
    from zolib.data.scenarios import protocols, resolve_protocol
    assert set(datasets()) == {p.stem for p in Path(MANIFEST_DIR).glob("*.json")} == set(LOADERS)
    assert benchmarks() == ("synthetic", *datasets())
    for name in datasets():
        m = load_manifest(name)
        assert set(protocols()[name]) == set(m.protocols) and resolve_protocol(name) == m.default_protocol
