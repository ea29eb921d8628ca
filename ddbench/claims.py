"""Claims on units of work shared through a folder, so concurrent sweeps split the work instead of doubling it.

A claim is a small JSON file created atomically (``O_CREAT | O_EXCL``) in the board's folder, naming its owner
(host, pid, a random token) and refreshed by a heartbeat thread (the file's mtime). Whoever creates the file owns
the unit; everyone else sees it taken. A claim is *stale*, and taken over, when its owner is a dead process on this
host or when its heartbeat is older than ``stale_s`` (an owner on another host that died, or hangs). Works on any
folder every worker sees: two terminals on one machine, or the workers of a distributed executor on shared storage.

    with ClaimBoard(results / ".claims") as board:
        if board.claim("mnist/dm/ipc10/seed3"):
            try:
                ...  # compute, write the result atomically
            finally:
                board.release("mnist/dm/ipc10/seed3")
        else:
            ...  # someone else computes it: do other work, come back later (board.holder(name) says who)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
STALE_S = 120.0


@dataclass(frozen=True)
class Holder:
    """Who holds a claim: ``pid`` on ``host``, heartbeat ``age`` seconds ago."""

    name: str
    host: str
    pid: int
    token: str
    age: float

    def __str__(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


class ClaimBoard:
    """Claims under ``folder`` (created on the first claim). Thread-safe; one heartbeat thread per board."""

    def __init__(self, folder: Path | str, *, heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S) -> None:
        self.folder = Path(folder)
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._held: dict[str, tuple[Path, str]] = {}  # name -> (file, token)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- files
    def path(self, name: str) -> Path:
        """A flat file per unit: a readable prefix plus a hash of the full name (any characters, any length)."""
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[-60:]
        return self.folder / f"{safe}.{hashlib.sha256(name.encode()).hexdigest()[:12]}.claim"

    def holder(self, name: str) -> Holder | None:
        """The live holder of ``name``; None when it is free or its holder is stale."""
        info = self._read(self.path(name))
        return None if info is None or self._stale(info) else info

    def _read(self, path: Path) -> Holder | None:
        try:
            age = time.time() - path.stat().st_mtime
            data = json.loads(path.read_text())
            return Holder(str(data["name"]), str(data["host"]), int(data["pid"]), str(data["token"]), age)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):  # half-written by a creator that died: judge by age
            try:
                age = time.time() - path.stat().st_mtime
            except FileNotFoundError:
                return None
            return Holder(path.name, "?", -1, "?", age)

    def _stale(self, h: Holder) -> bool:
        if h.age > self.stale_s:
            return True
        if h.host == self.host and h.pid > 0:
            return not _alive(h.pid)
        return h.pid <= 0 and h.age > max(self.heartbeat_s * 3, 5.0)

    # -- claiming
    def claim(self, name: str) -> bool:
        """Take ``name`` if it is free or stale; True when this process holds it now (also if it already did)."""
        with self._lock:
            if name in self._held:
                return True
        path = self.path(name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):
            token = uuid.uuid4().hex
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                info = self._read(path)
                if info is None:
                    continue  # released meanwhile: try again
                if not self._stale(info):
                    return False
                if not self._take_over(path, info):
                    continue
                log.warning("taking over the stale claim on %s of %s (heartbeat %.0f s ago)", name, info, info.age)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"name": name, "host": self.host, "pid": self.pid, "token": token,
                           "created": time.time()}, fh)
            with self._lock:
                self._held[name] = (path, token)
            self._ensure_heartbeat()
            return True
        return False

    def _take_over(self, path: Path, seen: Holder) -> bool:
        """Move the stale file aside atomically (one taker wins), then check it is the one judged stale."""
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.stale")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return False
        again = self._read(aside)
        if again is not None and again.token != seen.token and not self._stale(again):
            with contextlib.suppress(OSError):  # a fresh claim replaced the stale one meanwhile: put it back
                os.link(aside, path)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    def release(self, name: str) -> None:
        with self._lock:
            entry = self._held.pop(name, None)
        if entry is None:
            return
        path, token = entry
        info = self._read(path)
        if info is not None and info.token == token:
            path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when empty: leave no empty claims folder behind

    def held(self) -> list[str]:
        with self._lock:
            return list(self._held)

    # -- heartbeat
    def _ensure_heartbeat(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._beat, name="ddbench-claims-heartbeat", daemon=True)
            self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                held = dict(self._held)
            for name, (path, token) in held.items():
                info = self._read(path)
                if info is None or info.token != token:
                    log.warning("lost the claim on %s (taken over as stale); the work may be done twice", name)
                    continue
                with contextlib.suppress(OSError):
                    os.utime(path)

    def close(self) -> None:
        """Release every claim and stop the heartbeat."""
        for name in self.held():
            self.release(name)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1)
            self._thread = None

    def __enter__(self) -> ClaimBoard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
