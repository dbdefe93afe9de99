"""Shared fixtures."""
import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread: small ops are much faster on a busy 2-core CPU than with two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupt_at_task(monkeypatch):
    """``interrupt_at_task(k)``: training raises KeyboardInterrupt as task ``k`` (0-based) starts, as a killed run
    would stop (``zolib.cl.trainer.train_task`` patched); ``interrupt_at_task(None)`` trains normally again."""
    from zolib.cl import trainer
    real_train = trainer.train_task

    def install(k: int | None) -> None:
        def train(cfg, model, bench, task, *args, **kwargs):
            if task == k:
                raise KeyboardInterrupt
            return real_train(cfg, model, bench, task, *args, **kwargs)
        monkeypatch.setattr(trainer, "train_task", train)
    return install


@pytest.fixture
def nan_logits_after(monkeypatch):
    """``nan_logits_after(k)``: every training forward after the first ``k`` returns NaN logits
    (``zolib.cl.evaluation.clip_logits`` patched); returns the call counter ``{"n": calls}``."""
    from zolib.cl import evaluation
    real_logits = evaluation.clip_logits
    calls = {"n": 0}

    def install(k: int) -> dict:
        def logits(model, images, text):
            calls["n"] += 1
            out = real_logits(model, images, text)
            return out * float("nan") if calls["n"] > k else out
        monkeypatch.setattr(evaluation, "clip_logits", logits)
        return calls
    return install


@pytest.fixture(scope="session")
def smoke_swept():
    """``zolib sweep --profile smoke``, once per test session: every run the notebooks need, in the default
    store (``$ZOLIB_STORE``). The notebook and browser tests then only render."""
    import subprocess
    import sys
    sweep = subprocess.run([sys.executable, "-m", "zolib", "sweep", "--profile", "smoke"], capture_output=True,
                           text=True, timeout=1800)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    return sweep.stdout


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the marks into the node ids
def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (``-n``, ``--dist loadgroup``): one group per test file, so a file's module fixtures run
    once, except that the notebook and browser tests share one group (they render into the same figures/
    folder and share :func:`smoke_swept`)."""
    shared = {"test_notebooks", "test_browser"}
    for item in items:
        module = item.path.stem
        item.add_marker(pytest.mark.xdist_group("smoke" if module in shared else module))


def pytest_configure(config):
    """xdist 3.8's ``--dist loadgroup`` marks each test's group in its node id, which pytest 9.2 no longer lets it
    change (pytest-xdist#1386): the groups would be silently ignored, every module fixture built on both workers
    and CI's budget lost. Say so in one line instead."""
    from packaging.version import Version
    grouped = config.getoption("numprocesses", None) and config.getoption("dist", "no") == "loadgroup"
    if grouped and Version(pytest.__version__).release[:2] >= (9, 2):  # 9.2 and its dev builds
        raise pytest.UsageError(f"pytest {pytest.__version__} makes pytest-xdist ignore the test groups "
                                "(pytest-xdist#1386): pip install -e '.[dev]' (it pins pytest<9.2), or run with -n 0")
