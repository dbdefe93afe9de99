"""The notebooks: committed clean, validated parameters, and a full smoke run whose recorded
results are asserted (only what the math guarantees or what was measured to be stable)."""
from __future__ import annotations

import json
import subprocess
import sys

import nbformat
import pytest

from zolib.notebooks import NOTEBOOK_DIR, notebooks
from zolib.plotting import FIGURES

EXPECTED = ["00_setup", "01_naive_full_zo", "02_branch_wise", "03_layer_wise", "04_gradient_variance",
            "05_mozo", "06_memory", "07_peers"]


def zolib(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zolib", *args], capture_output=True, text=True, timeout=timeout)


def test_the_seven_notebooks_exist_in_order_each_with_its_object_in_studies():
    from zolib import studies
    assert [nb.stem for nb in notebooks()] == EXPECTED == sorted(studies.NOTEBOOKS)


def committed(path):
    """The notebook as git holds it (the index: what a commit would take, after the nbstripout filter), or the
    file itself outside a git checkout. Outputs JupyterLab autosaved into the working tree do not count."""
    from zolib.runtime import REPO_ROOT
    shown = subprocess.run(["git", "show", f":{path.relative_to(REPO_ROOT).as_posix()}"], cwd=REPO_ROOT,
                           capture_output=True, text=True)
    return nbformat.reads(shown.stdout, as_version=4) if shown.returncode == 0 else nbformat.read(path, as_version=4)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_committed_without_outputs_with_one_typed_parameters_cell_read_once_by_setup(path):
    nb = committed(path)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "strip the outputs before committing"
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and code[0] is params[0]
    assert 'profile: str = "smoke"' in params[0].source
    assert "def " not in params[0].source and "import" not in params[0].source  # literals only
    from zolib.notebooks import declared
    names = [line.split(":")[0] for line in params[0].source.splitlines() if line and not line.startswith("#")]
    assert list(declared(path)) == names, "papermill could not read every parameter (a ':' or '=' in a comment?)"
    assert f'S = nb.setup("{path.stem}", globals())' in code[1].source, "setup reads the parameters cell itself"


def committed_defaults(path, tmp_path) -> dict:
    """The parameters cell's values of the notebook as git holds it (a parameter edited in JupyterLab and not
    committed does not count)."""
    from zolib.notebooks import declared
    copy = tmp_path / path.name
    nbformat.write(committed(path), copy)
    return declared(copy)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_the_parameters_cell_holds_the_smoke_profiles_values(path, tmp_path):
    """Run All in JupyterLab (no papermill) runs what `zolib sweep --profile smoke` computed: nothing is left to
    compute in the kernel. Smoke's grid (``grids`` of the notebook's object in zolib/studies/) is the cell's."""
    from zolib.notebooks import parameters
    defaults = committed_defaults(path, tmp_path)
    smoke = parameters("smoke", path)
    assert {k: defaults[k] for k in smoke} == smoke


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_the_cpu_profile_runs_the_parameters_its_committed_figures_record(path, tmp_path):
    """Since the cells hold smoke's values, a larger profile whose grid (zolib/studies/) leaves a parameter out
    silently runs it at smoke size; figures/cpu records every parameter the cpu profile ran with."""
    from zolib.notebooks import parameters
    recorded = json.loads((FIGURES / "cpu" / f"{path.stem}.json").read_text())["params"]
    runs = {**committed_defaults(path, tmp_path), **parameters("cpu", path)}
    assert runs == recorded


SETUP = "nbstripout --install && git config filter.nbstripout.extrakeys metadata.language_info"
"""The README's set-up step that installs the git filter (after ``pip install -e ".[dev]"``)."""


@pytest.mark.parametrize("stem", ["03_layer_wise", "07_peers"])
def test_a_notebook_as_jupyterlab_saves_it_cleans_back_to_the_committed_file(stem):
    """Exploring in JupyterLab autosaves outputs, execution counts, widget state and the kernel's language_info
    (with this machine's Python version) into the tracked notebooks. The git filter of the README's set-up
    (nbstripout, ``.gitattributes``) cleans such a file back to the committed bytes: ``git status`` stays clean,
    nothing of it can be committed, and the test above keeps passing."""
    from zolib.runtime import REPO_ROOT
    path = NOTEBOOK_DIR / f"{stem}.ipynb"
    rel = path.relative_to(REPO_ROOT).as_posix()
    attrs = subprocess.run(["git", "check-attr", "filter", rel], cwd=REPO_ROOT, capture_output=True, text=True)
    if attrs.returncode != 0:
        pytest.skip("not a git checkout")
    assert attrs.stdout.strip().endswith("filter: nbstripout")
    clean = subprocess.run(["git", "config", "--get", "filter.nbstripout.clean"], cwd=REPO_ROOT,
                           capture_output=True, text=True).stdout.strip()
    assert clean, f"the git filter is not installed: run the README's set-up ({SETUP})"
    blob = subprocess.run(["git", "show", f":{rel}"], cwd=REPO_ROOT, capture_output=True, text=True).stdout
    nb = nbformat.reads(blob, as_version=4)
    for n, cell in enumerate(c for c in nb.cells if c.cell_type == "code"):  # what a Run All leaves behind
        cell.execution_count = n + 1
        cell.outputs = [nbformat.v4.new_output("stream", text="task 1/5\n"),
                        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
        cell.metadata["execution"] = {"iopub.status.busy": "2026-12-03T08:00:00Z"}
    nb.metadata.kernelspec.display_name = "Python 3 (ipykernel)"
    nb.metadata["language_info"] = {"name": "python", "version": "3.11.7", "mimetype": "text/x-python",
                                    "codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py"}
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}}
    cleaned = subprocess.run(clean, shell=True, cwd=REPO_ROOT, input=nbformat.writes(nb), capture_output=True,
                             text=True)
    assert cleaned.returncode == 0, cleaned.stderr
    assert cleaned.stdout == blob, f"the filter leaves a saved notebook different from the committed one: {SETUP}"


