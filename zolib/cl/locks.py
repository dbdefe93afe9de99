"""One owner per piece of work: lock files that two sweeps on one store can share, and that a killed owner
does not hold forever.

A piece (a run, a calibration, a few-shot run) is computed under ``<store>/locks/<piece>.lock``. Taking it
is one ``os.link`` of a private file onto that name: the link either succeeds or fails because the name
exists, atomically, on a local disk and on NFS alike (the classic NFS-safe lock: ``O_EXCL`` creation was not
atomic over NFS before NFSv3, and is still not on every client). The lock records who holds it (host, pid,
a random token) and its owner refreshes its modification time every ``ttl / 4`` seconds (a heartbeat).

A lock is **stale**, and may be taken over, when its owner is a process of this host that no longer exists
(a sweep killed with SIGKILL: the next one takes over at once), or when its heartbeat is older than ``ttl``
(an owner on another node that died: its lock expires). Taking over renames the stale lock away first, so
of two sweeps that find it stale at the same moment only one wins. On NFS the heartbeat relies on the
server's clock for both the write and the read (``os.utime`` then ``stat``), so clock skew between nodes
does not expire a live lock; ``ttl`` (``$ZOLIB_LOCK_TTL``, default 300 s) must exceed the longest pause of
a live owner (a stopped-the-world NFS hiccup), not the length of a run.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any


def _ttl() -> float:
    return float(os.environ.get("ZOLIB_LOCK_TTL", 300))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class PieceLock:
    """The lock of one piece (see the module docstring); :meth:`acquire` returns False while another live
    owner holds it. Release it with :meth:`release` (or use it as a context manager after acquiring)."""

    def __init__(self, folder: Path, piece: str, ttl: float | None = None):
        self.path = Path(folder) / f"{piece}.lock"
        self.ttl = _ttl() if ttl is None else ttl
        self.token = uuid.uuid4().hex
        self.owner = {"host": socket.gethostname(), "pid": os.getpid(), "token": self.token, "since": time.time()}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (None if nobody, or if its file cannot be read: being replaced)."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def stale(self) -> bool:
        """Whether the lock's holder is dead: a gone process of this host, or a heartbeat older than ``ttl``."""
        who = self.holder()
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if who is None:
            return age > self.ttl
        if who.get("host") == socket.gethostname() and not _alive(int(who.get("pid", -1))):
            return True
        return age > self.ttl

    def acquire(self) -> bool:
        """Take the lock if it is free (or stale); True when this process holds it now."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):  # once, and once more after taking over a stale lock
            private = self.path.with_name(f".{self.path.name}.{self.token}")
            private.write_text(json.dumps(self.owner))
            try:
                os.link(private, self.path)
                won = True
            except FileExistsError:
                won = False
            finally:
                private.unlink(missing_ok=True)
            if won:
                self._start_heartbeat()
                return True
            if not self.stale():
                return False
            try:  # rename, not unlink: of two sweeps taking over, exactly one moves the stale lock away
                os.rename(self.path, self.path.with_name(f".{self.path.name}.stale.{self.token}"))
                self.path.with_name(f".{self.path.name}.stale.{self.token}").unlink(missing_ok=True)
            except FileNotFoundError:
                pass
        return False

    def _start_heartbeat(self) -> None:
        def beat() -> None:
            while not self._stop.wait(max(0.5, self.ttl / 4)):
                try:
                    os.utime(self.path)
                except OSError:
                    return
        self._beat = threading.Thread(target=beat, daemon=True, name=f"zolib-lock-{self.path.stem}")
        self._beat.start()

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if this process still holds it."""
        self._stop.set()
        if (self.holder() or {}).get("token") == self.token:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "PieceLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()
