"""The run store: every finished run and calibration, keyed by its resolved config and by a hash
of the zolib code that decides its numbers, written atomically, resumable from checkpoints.

Layout under the store's root (``$ZOLIB_STORE``, default ``$ZOLIB_CACHE/store``, i.e.
``~/.cache/zolib/store``; on a cluster put it on a shared filesystem):

- ``runs/<config key>-<code hash>.json``: a result (see :func:`zolib.cl.trainer.run_experiment`),
  with ``<...>.json.ckpt`` beside it while the run is unfinished: a rerun resumes there;
- ``calibrations/<key>-<code hash>.json``: the ZO step size a calibration chose, and its table;
- ``fewshot/<key>-<shots>x<queries>-<code hash>.json``: a few-shot prompt-tuning result (SharpZO's
  own setting, :mod:`zolib.cl.fewshot`).

A run whose loss turns NaN is a result too: ``diverged`` holds the one-line message, the finished
tasks are kept, and ``last``/``avg`` are None (a NaN model has no accuracy worth reporting).

A :class:`Request` is a run as a notebook asks for it: a resolved config, and, for the
calibrated regime, the :class:`~zolib.cl.profiles.Calibration` that picks its ZO step size first,
or, for a few-shot run, its ``(shots, queries)``. Every kind goes through the sweep alike.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import NanLossError
from ..runtime import atomic_write_json, cache_dir, load_checkpoint, provenance
from .config import ExperimentConfig
from .calibration import Calibration

ENTRY_POINTS = ("zolib.cl.trainer", "zolib.cl.calibration", "zolib.cl.fewshot")
"""The modules that compute what the store keeps: runs, calibrations and few-shot runs."""


def _module_file(root: Path, module: str) -> Path | None:
    """The file of ``zolib.x.y`` under the package ``root`` (a module or a package's ``__init__``)."""
    parts = module.split(".")[1:]
    for path in (root.joinpath(*parts).with_suffix(".py"), root.joinpath(*parts, "__init__.py")):
        if parts and path.is_file() or not parts and path.name == "__init__.py" and path.is_file():
            return path
    return None


def code_sources() -> list[Path]:
    """Every zolib file that decides a stored number: the import closure of :data:`ENTRY_POINTS` (every
    ``import`` of a zolib module anywhere in a file, lazy ones inside functions included, and the packages
    on the way), read from the source with :mod:`ast`, plus the data those modules read (the open_clip
    configs, the shipped weights' record, the dataset manifests). Derived from the package, so a new
    module the harness imports is hashed without anyone adding it to a list."""
    root = Path(__file__).resolve().parent.parent
    todo, seen = list(ENTRY_POINTS), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = _module_file(root, module)
        if path is None:
            continue
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # the packages it runs on the way
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] == "zolib"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
                if base.split(".")[0] == "zolib":
                    todo += [base] + [f"{base}.{a.name}" for a in node.names]
    files = {p for m in seen if (p := _module_file(root, m)) is not None}
    from ..data.manifests import MANIFEST_DIR
    data = [*(root / "models" / "configs").glob("*.json"), *(root / "models" / "weights").glob("*.json"),
            *Path(MANIFEST_DIR).glob("*.json")]
    return sorted(files) + sorted(data)


_MESSAGES = {"print", "warn", "write", "echo"}
"""Calls whose string arguments are messages to a person (print, warnings.warn, tqdm.write, sys.stderr.write)."""
_MESSAGE_KEYWORDS = {"help", "desc"}
"""Keyword arguments that are display text (argparse's help, tqdm's desc)."""