def test_the_readme_set_up_installs_the_filter_as_the_test_above_needs():
    from zolib.runtime import REPO_ROOT
    assert SETUP in (REPO_ROOT / "README.md").read_text() and SETUP in (REPO_ROOT / ".ci" / "run").read_text()


def test_unknown_profile_and_undeclared_parameter_exit_2_before_running():
    r = zolib("notebooks", "--profile", "huge")
    assert r.returncode == 2 and "smoke" in r.stderr and "Traceback" not in r.stderr
    r = zolib("notebooks", "--profile", "smoke", "--only", "01", "-p", "learning_rate", "1")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "learning_rate" in r.stderr and "Traceback" not in r.stderr
    r = zolib("notebooks", "--only", "99")
    assert r.returncode == 2 and "00" in r.stderr


@pytest.fixture(scope="module")
def smoke(smoke_swept):
    """The README's main job in two halves: ``zolib sweep`` computes every run the notebooks need
    (:func:`conftest.smoke_swept`), then ``zolib notebooks`` renders them; each notebook records how many
    pieces it computed itself."""
    r = zolib("notebooks", "--profile", "smoke")
    assert r.returncode == 0, r.stderr[-3000:]
    return {name: json.loads((FIGURES / "smoke" / f"{name}.json").read_text()) for name in EXPECTED}


@pytest.mark.slow
def test_after_the_sweep_rendering_the_notebooks_computes_nothing(smoke):
    """The notebook and the sweep read one declaration (zolib.studies): nothing is left for a kernel."""
    with_runs = [name for name in EXPECTED if "computed_in_notebook" in smoke[name]["results"]]
    assert {"01_naive_full_zo", "02_branch_wise", "03_layer_wise", "05_mozo", "07_peers"} <= set(with_runs)
    assert {name: smoke[name]["results"]["computed_in_notebook"] for name in with_runs} == dict.fromkeys(with_runs, 0)


@pytest.mark.slow
def test_every_notebook_records_results_with_provenance_and_saves_marked_figures(smoke):
    for name, record in smoke.items():
        assert record["profile"] == "smoke" and record["results"], name
        assert record["git_commit"] and record["versions"]["torch"] != "not installed"
        figures = sorted((FIGURES / "smoke").glob(f"{name[:2]}_*_synthetic.png"))
        assert figures, f"{name} saved no figure"
        for png in figures:
            assert png.with_suffix(".pdf").exists()
    unmarked = [p.name for p in (FIGURES / "smoke").glob("0[0-5]_*.png") if not p.stem.endswith("_synthetic")]
    assert not unmarked, f"figures on synthetic data must say so in their name: {unmarked}"


