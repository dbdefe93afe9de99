"""Sweeps: run every stored-missing piece of a plan through submitit, on this machine or a Slurm cluster.

- ``local``: ``jobs`` worker processes on this machine, each working through its share of the pieces
  with ``threads`` torch threads (on a 2-core laptop two single-thread processes beat one
  two-thread process, 1.37x for the tiny CLIP; one process per piece would pay Python's start-up,
  seconds, per piece);
- ``slurm``: job arrays (partition, GPUs, CPUs, memory, time limit, account, array parallelism,
  extra ``sbatch`` options); the store must sit on a filesystem the nodes share;
- ``debug``: in this process, one piece after the other (tests, debuggers).

A plan has two phases: first the calibrations of the calibrated regime (each picks a ZO step size
on task 1), then the runs (class-incremental and few-shot alike), a run waiting for its calibration. Finished pieces are skipped, so an
interrupted sweep resumes where it stopped (an unfinished run resumes from its checkpoint). A
failed job is reported with its log file, and the others go on. Progress is one bar for the sweep.
Job states come from the result files submitit writes, never from ``sacct`` (which needs Slurm
accounting, off on many single-node set-ups).
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from tqdm import tqdm  # a text bar: in JupyterLab a widget bar reads "model not found" once the notebook is saved

from ..errors import ZolibError, check_choice
from .store import Request, Store

EXECUTORS = ("local", "slurm", "debug")


@dataclass(frozen=True)
class SlurmOptions:
    """What the Slurm executor asks for per job (None: the cluster's default)."""

    partition: str | None = None
    gpus_per_node: int = 0
    cpus_per_task: int = 2
    mem_gb: float | None = None
    timeout_min: int = 240
    account: str | None = None
    array_parallelism: int = 64
    extra: dict[str, str] = field(default_factory=dict)  # other sbatch options, e.g. {"qos": "normal"}


@dataclass
class Plan:
    """What a sweep has to do (see :func:`plan`)."""

    requests: list[Request]
    stored: int
    calibrations: list[Request]  # one request per calibration still to compute
    runs: list[Request]          # runs still to compute whose config is known
    waiting: list[Request]       # runs still to compute that wait for a calibration

    @property
    def total(self) -> int:
        return len(self.requests)

    def describe(self) -> str:
        pending = len(self.runs) + len(self.waiting)
        fewshot = sum(r.fewshot is not None for r in self.requests)
        kinds = f", {fewshot} of them few-shot" if fewshot else ""
        return (f"{self.total} runs ({self.stored} stored, {pending} to run{kinds}, {len(self.waiting)} after "
                f"their ZO step-size calibration); {len(self.calibrations)} calibrations to run")


@dataclass
class SweepReport:
    """What a sweep did: pieces finished, failures (with their log files), wall time."""

    plan: Plan
    finished: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def describe(self) -> str:
        text = f"sweep: {self.finished} pieces finished in {self.seconds:.0f} s"
        for f in self.failed:
            text += f"\n  FAILED {f['what']}: {f['error']} (log: {f['log']})"
        return text


def default_jobs() -> int:
    """Parallel local jobs: ``$ZOLIB_JOBS``, else one per CPU core (one on a GPU machine)."""
    if os.environ.get("ZOLIB_JOBS"):
        return int(os.environ["ZOLIB_JOBS"])
    import torch
    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


def plan(requests: Iterable[Request], store: Store) -> Plan:
    """Which of ``requests`` are stored, which calibrations and runs are still to compute."""
    unique: dict[Any, Request] = {}
    for req in requests:
        unique.setdefault((req.config.key(), req.calibration, req.fewshot), req)
    stored, calibrations, runs, waiting = 0, {}, {}, []
    for req in unique.values():
        cfg = store.resolve(req)
        if cfg is None:
            calibrations.setdefault(store.calibration_path(req), req)
            waiting.append(req)
        elif store.result(req) is not None:
            stored += 1
        else:
            runs.setdefault((cfg.key(), req.fewshot), Request(cfg, fewshot=req.fewshot))
    return Plan(list(unique.values()), stored, list(calibrations.values()), list(runs.values()), waiting)


def execute(kind: str, req: Request, store_root: str, threads: int = 1) -> dict[str, Any]:
    """The job function: one calibration or one run (class-incremental or few-shot), in whatever
    process the executor chose."""
    import torch
    if threads:
        torch.set_num_threads(threads)
    store = Store(store_root)
    if kind == "calibration":
        return {"zo_lr": store.calibrate(req)["zo_lr"]}
    result = store.execute(req)
    return {k: result.get(k) for k in ("last", "avg", "accuracy", "diverged") if k in result}


def execute_many(pieces: Sequence[tuple[str, Request]], store_root: str, threads: int = 1) -> list[dict[str, str]]:
    """A local worker's job: several pieces one after the other in one process (a new Python process
    costs seconds of imports, as much as a smoke run); returns the failures and goes on after each. A piece
    another sweep is computing (its lock held by a live owner) is left for later, so this worker does the
    others first; then it waits for those results (:meth:`zolib.cl.store.Store.run`)."""
    import traceback
    store = Store(store_root)
    failed, pending = [], list(pieces)
    while pending:
        later = [(k, r) for k, r in pending if _held_elsewhere(store, k, r)]
        todo = [p for p in pending if p not in later] or later  # all held elsewhere: wait on them in turn
        for kind, req in todo:
            try:
                execute(kind, req, store_root, threads)
            except Exception as err:  # reported with the piece, the others go on
                traceback.print_exc()
                failed.append({"what": _describe(kind, req),
                               "error": f"{type(err).__name__}: {err}".splitlines()[0][:300]})
        pending = [p for p in later if p not in todo]
    return failed


def _held_elsewhere(store: Store, kind: str, req: Request) -> bool:
    """Whether another live process holds the lock of this piece (a concurrent sweep on the same store)."""
    path = store.piece_path(kind, req)
    if path is None:
        return False
    lock = store.lock(path)
    return lock.holder() is not None and not lock.stale()


def _chunks(pieces: list, n: int) -> list[list]:
    """``pieces`` dealt round-robin into at most ``n`` non-empty chunks (the list is ordered dearest first)."""
    chunks = [pieces[i::n] for i in range(min(n, len(pieces)))]
    return [c for c in chunks if c]


def _describe(kind: str, req: Request) -> str:
    cfg = req.config
    what = f"few-shot {req.fewshot[0]}x{req.fewshot[1]} run" if kind == "run" and req.fewshot else kind
    return f"{what} {cfg.method} seed {cfg.seed} ({cfg.benchmark}, key {cfg.key()})"


def make_executor(executor: str, folder: Path, slurm: SlurmOptions | None = None):
    """A submitit executor writing its logs under ``folder``."""
    import submitit
    check_choice("executor", executor, EXECUTORS)
    if executor == "debug":
        return submitit.DebugExecutor(folder)
    if executor == "local":
        ex = submitit.LocalExecutor(folder)
        ex.update_parameters(timeout_min=24 * 60)
        return ex
    if shutil.which("sbatch") is None:
        raise ZolibError("--executor slurm needs Slurm's sbatch on this machine's PATH; run on a cluster login "
                         "node, or use --executor local")
    s = slurm or SlurmOptions()
    ex = submitit.AutoExecutor(folder, cluster="slurm")
    params: dict[str, Any] = dict(timeout_min=s.timeout_min, cpus_per_task=s.cpus_per_task,
                                  slurm_array_parallelism=s.array_parallelism, name="zolib")
    if s.gpus_per_node:
        params["gpus_per_node"] = s.gpus_per_node
    if s.partition:
        params["slurm_partition"] = s.partition
    if s.mem_gb:
        params["mem_gb"] = s.mem_gb
    if s.account:
        params["slurm_account"] = s.account
    if s.extra:
        params["slurm_additional_parameters"] = dict(s.extra)
    ex.update_parameters(**params)
    return ex


def run_sweep(requests: Iterable[Request], store: Store | None = None, executor: str = "local", jobs: int = 2,
              threads: int = 1, slurm: SlurmOptions | None = None, progress: bool = True) -> SweepReport:
    """Compute every piece of ``requests`` the store lacks (see the module docstring)."""
    store = store or Store()
    the_plan = plan(requests, store)
    report = SweepReport(the_plan)
    todo = len(the_plan.calibrations) + len(the_plan.runs) + len(the_plan.waiting)
    if not todo:
        return report
    folder = store.root / "logs" / time.strftime("%Y%m%d-%H%M%S")
    ex = make_executor(executor, folder, slurm)
    start = time.perf_counter()
    bar = tqdm(total=todo, desc="sweep", unit="piece", disable=not progress,
               mininterval=float(os.environ.get("TQDM_MININTERVAL", 1)))
    try:
        if executor == "slurm":
            _phases(ex, the_plan, store, threads, report, bar)
        else:
            _workers(ex, the_plan, store, jobs if executor == "local" else 1, threads, report, bar)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - start
    return report


def _collect(job, what: str, report: SweepReport, bar) -> bool:
    """Record a finished job's outcome; True when it succeeded."""
    try:
        job.result()
        report.finished += 1
        ok = True
    except Exception as err:  # submitit wraps the job's exception; its log has the traceback
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        log = str(getattr(getattr(job, "paths", None), "stderr", "(in-process)"))
        report.failed.append({"what": what, "error": last[:300], "log": log})
        ok = False
    bar.update()
    bar.set_postfix(failed=len(report.failed), refresh=False)
    return ok


def _cost(req: Request) -> float:
    """A rough relative cost, to deal the dearest runs first (forwards per step; ZO runs cost more; a
    few-shot run, whose queries each run only the text encoder, about as much as a ZO run)."""
    if req.fewshot is not None:
        return 4.0
    return (1.0 + 3.0 * req.config.has_zo) * (1 + (req.config.zo.q - 1) * req.config.has_zo)


def _workers(ex, the_plan: Plan, store: Store, jobs: int, threads: int, report: SweepReport, bar) -> None:
    """Local and debug executors: ``jobs`` worker processes per phase, each working through a chunk;
    progress is read from the store as results appear."""
    def phase(kind: str, reqs: Sequence[Request], done: Any) -> None:
        if not reqs:
            return
        ordered = sorted(reqs, key=_cost, reverse=True) if kind == "run" else list(reqs)
        chunks = _chunks([(kind, r) for r in ordered], jobs)
        running = [(ex.submit(execute_many, chunk, str(store.root), threads), chunk) for chunk in chunks]
        counted: set[int] = set()
        try:
            while True:
                finished = all(job.done() for job, _ in running)
                for i, r in enumerate(ordered):
                    if i not in counted and done(r):
                        counted.add(i)
                        report.finished += 1
                        bar.update()
                if finished:
                    break
                time.sleep(0.5)
        except KeyboardInterrupt:
            for job, _ in running:
                job.cancel(check=False)
            raise
        for job, chunk in running:
            try:
                failures = job.result()
            except Exception as err:  # the worker process itself died (killed, out of memory)
                failures = [{"what": _describe(k, r), "error": str(err).strip().splitlines()[-1][:300]}
                            for k, r in chunk if not done(r)]
            log = str(getattr(getattr(job, "paths", None), "stderr", "(in-process)"))
            for f in failures:
                report.failed.append({**f, "log": log})
                bar.update()
        bar.set_postfix(failed=len(report.failed), refresh=False)

    phase("calibration", the_plan.calibrations, lambda r: store.get_calibration(r) is not None)
    phase("run", _runs_after_calibration(the_plan, store, report, bar), lambda r: store.result(r) is not None)


def _runs_after_calibration(the_plan: Plan, store: Store, report: SweepReport, bar) -> list[Request]:
    """The runs to compute once the calibrations are done: the plan's, and the waiting ones now
    resolved (a waiting run that resolves to a stored or planned run is counted as finished)."""
    runs = {(r.config.key(), r.fewshot): r for r in the_plan.runs}
    for req in the_plan.waiting:
        cfg = store.resolve(req)
        if cfg is None:
            report.failed.append({"what": _describe("run", req), "error": "its calibration failed",
                                  "log": "see the calibration's failure above"})
            bar.update()
        elif (cfg.key(), req.fewshot) in runs or store.result(req) is not None:
            report.finished += 1
            bar.update()
        else:
            runs[(cfg.key(), req.fewshot)] = Request(cfg, fewshot=req.fewshot)
    return list(runs.values())


def _phases(ex, the_plan: Plan, store: Store, threads: int, report: SweepReport, bar) -> None:
    """Slurm: one job array of calibrations, then one of runs."""
    def array(kind: str, reqs: Sequence[Request]) -> None:
        if not reqs:
            return
        with ex.batch():
            jobs = [ex.submit(execute, kind, r, str(store.root), threads) for r in reqs]
        for job, req in zip(jobs, reqs):
            _collect(job, _describe(kind, req), report, bar)

    array("calibration", the_plan.calibrations)
    array("run", _runs_after_calibration(the_plan, store, report, bar))
