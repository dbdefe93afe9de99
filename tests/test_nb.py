"""What notebooks call: runs of a study from the store, diverged runs, summaries with intervals; and what
adding a notebook takes (its .ipynb and its object in zolib/studies/, found without a list)."""
import json
import math
import sys

import nbformat
import pytest

from zolib import claims, nb, notebooks, studies
from zolib.analysis.runs import metric, per_seed_records, summary
from zolib.studies import peers
from zolib.errors import NanLossError, ZolibError

SMALL = dict(protocol="5-steps", synthetic_train_per_class=8, synthetic_test_per_class=4, max_steps_per_task=2,
             batch_size=16)
TOY_STUDY = '''
from zolib.studies import Notebook, Params, Study, per_budget, register


@register
class Toy(Notebook):
    stem = "99_toy"
    grids = {"smoke": {"budgets": [1]}, "cpu": {"budgets": [1, 2]}}

    def study(self, params: Params) -> Study:
        return per_budget("FO", {"method": "fo"}, params)
'''
"""A new notebook's object: FO at each budget of its ``budgets`` parameter, two budgets on the cpu profile."""


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A new notebook, as a contributor adds one: ``99_toy.ipynb`` (a parameters cell and the setup call) and its
    study module, in a folder of their own that the package's discovery and the notebook runner look in."""
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy_notebook.py").write_text(TOY_STUDY)
    book = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell('profile: str = "smoke"  # smoke | cpu\nbudgets: list = [1]  # epochs per task',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('from zolib import nb\n\nS = nb.setup("99_toy", globals())')],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(book, folder / "99_toy.ipynb")
    monkeypatch.setattr(notebooks, "NOTEBOOK_DIR", folder)
    monkeypatch.setattr(studies, "NOTEBOOKS", dict(studies.NOTEBOOKS))
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(folder)])
    studies.discover()
    yield folder / "99_toy.ipynb"
    sys.modules.pop("zolib.studies.toy_notebook")
    delattr(studies, "toy_notebook")