class _Meaning(ast.NodeTransformer):
    """Strips what cannot change a number from a module's syntax tree: docstrings (comments never reach the
    tree), and the text of messages: what a ``raise`` says, and the strings given to :data:`_MESSAGES` calls
    and :data:`_MESSAGE_KEYWORDS`. The exception's type, the call and everything computed stay."""

    def _undoc(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        return self.generic_visit(node)

    visit_Module = visit_ClassDef = visit_FunctionDef = visit_AsyncFunctionDef = _undoc

    @staticmethod
    def _silence(node):
        for sub in ast.walk(node):
            for name, value in ast.iter_fields(sub):
                if isinstance(value, ast.JoinedStr) or isinstance(value, ast.Constant) and isinstance(value.value, str):
                    setattr(sub, name, ast.Constant(""))
                elif isinstance(value, list):
                    setattr(sub, name, [ast.Constant("") if isinstance(v, ast.JoinedStr) or isinstance(v, ast.Constant)
                                        and isinstance(v.value, str) else v for v in value])
        return node

    def visit_Raise(self, node):
        return self._silence(node)

    def visit_Call(self, node):
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if name in _MESSAGES:
            return self._silence(node)
        for kw in node.keywords:
            if kw.arg in _MESSAGE_KEYWORDS:
                self._silence(kw)
        return self.generic_visit(node)


def code_meaning(source: str, name: str = "<module>") -> bytes:
    """What a zolib module means for the numbers: its syntax tree without docstrings, comments, line numbers
    or messages (:class:`_Meaning`), dumped. Editing any of those keeps it; changing an expression does not."""
    tree = _Meaning().visit(ast.parse(source, name))
    return ast.dump(tree, annotate_fields=False, include_attributes=False).encode()


@lru_cache(maxsize=1)
def code_hash() -> str:
    """Hash of what the zolib files that decide an experiment's numbers mean (:func:`code_sources`): each
    module's :func:`code_meaning`, each data file's JSON in canonical form. A comment, a docstring or an error
    message edited keeps every stored result; a changed expression re-keys them."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for f in code_sources():
        name = f.relative_to(root).as_posix() if f.is_relative_to(root) else "manifests/" + f.name
        text = f.read_text()
        meaning = code_meaning(text, name) if f.suffix == ".py" else \
            json.dumps(json.loads(text), sort_keys=True, separators=(",", ":")).encode()
        h.update(name.encode() + b"\0" + meaning + b"\0")
    return h.hexdigest()[:12]


@dataclass(frozen=True)
class Request:
    """One run a study asks for: ``config``, or, with ``calibration``, ``config`` with the ZO step
    size that calibration chooses (its ``zo_lr`` is then ignored). With ``fewshot`` = ``(shots,
    queries)`` it is a few-shot prompt-tuning run (:func:`zolib.cl.fewshot.run_fewshot`), not a
    class-incremental one."""

    config: ExperimentConfig
    calibration: Calibration | None = None
    fewshot: tuple[int, int] | None = None

    def calibration_config(self) -> ExperimentConfig:
        """The config the calibration trains (the calibration's seed; the step size is its to pick)."""
        return self.config.replace(seed=self.calibration.seed)


class Store:
    """Runs and calibrations on disk (see the module docstring).

    Reading an entry that does not parse, or whose key does not match what it should hold (a truncated copy,
    a disk that filled up, a hand edit), moves it to ``quarantine/`` (kept for inspection), says so in one
    line on stderr, and treats it as missing: that piece is computed again and nothing else is touched.
    Every piece is computed under its lock (:mod:`zolib.cl.locks`), so two sweeps on one store never compute
    the same piece at the same time: the second waits for the first's result.
    """

    POLL = 2.0  # seconds between looks at a piece another sweep is computing

    def __init__(self, root: str | Path | None = None):
        root = root or os.environ.get("ZOLIB_STORE")
        self.root = Path(root).expanduser() if root else cache_dir("store")

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ------------------------------------------------------------------ reading, quarantine, locks
    def quarantine(self, path: Path, why: str) -> Path:
        """Move the bad entry ``path`` to ``quarantine/<kind>/`` and say so in one line; returns where it went."""
        dest = self.root / "quarantine" / path.parent.name / f"{path.name}.{time.strftime('%Y%m%d-%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(path, dest)
        except FileNotFoundError:  # another sweep moved it first
            return dest
        sys.stderr.write(f"zolib: store: {path} {why}; moved to {dest}; it will be computed again\n")
        return dest

    def _read(self, path: Path, check) -> dict[str, Any] | None:
        """The entry at ``path`` if it exists and is sound (``check(data)`` says why not, or ""), else None."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        text = ""
        try:
            text = raw.decode()
            data = json.loads(text)
            why = "is not a JSON object" if not isinstance(data, dict) else check(data)
        except ValueError as err:  # JSONDecodeError, a bad UTF-8 byte
            why = f"does not parse ({'empty' if not raw.strip() else type(err).__name__ + ': ' + str(err)[:80]})"
        if why:
            self.quarantine(path, why)
            return None
        return data

    @staticmethod
    def _keyed(key: str):
        def check(data: dict) -> str:
            got = data.get("config_key")
            return "" if got == key else f"holds the result of config {got!r}, not of {key!r}"
        return check

    def lock(self, path: Path):
        """The lock of the piece stored at ``path`` (:class:`zolib.cl.locks.PieceLock`)."""
        from .locks import PieceLock
        return PieceLock(self.root / "locks", f"{path.parent.name}-{path.stem}")

    def _once(self, path: Path, read, compute) -> dict[str, Any]:
        """``read()``'s entry, else ``compute()`` under the piece's lock, written at ``path``; while another
        process holds the lock, wait for its result (or for its lock to go stale)."""
        while True:
            got = read()
            if got is not None:
                return got
            lock = self.lock(path)
            if lock.acquire():
                with lock:
                    got = read()  # finished by another sweep between our read and our lock
                    if got is None:
                        start = time.time()
                        got = compute()
                        atomic_write_json(path, got)
                        _trace(path, start)
                    return got
            time.sleep(self.POLL)

    # ------------------------------------------------------------------ runs
    def run_path(self, cfg: ExperimentConfig) -> Path:
        return self.root / "runs" / f"{cfg.key()}-{code_hash()}.json"

    def get(self, cfg: ExperimentConfig) -> dict[str, Any] | None:
        """The stored result of ``cfg``, or None (a bad entry is quarantined: see the class docstring)."""
        return self._read(self.run_path(cfg), self._keyed(cfg.key()))

    def run(self, cfg: ExperimentConfig, progress: bool = False) -> dict[str, Any]:
        """The stored result of ``cfg``, running (or resuming) it first if needed."""
        path = self.run_path(cfg)
        return self._once(path, lambda: self.get(cfg), lambda: self._run(cfg, path, progress))

    def _run(self, cfg: ExperimentConfig, path: Path, progress: bool) -> dict[str, Any]:
        from .trainer import run_experiment
        self._check_checkpoint(cfg, path.with_name(path.name + ".ckpt"))
        try:
            return run_experiment(cfg, path, progress=progress)
        except NanLossError as err:
            return self._diverged(cfg, path, err)

    def _check_checkpoint(self, cfg: ExperimentConfig, ckpt: Path) -> None:
        """Quarantine an unfinished run's checkpoint that is not this run's data: the run then starts over.

        It is read as data only (:func:`zolib.runtime.load_checkpoint`: safetensors and JSON, never pickle),
        so a file someone else placed there (a pickle whose loading would run code) is never executed."""
        if not ckpt.exists():
            return
        from .trainer import checkpoint_config_key
        try:
            state, _ = load_checkpoint(ckpt)
        except (ValueError, OSError) as err:
            self.quarantine(ckpt, f"is {err}, so it was not loaded (nothing in it ran)")
            return
        if "acc_matrix" not in state or checkpoint_config_key(state) != cfg.key():
            self.quarantine(ckpt, "is not a checkpoint of this run's config")

    @staticmethod
    def _diverged(cfg: ExperimentConfig, path: Path, err: Exception) -> dict[str, Any]:
        ckpt = path.with_name(path.name + ".ckpt")
        try:
            state = load_checkpoint(ckpt)[0]
        except (ValueError, OSError):  # none written yet (NaN in the first task), or not ours
            state = {}
        ckpt.unlink(missing_ok=True)
        return {"diverged": str(err), "last": None, "avg": None, "forgetting": None, "bwt": None,
                "zero_shot": state.get("zero_shot"), "acc_matrix": state.get("acc_matrix", []),
                "pooled": state.get("pooled", []), "losses": state.get("losses", []),
                "picks": state.get("picks", []), "movement": state.get("movement", []), "zo_effect": None,
                "config": cfg.as_dict(), "config_key": cfg.key(), **provenance()}

    # ------------------------------------------------------------------ calibrations
    def calibration_path(self, req: Request) -> Path:
        return self.root / "calibrations" / f"{self._calibration_key(req)}-{code_hash()}.json"

    @staticmethod
    def _calibration_key(req: Request) -> str:
        cfg = req.calibration_config()
        blob = json.dumps({"config": cfg.replace(zo_lr=None).key(), "calibration": asdict(req.calibration)},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def get_calibration(self, req: Request) -> dict[str, Any] | None:
        """The stored calibration of ``req``, or None (a bad entry is quarantined)."""
        expected = req.calibration_config().replace(zo_lr=None).key()

        def check(data: dict) -> str:
            if not isinstance(data.get("zo_lr"), (int, float)) or "table" not in data:
                return "is not a calibration (no zo_lr or table)"
            from .config import from_dict
            got = from_dict(data["config"]).replace(zo_lr=None).key() if "config" in data else None
            return "" if got == expected else f"holds the calibration of config {got!r}, not of {expected!r}"
        return self._read(self.calibration_path(req), check)

    def calibrate(self, req: Request, progress: bool = False) -> dict[str, Any]:
        """The stored calibration of ``req``, computing it first if needed."""
        from .calibration import calibrate
        return self._once(self.calibration_path(req), lambda: self.get_calibration(req),
                          lambda: calibrate(req.calibration_config(), req.calibration, progress))

    # ------------------------------------------------------------------ few-shot (SharpZO's own setting)
    def fewshot_path(self, cfg: ExperimentConfig, shots: int, queries: int) -> Path:
        return self.root / "fewshot" / f"{cfg.key()}-{shots}x{queries}-{code_hash()}.json"

    def get_fewshot(self, cfg: ExperimentConfig, shots: int, queries: int) -> dict[str, Any] | None:
        """The stored few-shot result of ``cfg``, or None (a bad entry is quarantined)."""
        return self._read(self.fewshot_path(cfg, shots, queries), self._keyed(cfg.key()))

    def fewshot(self, cfg: ExperimentConfig, shots: int, queries: int) -> dict[str, Any]:
        """The stored few-shot result of ``cfg`` (:func:`zolib.cl.fewshot.run_fewshot`), computed if missing."""
        from .fewshot import run_fewshot
        return self._once(self.fewshot_path(cfg, shots, queries), lambda: self.get_fewshot(cfg, shots, queries),
                          lambda: run_fewshot(cfg, shots, queries))

    # ------------------------------------------------------------------ requests
    def resolve(self, req: Request) -> ExperimentConfig | None:
        """The config ``req`` runs: itself, or with its calibrated step size (None while uncalibrated)."""
        if req.calibration is None:
            return req.config
        cal = self.get_calibration(req)
        return None if cal is None else req.config.replace(zo_lr=cal["zo_lr"])

    def result(self, req: Request) -> dict[str, Any] | None:
        """The stored result of ``req``, or None."""
        cfg = self.resolve(req)
        if cfg is None:
            return None
        return self.get(cfg) if req.fewshot is None else self.get_fewshot(cfg, *req.fewshot)

    def piece_path(self, kind: str, req: Request) -> Path | None:
        """Where the piece ``kind`` (``calibration`` or ``run``) of ``req`` is stored: its calibration, its run
        or its few-shot run (None for a run whose calibration is not stored yet)."""
        if kind == "calibration":
            return self.calibration_path(req)
        cfg = self.resolve(req)
        if cfg is None:
            return None
        return self.run_path(cfg) if req.fewshot is None else self.fewshot_path(cfg, *req.fewshot)

    def execute(self, req: Request, progress: bool = False) -> dict[str, Any]:
        """Calibrate if needed, then run: the result of ``req``, computed in this process."""
        if req.calibration is not None:
            self.calibrate(req, progress)
        cfg = self.resolve(req)
        return self.run(cfg, progress) if req.fewshot is None else self.fewshot(cfg, *req.fewshot)

    # ------------------------------------------------------------------ checking the whole store
    def verify(self, repair: bool = False) -> dict[str, Any]:
        """Check every entry: it parses, it is a JSON object with the fields of its kind, its key (its file
        name) matches its content, and its code hash is this zolib's (``current``) or another version's
        (``other code``: sound, not served, kept). ``bad`` lists the entries that fail; with ``repair`` they are
        quarantined. Unfinished runs' checkpoints are read as data (a file that is not a zolib checkpoint is bad);
        they, leftover temporary files and locks are counted too."""
        report: dict[str, Any] = {"root": str(self.root), "code_hash": code_hash(), "current": 0, "other code": 0,
                                  "bad": [], "checkpoints": 0, "temporary files": 0, "locks": 0}
        for kind in ("runs", "calibrations", "fewshot"):
            for path in sorted((self.root / kind).glob("*.json")) if (self.root / kind).is_dir() else []:
                why = _entry_problem(kind, path)
                if why:
                    report["bad"].append({"path": str(path), "why": why})
                    if repair:
                        self.quarantine(path, why)
                else:
                    report["current" if path.stem.endswith(code_hash()) else "other code"] += 1
            folder = self.root / kind
            for ckpt in sorted(folder.glob("*.ckpt")) if folder.is_dir() else []:
                report["checkpoints"] += 1
                try:
                    load_checkpoint(ckpt)  # data only: nothing in it runs
                except (ValueError, OSError) as err:
                    why = f"is {err}"
                    report["bad"].append({"path": str(ckpt), "why": why})
                    if repair:
                        self.quarantine(ckpt, why)
            report["temporary files"] += len(list(folder.glob(".*.tmp"))) if folder.is_dir() else 0
        report["locks"] = len(list((self.root / "locks").glob("*.lock"))) if (self.root / "locks").is_dir() else 0
        return report


def _trace(path: Path, start: float) -> None:
    """With ``$ZOLIB_STORE_TRACE`` set to a file, append one line per computed piece (its file, this process,
    start and end): an audit of who computed what, used by tests/test_store_faults.py."""
    trace = os.environ.get("ZOLIB_STORE_TRACE")
    if trace:
        with open(trace, "a") as f:
            f.write(json.dumps({"piece": f"{path.parent.name}/{path.name}", "pid": os.getpid(),
                                "start": start, "end": time.time()}) + "\n")


def _entry_problem(kind: str, path: Path) -> str:
    """Why the stored entry ``path`` of ``kind`` is not sound, or "" (see :meth:`Store.verify`)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return f"does not parse ({type(err).__name__})"
    if not isinstance(data, dict):
        return "is not a JSON object"
    key = path.stem.split("-")[0]
    if kind == "calibrations":
        if not isinstance(data.get("zo_lr"), (int, float)) or "table" not in data or "config" not in data:
            return "is not a calibration (no zo_lr, table or config)"
        return ""
    if data.get("config_key") != key:
        return f"holds config {data.get('config_key')!r} under the name of {key!r}"
    if kind == "runs" and not (data.get("diverged") or ("last" in data and "acc_matrix" in data)):
        return "is not a run result (no last or acc_matrix)"
    return ""


