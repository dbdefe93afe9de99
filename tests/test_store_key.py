"""The store's key is what the code means: a docstring, a comment or a message edited keeps every stored result;
a changed expression re-keys them (zolib.cl.store.code_hash)."""
from __future__ import annotations

import ast
import io
import json
import os
import shutil
import subprocess
import sys
import tokenize

import pytest

from zolib.cl.profiles import profile_config
from zolib.cl.store import Store, code_hash, code_meaning, code_sources
from zolib.runtime import REPO_ROOT

pytestmark = pytest.mark.usefixtures("single_thread")


def reworded(source: str) -> str:
    """``source`` with every docstring rewritten, every raise's message changed and a comment on every line."""
    tree = ast.parse(source)
    spans = []
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            spans.append((body[0].value, '"""Reworded by a test."""'))
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args \
                and isinstance(node.exc.args[0], (ast.Constant, ast.JoinedStr)):
            spans.append((node.exc.args[0], '"a reworded message"'))
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    data = source.encode()
    for node, text in sorted(spans, key=lambda s: (s[0].lineno, s[0].col_offset), reverse=True):
        start = offsets[node.lineno - 1] + node.col_offset
        end = offsets[node.end_lineno - 1] + node.end_col_offset
        data = data[:start] + text.encode() + data[end:]
    edited = data.decode()
    ends = {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(edited).readline)
            if tok.type == tokenize.NEWLINE}  # the last line of each statement: a comment cannot land in a string
    lines = [line + "  # a comment" if i + 1 in ends else line for i, line in enumerate(edited.splitlines())]
    return "# a new first line\n" + "\n".join(lines) + "\n"


def test_docstrings_comments_and_messages_of_every_hashed_module_keep_its_meaning_and_expressions_do_not():
    modules = [p for p in code_sources() if p.suffix == ".py"]
    assert len(modules) > 30
    for path in modules:
        source = path.read_text()
        edited = reworded(source)
        assert edited != source
        ast.parse(edited)  # still Python
        assert code_meaning(edited) == code_meaning(source), f"rewording {path.name} changed its meaning"
        assert code_meaning(source + "\nZOLIB_NEW_CONSTANT = 1\n") != code_meaning(source), path.name
    hybrid = (REPO_ROOT / "zolib" / "optim" / "hybrid.py").read_text()
    tree = ast.parse(hybrid)
    plus = next(n for n in ast.walk(tree) if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Add))
    plus.op = ast.Sub()  # one "+" of the optimizer becomes "-"
    assert code_meaning(ast.unparse(tree)) != code_meaning(hybrid), "an expression changed: a new key"
    assert code_meaning(ast.unparse(ast.parse(hybrid))) == code_meaning(hybrid), "formatting alone: the same key"


def test_a_docstring_edit_in_hybrid_recomputes_no_stored_run(tmp_path):
    """A copy of zolib whose hybrid.py docstrings and comments were reworded plans 0 runs against a store that
    holds the run: every stored result is served, none is computed again."""
    store = Store(tmp_path / "store")
    cfg = profile_config("smoke", method="hop-odd-vision", zo_lr=0.05, protocol="5-steps", synthetic_train_per_class=8,
                         synthetic_test_per_class=4, max_steps_per_task=2, batch_size=16)
    store.run(cfg)
    copy = tmp_path / "checkout"
    shutil.copytree(REPO_ROOT / "zolib", copy / "zolib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO_ROOT / "data_manifests", copy / "data_manifests")
    hybrid = copy / "zolib" / "optim" / "hybrid.py"
    hybrid.write_text(reworded(hybrid.read_text()))
    script = ("import json, sys; from zolib.cl.store import Request, Store, code_hash; from zolib.cl.sweep import plan; "
              "from zolib.cl.config import from_dict; import zolib; "
              "cfg = from_dict(json.loads(sys.argv[2])); p = plan([Request(cfg)], Store(sys.argv[1])); "
              "print(json.dumps({'file': zolib.__file__, 'hash': code_hash(), 'stored': p.stored, 'runs': len(p.runs)}))")
    out = subprocess.run([sys.executable, "-c", script, str(store.root), json.dumps(cfg.as_dict())],
                         cwd=copy, env={**os.environ, "PYTHONPATH": str(copy)}, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["file"].startswith(str(copy)), "the reworded copy was the one imported"
    assert got["hash"] == code_hash() and got["stored"] == 1 and got["runs"] == 0