@pytest.fixture
def session(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOLIB_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("ZOLIB_JOBS", "1")
    monkeypatch.setattr(nb, "FIGURES", tmp_path / "figures")
    return nb.setup("99_toy", {"profile": "smoke", "budgets": [1]})


def fo_beats_frozen(by_label, fo: str, frozen: str) -> list:
    """A new claim's comparison, written as it would be in zolib/claims.py: per seed, paired."""
    return [claims.above("FO beats the frozen model (Last)", "FO above frozen", fo, metric(by_label[fo], "last"),
                         frozen, metric(by_label[frozen], "last"))]


def test_a_new_claim_is_its_comparison_and_the_runs_its_notebook_reads(session, monkeypatch, tmp_path):
    """CONTRIBUTING's row "a claim": the comparison (above) and which runs it reads (the notebook object's
    ``claims``), nothing else. On hand-made seeds the session prints it, records it in the results JSON and
    draws it on the claim map; the verdict follows the seeds (FO 20 points up in every seed agrees, and the
    same claim on the seeds swapped disagrees)."""
    from zolib import plotting
    monkeypatch.setattr(plotting, "FIGURES", tmp_path / "figures")
    up = {"FO": {0: {"last": 60.0}, 1: {"last": 62.0}, 2: {"last": 61.0}},
          "frozen": {0: {"last": 40.0}, 1: {"last": 41.5}, 2: {"last": 40.2}}}
    monkeypatch.setattr(type(session.spec), "claims", lambda self, runs, params, profile, **measured:
                        [v for by_label in runs.values() for v in fo_beats_frozen(by_label, "FO", "frozen")])
    monkeypatch.setattr(session, "runs", lambda: {"synthetic": up})
    table = session.check()
    assert list(table["verdict"]) == ["agrees"] and "3 seeds" in table["measured"][0]
    saved = json.loads(session.save().read_text())["results"]["claims"]
    assert [(c["claim"], c["verdict"]) for c in saved] == [("FO beats the frozen model (Last)", "agrees")]
    session.claim_map()
    assert (tmp_path / "figures" / "smoke" / "99_claim_map_synthetic.png").exists()
    monkeypatch.setattr(session, "runs", lambda: {"synthetic": {"FO": up["frozen"], "frozen": up["FO"]}})
    assert list(session.check()["verdict"]) == ["disagrees"]
    assert len(json.loads(session.save().read_text())["results"]["claims"]) == 1, "a rerun replaces its verdict"


def test_a_new_notebook_is_its_ipynb_and_its_study_module_found_and_planned(toy, session):
    spec = studies.notebook("99_toy")
    assert type(spec).__name__ == "Toy" and session.spec is spec, "found by discovery: no list to extend"
    assert [p.stem for p in notebooks.notebooks()] == ["99_toy"]
    assert notebooks.parameters("cpu", toy) == {"budgets": [1, 2], "profile": "cpu"}, "its grid for the profile"
    assert session.params == {"profile": "smoke", "budgets": [1]}, "the parameters cell's names, read once"
    keys = lambda reqs: sorted(r.config.key() for r in reqs)  # noqa: E731
    assert keys(notebooks.plan("smoke")) == keys(spec.requests(session.profile, session.params).values())
    planned = notebooks.plan("cpu")
    assert sorted({(r.config.epochs, r.config.seed) for r in planned}) == [(e, s) for e in (1, 2) for s in range(5)]
    with pytest.raises(ZolibError, match="budgets of 99_toy is unset"):
        nb.setup("99_toy", {"profile": "smoke"})


def test_an_unknown_notebook_stem_raises_one_line_listing_the_known_ones():
    with pytest.raises(ZolibError) as err:
        studies.notebook("98_nowhere")
    message = str(err.value)
    assert "98_nowhere" in message and "\n" not in message
    assert all(stem in message for stem in studies.NOTEBOOKS) and "07_peers" in message


def test_every_grid_is_of_a_profile():
    """A grid under a misspelt profile name would never run: the notebook would run at smoke size."""
    from zolib.cl.profiles import PROFILES
    unknown = {stem: sorted(set(spec.grids) - set(PROFILES)) for stem, spec in studies.NOTEBOOKS.items()}
    assert not any(unknown.values()), unknown


def test_a_diverged_run_is_stored_once_and_raises_unless_allowed(session, nan_logits_after, monkeypatch):
    from zolib.cl import sweep
    monkeypatch.setattr(sweep, "make_executor", lambda executor, folder, slurm=None:
                        __import__("submitit").DebugExecutor(folder))  # in-process, so the patched logits apply
    calls = nan_logits_after(SMALL["max_steps_per_task"])  # NaN from the first step of task 2
    study = {"FO": {"method": "fo", **SMALL}}
    with pytest.raises(NanLossError, match="task 2"):
        session.compare(study, seeds=(0,))
    runs = session.compare(study, seeds=(0,), allow_divergence=True)
    result = runs["synthetic"]["FO"][0]
    assert "task 2" in result["diverged"] and result["last"] is None and len(result["pooled"]) == 1
    calls["n"] = 0
    assert session.compare(study, seeds=(0,), allow_divergence=True) == runs and calls["n"] == 0, "served from the store"
    table = summary(runs, reference=None)
    assert table.diverged[0] == 1 and math.isnan(table["last"][0])


def test_compare_runs_a_study_on_the_profiles_seeds_and_summarises_with_intervals(session):
    study = {"FO": {"method": "fo", **SMALL}, "frozen": {"method": "frozen", **SMALL}}
    runs = session.compare(study)
    assert set(runs["synthetic"]["FO"]) == set(session.seeds) == {0, 1}
    table = summary(runs).set_index("label")
    fo = table.loc["FO"]
    assert fo.seeds == 2 and fo.last_lo <= fo["last"] <= fo.last_hi
    per_seed = [runs["synthetic"]["FO"][s]["last"] - runs["synthetic"]["frozen"][s]["last"] for s in (0, 1)]
    assert fo.gain_over_frozen == pytest.approx(sum(per_seed) / 2)
    session.record(runs=per_seed_records(runs))
    saved = json.loads((session.figures / "99_toy.json").read_text())
    assert saved["results"]["runs"]["synthetic/FO"]["per_seed"]["last"] == {str(s): runs["synthetic"]["FO"][s]["last"]
                                                                            for s in (0, 1)}
    assert saved["versions"]["torch"] != "not installed" and saved["git_commit"]


def test_the_gain_over_frozen_pairs_each_run_with_the_frozen_model_of_its_own_budget():
    def result(method, epochs, last):
        return {"config": {"method": method, "epochs": epochs, "max_steps_per_task": 0, "zo": {"zo_lr": None}},
                "last": last, "avg": last, "forgetting": 0.0}
    by_label = {"FO @ 1 epoch": {0: result("fo", 1, 30.0), 1: result("fo", 1, 34.0)},
                "FO @ 2 epochs": {0: result("fo", 2, 40.0), 1: result("fo", 2, 44.0)},
                "frozen @ 1 epoch": {0: result("frozen", 1, 20.0), 1: result("frozen", 1, 22.0)},
                "frozen @ 2 epochs": {0: result("frozen", 2, 21.0), 1: result("frozen", 2, 21.0)}}
    table = summary({"synthetic": by_label}).set_index("label")
    assert table.gain_over_frozen["FO @ 1 epoch"] == pytest.approx(((30 - 20) + (34 - 22)) / 2)
    assert table.gain_over_frozen["FO @ 2 epochs"] == pytest.approx(((40 - 21) + (44 - 21)) / 2)
    assert table.gain_over_frozen["frozen @ 2 epochs"] == 0
    assert math.isnan(summary({"synthetic": by_label}, reference=None).gain_over_frozen[0])
    # a few-shot frozen prompt with more seeds is never the reference (it has no Last); a budget without a
    # frozen run, or a frozen run on other seeds, gives NaN, not an error
    fewshot = {s: {"config": {"method": "frozen", "epochs": 1, "max_steps_per_task": 0}, "shots": 2, "acc": 10.0}
               for s in range(3)}
    by_label = {"few-shot frozen": fewshot, **by_label, "FO @ 3 epochs": {0: result("fo", 3, 50.0)},
                "frozen @ 4 epochs": {5: result("frozen", 4, 20.0)}, "FO @ 4 epochs": {0: result("fo", 4, 50.0)}}
    table = summary({"synthetic": by_label}).set_index("label")
    assert table.gain_over_frozen["FO @ 1 epoch"] == pytest.approx(11.0)
    assert math.isnan(table.gain_over_frozen["FO @ 3 epochs"]) and math.isnan(table.gain_over_frozen["FO @ 4 epochs"])


def test_every_notebook_study_resolves_in_every_profile():
    from zolib.cl.profiles import PROFILES
    from zolib.notebooks import notebooks, plan
    for profile in PROFILES:
        requests = plan(profile)
        assert requests and all(r.config.benchmark in PROFILES[profile].benchmarks for r in requests)
    params = {"profile": "cpu", "zo_lrs": [0.001, 0.1], "budgets": [1, 4], "q": 2,
              "families": ["ZO*", "conservative + sign"]}
    labels = studies.notebook("01_naive_full_zo").study(params)
    sign = labels["Dual conservative + sign @ zo_lr 0.1, 4 epochs"]
    assert sign["q"] == 2 and sign["epochs"] == 4 and sign["seeds"] == (0, 1), "a fixed step: the coarse map's seeds"
    calibrated = labels["Dual ZO* @ calibrated, 1 epoch"]
    assert calibrated["zo_lr"] == "calibrated" and calibrated["seeds"] == (0, 1, 2, 3, 4), "where claims are judged"
    assert labels["FO @ 4 epochs"] == {"method": "fo", "epochs": 4, "seeds": (0, 1, 2, 3, 4)}
    assert len([l for l in labels if l.startswith("Dual ZO* @")]) == 2 * 3, "2 budgets x (2 fixed steps + calibrated)"
    assert [nb.stem for nb in notebooks()][0] == "00_setup"


def test_fewshot_runs_are_planned_and_run_by_the_sweep_like_every_other_run(session):
    from zolib.cl.sweep import plan
    study = {label: {**over, "fewshot": (2, 30)} for label, over in
             studies.notebook("07_peers").fewshot({"prompt_dim": 4, "fewshot_shots": 2, "fewshot_queries": 30,
                                                   "fewshot_stage1": 1}).items()
             if over["method"] in ("frozen", "prompt-zo-sgd")}
    study = {k: {**v, **{f: SMALL[f] for f in ("protocol", "synthetic_train_per_class", "synthetic_test_per_class")}}
             for k, v in study.items()}
    reqs = studies.requests("smoke", study, seeds=(0,))
    assert {r.fewshot for r in reqs.values()} == {(2, 30)}
    before = plan(reqs.values(), session.store)
    assert len(before.runs) == 2 and before.stored == 0
    runs = session.compare(study, seeds=(0,))
    tuned = runs["synthetic"][peers.fewshot_label("prompt-zo-sgd")][0]
    assert 0 < tuned["queries"] <= 30 and tuned["method"] == "prompt-zo-sgd" and 0 <= tuned["accuracy"] <= 100
    frozen = runs["synthetic"][peers.fewshot_label("frozen")][0]
    assert frozen["queries"] == 0 and frozen["accuracy"] == frozen["zero_shot"]
    assert plan(reqs.values(), session.store).stored == 2, "stored few-shot runs are not run again"
    assert session.store.get(reqs[(peers.fewshot_label("frozen"), "synthetic", 0)].config) is None, \
        "a few-shot result is not a class-incremental one"