@pytest.mark.slow
def test_recorded_accuracies_are_percentages_per_seed_with_intervals(smoke):
    setup = smoke["00_setup"]["results"]
    assert setup["zero_shot_all_classes"] > 3 * setup["chance"]
    assert len(setup["world"]["weights_sha256"]) == 64 and setup["world"]["generator_version"] == 2
    for name in ("01_naive_full_zo", "02_branch_wise", "03_layer_wise", "05_mozo"):
        runs = smoke[name]["results"]["runs"]
        assert runs, name
        for label, r in runs.items():
            lasts = [v for v in r["per_seed"]["last"].values() if v is not None]
            assert len(r["per_seed"]["last"]) == 2 and all(0 <= v <= 100 for v in lasts), (name, label)
            if r["diverged"] == 0:
                assert r["last_lo"] <= r["last"] <= r["last_hi"], (name, label)


@pytest.mark.slow
def test_every_notebook_from_01_checks_the_papers_claims_and_says_when_it_cannot(smoke):
    from zolib.claims import VERDICTS
    for name in EXPECTED[1:]:
        checked = smoke[name]["results"].get("claims")
        assert checked and all(c["verdict"] in VERDICTS and c["measured"] for c in checked), name
        for c in checked:
            assert (c["verdict"] == "not testable here") == bool(c["reason"]), (name, c["claim"])
    zo_claims = [c for name in ("01_naive_full_zo", "02_branch_wise") for c in smoke[name]["results"]["claims"]
                 if c["regime"] == "zo_lr 0.001, 1 epoch" and c["claim"].startswith(("Dual ZO is below FO",
                                                                                      "Language-ZO beats"))]
    assert zo_claims and all(c["verdict"] == "not testable here" for c in zo_claims), \
        "at the literal step the ZO units do not act: no verdict on ZO"
    memory = [c for c in smoke["06_memory"]["results"]["claims"] if c["claim"].startswith("Dual ZO needs the least")]
    assert memory and all(c["verdict"] == "agrees" for c in memory), "no backward pass, no saved activations"
    mozo = smoke["05_mozo"]["results"]["eps_sensitivity"]
    assert [m["identical"] for m in mozo] == [True, False], "q = 1 ignores eps, q = 2 does not"


@pytest.mark.slow
def test_recorded_numbers_that_the_math_guarantees(smoke):
    ratios = [v for k, v in smoke["04_gradient_variance"]["results"].items() if k.endswith("/empirical_over_theory")]
    assert ratios and all(0.6 < r < 1.6 for r in ratios), "sampled ZO variance on a quadratic follows (d+1)|g|^2"
    memory = smoke["06_memory"]["results"]
    for adapter in ("moe",):
        assert memory[f"zolib-tiny/b4/{adapter}/dual/saved_bytes"] == {"vision": 0, "text": 0}
        assert memory[f"zolib-tiny/b4/{adapter}/vision/saved_bytes"]["vision"] == 0
        assert memory[f"zolib-tiny/b4/{adapter}/language/saved_bytes"]["text"] == 0
    assert memory["saved_falls_with_fo_layer"], "backprop reaches down to the lowest FO layer"
    from zolib.studies import FO, FROZEN, at
    runs = smoke["01_naive_full_zo"]["results"]["runs"]
    assert runs[f"synthetic/{at(FO, 1)}"]["gain_over_frozen"] > 0, "FO adapters learn"
    frozen = runs[f"synthetic/{at(FROZEN, 1)}"]
    assert frozen["zo_flips"] is None and frozen["gain_over_frozen"] == 0


def test_the_readme_lists_every_profile_as_the_profile_objects_say():
    from zolib.cl.profiles import PROFILES
    from zolib.runtime import REPO_ROOT
    readme = (REPO_ROOT / "README.md").read_text()
    for p in PROFILES.values():
        assert f"| `{p.name}` | {p.summary} |" in readme and p.budget in readme, p.name


@pytest.mark.slow
def test_the_peers_notebook_checks_peer_claims_and_cross_checks_infty(smoke):
    peers = smoke["07_peers"]["results"]
    claims = [c["claim"] for c in peers["claims"]]
    assert any(c.startswith("ZO-FC forgets less") for c in claims) and any(c.startswith("SharpZO beats") for c in claims)
    assert peers["infty_cross_check"] and {"zolib Last", "infty Last", "agree"} <= set(peers["infty_cross_check"][0])
    labels = {r["label"] for r in peers["peers_table"]}
    assert {"FO", "ZO-FC", "SharpZO", "Dual zo-sgd"} <= labels
    assert all(r["peak_bytes"] > 0 and r["forwards"] >= 1 for r in peers["peers_table"])
    assert {r["method"] for r in peers["fewshot"]} == {"frozen", "coop", "prompt-zo-sgd", "prompt-cma-es", "sharpzo"}
