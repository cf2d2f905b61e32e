"""Generic process-group bookkeeping and teardown for the local Deployment Engine.

Every started process (and everything it starts) carries ``FEDHAR_DEPLOYMENT_TAG``;
:class:`Deployment` starts processes in their own sessions, records their pids and a
``deployment.json`` manifest, and its :meth:`Deployment.teardown` SIGTERMs, then
SIGKILLs, every started process group and every tagged process found by scanning
``/proc``. Nothing here knows about Flower; see :mod:`fedhar.federated.deployment`.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

TAG_ENV_VAR = "FEDHAR_DEPLOYMENT_TAG"
TERM_GRACE_S = 10.0  # SIGTERM -> SIGKILL
KILL_WAIT_S = 5.0
POLL_S = 0.25


def leftover_processes(pids: list[int] | set[int] | tuple[int, ...], *,
                       tag: str | None = None) -> list[int]:
    """Return the pids in ``pids`` that are still alive (zombies count as gone).

    With ``tag`` (a deployment's ``FEDHAR_DEPLOYMENT_TAG``), only pids that still carry
    it count, so a pid reused by an unrelated process is not reported.
    """
    needle = f"{TAG_ENV_VAR}={tag}".encode() if tag is not None else None
    return sorted(pid for pid in set(pids)
                  if _alive(pid) and (needle is None or _has_env_entry(pid, needle)))


def tagged_processes(tag: str) -> list[int]:
    """Return live pids whose environment holds ``FEDHAR_DEPLOYMENT_TAG=<tag>``.

    Linux only (reads ``/proc/<pid>/environ``); returns ``[]`` elsewhere.
    """
    needle = f"{TAG_ENV_VAR}={tag}".encode()
    return sorted(pid for pid in _all_pids() if pid != os.getpid() and _has_env_entry(pid, needle) and _alive(pid))


@dataclass
class Proc:
    name: str
    cmd: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes] | None = None


@dataclass
class Deployment:
    workdir: Path
    tag: str
    bindir: Path
    base_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    seen_pids: set[int] = field(default_factory=set)
    run_id: str | None = None
    run_status: dict[str, Any] | None = None
    survivors: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    def mark(self, name: str) -> None:
        self.timings[name] = round(time.monotonic() - self._t0, 2)

    # ---- process management
    def start(self, name: str, cmd: list[str], flwr_home: Path | None,
              log_path: Path, capture: bool = False) -> Proc:
        proc_env = dict(self.base_env)
        if flwr_home is not None:
            flwr_home.mkdir(parents=True, exist_ok=True)
            proc_env["FLWR_HOME"] = str(flwr_home)
        log_file = None if capture else log_path.open("wb")
        popen = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else log_file,
            stderr=subprocess.STDOUT,
            env=proc_env,
            cwd=str(self.workdir),
            start_new_session=True,
        )
        proc = Proc(name=name, cmd=cmd, log_path=log_path, popen=popen, log_file=log_file)
        self.procs.append(proc)
        self.seen_pids.add(popen.pid)
        self.write_manifest()
        return proc

    def sample_pids(self) -> None:
        """Record every live pid of this deployment (for the manifest and tests)."""
        self.seen_pids.update(self._targets())

    def _targets(self) -> set[int]:
        roots = {p.popen.pid for p in self.procs if p.popen.poll() is None}
        return (set(tagged_processes(self.tag)) | _descendants(roots) | roots) - {os.getpid()}

    def teardown(self) -> None:
        """SIGTERM every started process group and tagged process, then SIGKILL."""
        self.mark("teardown_started_s")
        own_pgrp = os.getpgrp()
        targets = self._targets()
        self.seen_pids.update(targets)
        for sig, wait_s in ((signal.SIGTERM, TERM_GRACE_S), (signal.SIGKILL, KILL_WAIT_S)):
            for proc in self.procs:
                if proc.popen.poll() is None:
                    _signal_group(proc.popen.pid, sig, own_pgrp)
            ours = _descendants({os.getpid()})
            for pid in targets:
                _signal_pid(pid, sig, self.tag, own_pgrp, ours)
            end = time.monotonic() + wait_s
            while time.monotonic() < end:
                for proc in self.procs:
                    proc.popen.poll()  # reap our direct children
                targets = {pid for pid in self._targets() | targets if _alive(pid)}
                self.seen_pids.update(targets)
                if not targets:
                    break
                time.sleep(POLL_S)
            if not targets:
                break
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=1)
            if proc.log_file is not None:
                proc.log_file.close()
        self.survivors = sorted(set(leftover_processes(self.seen_pids, tag=self.tag))
                                | set(tagged_processes(self.tag))
                                | {p.popen.pid for p in self.procs if p.popen.poll() is None})
        self.mark("teardown_done_s")

    # ---- bookkeeping
    def write_manifest(self) -> None:
        manifest = {
            "tag": self.tag,
            "tag_env_var": TAG_ENV_VAR,
            "ports": self.ports,
            "processes": [
                {"name": p.name, "pid": p.popen.pid, "cmd": p.cmd, "log": str(p.log_path),
                 "returncode": p.popen.returncode}
                for p in self.procs
            ],
            "seen_pids": sorted(self.seen_pids),
            "survivors": self.survivors,
            "run_id": self.run_id,
            "run_status": self.run_status,
            "timings": self.timings,
        }
        path = self.workdir / "deployment.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        tmp.replace(path)


def raise_on_sigterm() -> Callable[[], None]:
    """Turn SIGTERM into SystemExit, so teardown (``finally`` blocks) still happens.

    Returns a function that restores the previous handler (a no-op off the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def _handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, _handler)
    except ValueError:  # pragma: no cover - not the main interpreter
        return lambda: None

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)

    return restore


# ---- /proc helpers (Linux); harmless no-ops elsewhere


def _all_pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Return (state, ppid, pgrp) from ``/proc/<pid>/stat``, or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2:].split()
    try:
        return fields[0], int(fields[1]), int(fields[2])
    except (IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    if os.path.isdir("/proc"):
        st = _stat(pid)
        return st is not None and st[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _has_env_entry(pid: int, needle: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return needle in data.split(b"\0")


def _descendants(roots: set[int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        st = _stat(pid)
        if st is not None:
            children.setdefault(st[1], []).append(pid)
    found: set[int] = set()
    stack = list(roots)
    while stack:
        for child in children.get(stack.pop(), []):
            if child not in found:
                found.add(child)
                stack.append(child)
    return {pid for pid in found if _alive(pid)}


def _signal_group(pgid: int, sig: int, own_pgrp: int) -> None:
    if pgid <= 1 or pgid == own_pgrp:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _signal_pid(pid: int, sig: int, tag: str, own_pgrp: int, ours: set[int]) -> None:
    """Signal a discovered process (and its group if it leads one); skip foreign pids."""
    if pid <= 1 or pid == os.getpid():
        return
    st = _stat(pid)
    if os.path.isdir("/proc") and (st is None or st[0] in ("Z", "X")):
        return
    # Guard against pid reuse: only processes that still carry our tag, or that are
    # still descendants of this process, are signalled.
    if not (pid in ours or _has_env_entry(pid, f"{TAG_ENV_VAR}={tag}".encode())):
        return
    if st is not None and st[2] == pid:
        _signal_group(pid, sig, own_pgrp)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
