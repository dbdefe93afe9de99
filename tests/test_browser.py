"""The workshop in a real JupyterLab: headless Chromium (Debian's, driven by Playwright) opens notebooks,
runs all their cells in the smoke profile, saves them, and clicks every interactive control.

What is asserted, per notebook, on the notebook JupyterLab itself saved: no error output, the figures are
inline PNG images, the verdict section printed its verdicts (where the notebook has one), and no widget
where a progress bar would be (the text bar survives saving). For the interactive cells (notebooks 03 and
06): clicking a layer button changes the text inside the cell, below the grid.

Runs under the ``browser`` marker. It needs Debian's ``chromium`` (``/usr/bin/chromium``, or
``$ZOLIB_CHROMIUM``) and the ``playwright`` package (``.ci/run`` installs both); without them it skips and
says why. ``$ZOLIB_BROWSER_NOTEBOOKS`` picks the notebooks (numbers, comma-separated, or ``all``; default
03 and 06, the two interactive cells: Run All takes 4 and 10-14 s after the smoke sweep, plus about a
minute to start JupyterLab and Chromium; ``all`` adds about 2 minutes). Screenshots go to ``$ZOLIB_BROWSER_SHOTS``.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from zolib.claims import VERDICTS
from zolib.notebooks import NOTEBOOK_DIR, notebooks

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("ZOLIB_CHROMIUM", "/usr/bin/chromium")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
INTERACTIVE = ("03_layer_wise", "06_memory")  # the cells with a mask picker (zolib.widgets.explorer)


def selected() -> list[Path]:
    wanted = os.environ.get("ZOLIB_BROWSER_NOTEBOOKS", "03,06")
    return notebooks(None if wanted == "all" else wanted.split(","))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory, request):
    """JupyterLab on 127.0.0.1 with a token, serving a copy of the notebooks, and a Chromium page. The smoke
    sweep ran first (:func:`conftest.smoke_swept`): the notebooks only render, and a rerun only redraws."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set ZOLIB_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra has it)")
    request.getfixturevalue("smoke_swept")
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(NOTEBOOK_DIR, root / "notebooks")
    port, token = free_port(), "zolib-browser-test"
    env = {k: v for k, v in os.environ.items() if k != "ZOLIB_FRONTEND"}
    server = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                               f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
                               f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
                               "--LabApp.news_url=", "--LabServerApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                               "--LabApp.expose_app_in_browser=True", f"--LabApp.workspaces_dir={root / 'workspaces'}",
                               f"--LabApp.user_settings_dir={root / 'settings'}",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab did not start: {server.stderr.read()[-2000:]}")
            time.sleep(0.5)
    playwright = sync_api.sync_playwright().start()
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"])
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    yield {"page": page, "base": base, "token": token, "root": root, "timings": {}}
    browser.close()
    playwright.stop()
    server.terminate()
    server.wait(timeout=30)


READY = """() => { const w = window.jupyterapp.shell.currentWidget;
  return !!(w && w.context && w.context.isReady && w.sessionContext && w.sessionContext.isReady
    && w.sessionContext.session && w.sessionContext.session.kernel
    && w.sessionContext.session.kernel.status === 'idle'); }"""
"""The notebook in front is loaded and its kernel has started and is idle: a Run All sent earlier is dropped."""

DONE = """() => { const w = window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.sessionContext || !w.sessionContext.session) return false;
  const cells = [...w.content.model.cells].filter(c => c.type === 'code');
  const failed = cells.some(c => c.outputs.toJSON().some(o => o.output_type === 'error'));
  return w.sessionContext.session.kernel.status === 'idle' && cells.length > 0
    && (failed || cells.every(c => c.executionCount !== null)); }"""
"""Every code cell of the notebook in front has run (or one failed, which stops Run All), and its kernel is
idle (read from JupyterLab's model)."""


def run_all(lab, stem: str, timeout_s: float = 900) -> nbformat.NotebookNode:
    """Open ``stem`` in JupyterLab, run all its cells, wait until the kernel is done, save; the saved notebook."""
    page = lab["page"]
    if "/lab" in page.url:  # one notebook open at a time: the selectors below look at the open panel
        page.evaluate("() => window.jupyterapp.commands.execute('application:close-all')")
    page.goto(f"{lab['base']}/lab/tree/notebooks/{stem}.ipynb?reset&token={lab['token']}")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=120_000)
    page.wait_for_function(READY, timeout=120_000, polling=500)
    start = time.time()
    # not awaited: the command's promise settles only when every cell has run
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
    page.wait_for_function(DONE, timeout=timeout_s * 1000, polling=1000)
    lab["timings"][stem] = time.time() - start
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    saved = lab["root"] / "notebooks" / f"{stem}.ipynb"
    for _ in range(60):
        nb = nbformat.read(saved, as_version=4)
        if all(c.execution_count for c in nb.cells if c.cell_type == "code"):
            return nb
        time.sleep(0.5)
    return nb


def shot(lab, name: str) -> None:
    folder = os.environ.get("ZOLIB_BROWSER_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        lab["page"].screenshot(path=str(Path(folder) / f"{name}.png"), full_page=False)


@pytest.mark.parametrize("path", selected(), ids=lambda p: p.stem)
def test_run_all_in_jupyterlab_shows_figures_and_verdicts_without_errors(lab, path):
    nb = run_all(lab, path.stem)
    shot(lab, f"{path.stem}-run-all")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [f"{o.get('ename')}: {o.get('evalue')}" for o in outputs if o.output_type == "error"]
    assert not errors, errors
    assert any("image/png" in o.get("data", {}) for o in outputs), "figures are inline images"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    if path.stem != "00_setup":
        assert any(f"{v.upper()}:" in text for v in VERDICTS), "the verdict section printed its verdicts"
    widgets = [c for c in nb.cells if c.cell_type == "code" and any(WIDGET_VIEW in o.get("data", {}) for o in c.outputs)]
    allowed = [c for c in widgets if "widgets." in c.source]
    assert widgets == allowed, "only the interactive cells hold widgets: progress is text that survives saving"


@pytest.mark.parametrize("stem", [s for s in INTERACTIVE if any(p.stem == s for p in selected())])
def test_each_interactive_control_changes_its_cells_output(lab, stem):
    page = lab["page"]
    if not page.url.split("?")[0].endswith(f"{stem}.ipynb"):
        run_all(lab, stem)
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell", has=page.locator(".widget-toggle-button"))
    out = cell.locator(".widget-output")
    out.wait_for(timeout=60_000)
    before = out.inner_text()
    button = cell.locator(".widget-toggle-button").first  # vision, layer 0
    button.scroll_into_view_if_needed()
    button.click()
    page.wait_for_function("([el, old]) => el.innerText !== old", arg=[out.element_handle(), before], timeout=60_000)
    after = out.inner_text()
    shot(lab, f"{stem}-clicked")
    assert after != before and after.strip(), "the click changed the result shown inside the cell"
    assert "custom:vision=" in after and before.split("\n")[0] not in after.split("\n")[0]
    record = os.environ.get("ZOLIB_BROWSER_LOG")
    if record:
        with open(record, "a") as f:
            f.write(json.dumps({"notebook": stem, "clicked": "vision layer 0", "before": before, "after": after,
                                "seconds": lab["timings"]}) + "\n")
