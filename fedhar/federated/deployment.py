"""Run a Flower App on a real, local Deployment Engine and always tear it down.

:func:`run_deployment` starts one ``flower-superlink`` and N ``flower-supernode``
processes on loopback, submits the app with ``flwr run``, waits for the run, checks
its final status, and in ``finally`` stops every process it started (including the
``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp`` processes that Flower
starts itself). It needs nothing from the network.

Flower 1.41 layout (verified against the installed ``flwr`` source)
-------------------------------------------------------------------
* The SuperLink serves its Runtime API (the former ServerAppIo API), its Control API
  and its Fleet API on **one** HTTP port (``--host``/``--port``, default 8000). The old
  ``--fleet-api-address``/``--control-api-address`` flags are deprecated no-ops and
  ``--serverappio-api-address`` is rejected.
* Each SuperNode serves its Runtime API (the former ClientAppIo API) on its own
  ``--port`` (default 9094), which its SuperExec polls. So one free port for the
  SuperLink plus one per SuperNode is all that is needed; they are found by binding
  to port 0 on 127.0.0.1.
* With the default ``--isolation subprocess`` the SuperLink starts
  ``flower-superexec`` **in a new session** (``start_new_session=True``), which starts
  ``flwr-serverapp``; each SuperNode starts ``flower-superexec`` (same process group),
  which starts one short-lived ``flwr-clientapp`` per message. Killing the
  SuperLink's process group therefore does not reach the ServerApp side, which is why
  teardown also kills every process carrying this deployment's tag (below).
* ``flwr run --stream`` exits 0 even when the ServerApp raised, so the run's final
  status is read with ``flwr ls --run-id``; anything but ``finished:completed`` raises.

Exact commands (``<bin>`` is the directory of ``sys.executable``; ``<P>`` the
SuperLink port, ``<Pi>`` SuperNode i's port, ``<W>`` the ``workdir``)::

    <bin>/flower-superlink --insecure --host 127.0.0.1 --port <P> \\
        --disable-runtime-dependency-installation                     # > <W>/superlink.log
    <bin>/flower-supernode --insecure --superlink 127.0.0.1:<P> --host 127.0.0.1 \\
        --port <Pi> --node-config 'partition-id=<i> num-partitions=<N> ...'
                                                                   # > <W>/supernode-<i>.log
    <bin>/flwr run <app_dir> fedhar-local --stream [--run-config <W>/run-config.toml]
                                                                   # > <W>/flwr-run.log
    <bin>/flwr ls fedhar-local --run-id <run-id> --format json      # > <W>/flwr-ls.json

Each process is started with ``start_new_session=True``, stdout+stderr to its log, and
this environment on top of ``os.environ`` and ``env``: ``FLWR_TELEMETRY_ENABLED=0``,
``FLWR_DISABLE_UPDATE_CHECK=1``, ``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1``,
``PATH=<bin>:$PATH`` (Flower starts ``flower-superexec``/``flwr-*app`` by bare name),
``NO_PROXY`` extended with ``127.0.0.1,localhost`` (Flower's httpx clients honour
proxy variables), ``PYTHONUNBUFFERED=1``, ``FEDHAR_DEPLOYMENT_TAG=<uuid>`` and its own
``FLWR_HOME``:

* ``<W>/flwr-home/cli/config.toml`` holds the connection ``flwr run`` uses::

      [superlink]
      default = "fedhar-local"

      [superlink.fedhar-local]
      address = "127.0.0.1:<P>"
      insecure = true

* ``<W>/flwr-home/superlink`` and ``<W>/flwr-home/supernode-<i>`` are where the
  ServerApp and each ClientApp install the FAB. They are separate on purpose: the FAB
  installer returns early when the target directory exists, so two ClientApps sharing
  one ``FLWR_HOME`` could import a half-copied app.

Run config: ``run_config`` (and/or the table in ``run_config_file``, flattened, with
``run_config`` winning) is written to ``<W>/run-config.toml`` and passed as a single
``--run-config`` file; Flower does not accept a TOML file together with ``k=v`` pairs,
and a file avoids its ``k=v`` quoting rules. Keys must exist in the app's
``[tool.flwr.app.config]``.

How the app reaches the nodes
-----------------------------
``flwr run`` builds a FAB (a zip) from ``app_dir`` in memory and sends it to the
SuperLink. Only ``**/*.py, *.toml, *.md, *.yaml, *.yml, *.json, *.jsonl``, ``/LICENSE``
and ``/.gitignore`` are kept; ``.venv/``, ``.flwr/``, ``__pycache__/``, ``build/``,
``**/test_*.py``, ``**/*_test.py`` and whatever the app root's ``.gitignore`` lists
are dropped (only the root ``.gitignore`` is read); ``[tool.flwr.app] fab-include`` /
``fab-exclude`` narrow it further. The FAB may be at most 10 MB and 10 directories
deep. ``flwr-serverapp``/``flwr-clientapp`` unzip it into
``$FLWR_HOME/apps/<publisher>.<name>.<version>.<hash8>/`` and put that directory first
on ``sys.path`` before importing the ``[tool.flwr.app.components]`` references, so
the app's package needs no installation; its *dependencies* (numpy, torch, fedhar
itself if the FAB does not ship it) must already be importable in this environment,
because runtime dependency installation is disabled. A package shipped in the FAB
shadows an installed one of the same name.

Process tracking and teardown
-----------------------------
Every process inherits ``FEDHAR_DEPLOYMENT_TAG``; teardown finds them by reading
``/proc/<pid>/environ`` (plus the live descendants of the processes started here),
sends SIGTERM to each started process group and to each tagged process, waits up to
``TERM_GRACE_S``, then SIGKILLs what is left. ``<W>/deployment.json`` records ports,
commands, log files, the tag and every pid seen, so callers and tests can check that
nothing survived (see :func:`leftover_processes` and :func:`tagged_processes`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable

from fedhar.exceptions import ConfigError, FederationError

try:  # Python >= 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10 (tomli ships with flwr)
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = [
    "CONNECTION_NAME",
    "TAG_ENV_VAR",
    "leftover_processes",
    "run_deployment",
    "tagged_processes",
]

CONNECTION_NAME = "fedhar-local"
TAG_ENV_VAR = "FEDHAR_DEPLOYMENT_TAG"
HOST = "127.0.0.1"
FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
STARTUP_TIMEOUT_S = 90.0  # SuperLink healthy + every SuperNode registered
STARTUP_ATTEMPTS = 3  # fresh ports when a bind loses a race
TERM_GRACE_S = 10.0  # SIGTERM -> SIGKILL
KILL_WAIT_S = 5.0
POLL_S = 0.25
TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RUN_ID = re.compile(r"Successfully started run (\d+)")
_SUPERNODE_REGISTERED = "SuperNode ID:"


# --------------------------------------------------------------------------- public API


def run_deployment(
    app_dir: Path,
    *,
    supernodes: int,
    node_configs: list[dict[str, int | str]],
    run_config: dict[str, bool | int | float | str] | None = None,
    run_config_file: Path | None = None,
    workdir: Path,
    timeout_s: float = 1800,
    env: dict[str, str] | None = None,
    stream: bool = True,
) -> int:
    """Run ``app_dir`` on a fresh local SuperLink + ``supernodes`` SuperNodes.

    ``node_configs[i]`` is merged over ``{"partition-id": i, "num-partitions": N}`` for
    SuperNode i (an empty list means just those defaults). ``timeout_s`` bounds the
    whole call (startup and run). With ``stream`` the run's logs are echoed to stdout
    as well as written to ``workdir/flwr-run.log``.

    Returns the exit code of ``flwr run`` (0). Raises :class:`FederationError`, with
    the tail of the relevant log, if startup fails, a process dies, the run times out,
    ``flwr run`` fails or the run does not finish as ``finished:completed``. All
    processes are stopped before returning or raising.
    """
    app_dir = Path(app_dir).resolve()
    workdir = Path(workdir).resolve()
    _validate_args(app_dir, supernodes, node_configs, run_config_file, timeout_s)
    deadline = time.monotonic() + timeout_s
    workdir.mkdir(parents=True, exist_ok=True)

    dep = _Deployment(workdir=workdir, tag=uuid.uuid4().hex, bindir=_flower_bindir())
    dep.base_env = _child_env(dep.bindir, dep.tag, env)
    restore_sigterm = _raise_on_sigterm()
    try:
        return _run(dep, app_dir, supernodes, node_configs, run_config, run_config_file,
                    deadline, timeout_s, stream)
    finally:
        try:
            dep.teardown()
            dep.write_manifest()
        finally:
            restore_sigterm()


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
    own = os.getpid()
    found = []
    for pid in _all_pids():
        if pid != own and _has_env_entry(pid, needle) and _alive(pid):
            found.append(pid)
    return sorted(found)


# --------------------------------------------------------------------------- internals


@dataclass
class _Proc:
    name: str
    cmd: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    log_file: IO[bytes] | None = None


@dataclass
class _Deployment:
    workdir: Path
    tag: str
    bindir: Path
    base_env: dict[str, str] = field(default_factory=dict)
    procs: list[_Proc] = field(default_factory=list)
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
              log_path: Path, capture: bool = False) -> _Proc:
        proc_env = dict(self.base_env)
        if flwr_home is not None:
            flwr_home.mkdir(parents=True, exist_ok=True)
            proc_env["FLWR_HOME"] = str(flwr_home)
        log_file = None
        if capture:
            stdout: Any = subprocess.PIPE
        else:
            log_file = log_path.open("wb")
            stdout = log_file
        popen = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            env=proc_env,
            cwd=str(self.workdir),
            start_new_session=True,
        )
        proc = _Proc(name=name, cmd=cmd, log_path=log_path, popen=popen, log_file=log_file)
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
            try:
                proc.popen.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
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


def _run(
    dep: _Deployment,
    app_dir: Path,
    supernodes: int,
    node_configs: list[dict[str, int | str]],
    run_config: dict[str, bool | int | float | str] | None,
    run_config_file: Path | None,
    deadline: float,
    timeout_s: float,
    stream: bool,
) -> int:
    workdir, bindir = dep.workdir, dep.bindir
    cli_home = workdir / "flwr-home" / "cli"
    run_config_path = _write_run_config(workdir, run_config, run_config_file)
    for attempt in range(1, STARTUP_ATTEMPTS + 1):
        try:
            superlink, nodes = _start_cluster(dep, supernodes, node_configs, deadline)
            break
        except _PortTaken as err:
            # Another process grabbed a port between our probe and the bind: retry.
            dep.teardown()
            if attempt == STARTUP_ATTEMPTS:
                raise FederationError(_msg(f"ports kept being taken ({attempt} attempts)",
                                           [err.proc])) from None
    _write_connection_config(cli_home, dep.ports["superlink"])

    # 3. flwr run
    cmd = [str(bindir / "flwr"), "run", str(app_dir), CONNECTION_NAME, "--stream"]
    if run_config_path is not None:
        cmd += ["--run-config", str(run_config_path)]
    run_log = workdir / "flwr-run.log"
    runner = dep.start("flwr-run", cmd, cli_home, run_log, capture=True)
    pump = threading.Thread(target=_pump, args=(runner.popen, run_log, stream), daemon=True)
    pump.start()
    next_sample = 0.0
    while runner.popen.poll() is None:
        now = time.monotonic()
        if now > deadline:
            pump.join(timeout=0.1)
            raise FederationError(_msg(f"the run did not finish within timeout_s={timeout_s:g} s",
                                       [runner, superlink, *nodes]))
        dead = [p for p in (superlink, *nodes) if p.popen.poll() is not None]
        if dead:
            pump.join(timeout=2)
            raise FederationError(_msg(f"{dead[0].name} exited (code {dead[0].popen.returncode}) "
                                       "during the run", [*dead, runner]))
        if now >= next_sample:
            dep.sample_pids()
            next_sample = now + 1.0
        time.sleep(POLL_S)
    pump.join(timeout=10)
    dep.mark("flwr_run_exited_s")
    rc = runner.popen.returncode
    match = _RUN_ID.search(_read_text(run_log))
    dep.run_id = match.group(1) if match else None
    if rc != 0 or dep.run_id is None:
        raise FederationError(_msg(f"`flwr run` failed with exit code {rc}", [runner, superlink]))

    # 4. Final run status (`flwr run --stream` exits 0 even if the ServerApp raised).
    dep.run_status = _run_status(dep, cli_home, dep.run_id, deadline)
    status = str(dep.run_status.get("status", "?"))
    if status != "finished:completed":
        details = dep.run_status.get("status-details", "")
        raise FederationError(_msg(f"run {dep.run_id} ended as {status!r}: {details}",
                                   [runner, superlink, *nodes]))
    return rc


class _PortTaken(Exception):
    def __init__(self, proc: _Proc) -> None:
        super().__init__(proc.name)
        self.proc = proc


def _check_startup(procs: list[_Proc], what: str) -> None:
    """Raise if a process exited; :class:`_PortTaken` if it lost a port race."""
    for proc in procs:
        if proc.popen.poll() is not None:
            if "address already in use" in _read_text(proc.log_path).lower():
                raise _PortTaken(proc)
            raise FederationError(_msg(f"{what}: {proc.name} exited with code "
                                       f"{proc.popen.returncode}", [proc]))


def _start_cluster(dep: _Deployment, supernodes: int, node_configs: list[dict[str, int | str]],
                   deadline: float) -> tuple[_Proc, list[_Proc]]:
    """Start the SuperLink, wait until it serves, start the SuperNodes, wait until registered."""
    workdir, bindir = dep.workdir, dep.bindir
    homes = workdir / "flwr-home"
    ports = _free_ports(1 + supernodes)
    dep.ports = {"superlink": ports[0], **{f"supernode-{i}": p for i, p in enumerate(ports[1:])}}
    startup_end = min(deadline, time.monotonic() + STARTUP_TIMEOUT_S)

    superlink = dep.start(
        "superlink",
        [str(bindir / "flower-superlink"), "--insecure", "--host", HOST, "--port", str(ports[0]),
         "--disable-runtime-dependency-installation"],
        homes / "superlink", workdir / "superlink.log",
    )
    # Ready = /health answers AND our uvicorn reports it bound this port (so a foreign
    # server that grabbed the port cannot be mistaken for ours).
    bound = f"Uvicorn running on http://{HOST}:{ports[0]}"
    while not (bound in _read_text(superlink.log_path)
               and _http_ok(f"http://{HOST}:{ports[0]}/health")):
        _check_startup([superlink], "SuperLink failed to start")
        if time.monotonic() > startup_end:
            raise FederationError(_msg("SuperLink did not become healthy in time", [superlink]))
        time.sleep(POLL_S)
    dep.mark("superlink_healthy_s")

    nodes: list[_Proc] = []
    for i in range(supernodes):
        cfg: dict[str, int | str] = {"partition-id": i, "num-partitions": supernodes}
        if node_configs:
            cfg.update(node_configs[i])
        nodes.append(dep.start(
            f"supernode-{i}",
            [str(bindir / "flower-supernode"), "--insecure", "--superlink", f"{HOST}:{ports[0]}",
             "--host", HOST, "--port", str(ports[1 + i]), "--node-config", _node_config_arg(cfg)],
            homes / f"supernode-{i}", workdir / f"supernode-{i}.log",
        ))
    pending = list(nodes)
    while pending:
        _check_startup([superlink, *nodes], "a Deployment Engine process exited during startup")
        pending = [n for n in pending if _SUPERNODE_REGISTERED not in _read_text(n.log_path)]
        if pending and time.monotonic() > startup_end:
            raise FederationError(_msg(
                f"{len(pending)} SuperNode(s) did not register with the SuperLink in time",
                [*pending, superlink]))
        if pending:
            time.sleep(POLL_S)
    dep.sample_pids()
    dep.mark("supernodes_registered_s")
    return superlink, nodes


def _run_status(dep: _Deployment, cli_home: Path, run_id: str, deadline: float) -> dict[str, Any]:
    """Return the run's entry from ``flwr ls --run-id``; wait briefly if not finished."""
    cmd = [str(dep.bindir / "flwr"), "ls", CONNECTION_NAME, "--run-id", run_id, "--format", "json"]
    env = dict(dep.base_env, FLWR_HOME=str(cli_home))
    end = min(deadline, time.monotonic() + 30)
    entry: dict[str, Any] = {}
    while True:
        res = subprocess.run(cmd, env=env, cwd=dep.workdir, capture_output=True, timeout=60,
                             start_new_session=True, check=False)
        (dep.workdir / "flwr-ls.json").write_bytes(res.stdout + res.stderr)
        try:
            payload = json.loads(res.stdout.decode("utf-8", "replace"))
            entry = next(r for r in payload.get("runs", []) if str(r.get("run-id")) == run_id)
        except (ValueError, StopIteration, AttributeError):
            entry = {"status": "unknown", "status-details": _tail_text(
                (res.stdout + res.stderr).decode("utf-8", "replace"))}
        if str(entry.get("status", "")).startswith("finished") or time.monotonic() > end:
            return entry
        time.sleep(1.0)


def _raise_on_sigterm() -> Callable[[], None]:
    """While a deployment runs, turn SIGTERM into SystemExit so teardown still happens.

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


def _validate_args(app_dir: Path, supernodes: int, node_configs: list[dict[str, int | str]],
                   run_config_file: Path | None, timeout_s: float) -> None:
    if not (app_dir / "pyproject.toml").is_file():
        raise ConfigError(f"Flower app directory {app_dir} has no pyproject.toml.")
    if supernodes < 1:
        raise ConfigError(f"`supernodes` must be at least 1; got {supernodes}.")
    if node_configs and len(node_configs) != supernodes:
        raise ConfigError(f"`node_configs` must have one entry per SuperNode ({supernodes}); "
                          f"got {len(node_configs)}.")
    if run_config_file is not None and not Path(run_config_file).is_file():
        raise ConfigError(f"Run-config file {run_config_file} does not exist.")
    if timeout_s <= 0:
        raise ConfigError(f"`timeout_s` must be positive; got {timeout_s}.")


def _flower_bindir() -> Path:
    bindir = Path(sys.executable).parent
    if (bindir / "flower-superlink").exists():
        return bindir
    found = shutil.which("flower-superlink")
    if found is None:
        raise FederationError("`flower-superlink` is not installed in this environment "
                              f"({bindir}); install flwr.")
    return Path(found).parent


def _child_env(bindir: Path, tag: str, extra: dict[str, str] | None) -> dict[str, str]:
    child = dict(os.environ)
    child.update(extra or {})
    child.update(FLOWER_ENV)
    child[TAG_ENV_VAR] = tag
    child["PYTHONUNBUFFERED"] = "1"
    child["PATH"] = os.pathsep.join([str(bindir), child.get("PATH", "")])
    for key in ("NO_PROXY", "no_proxy"):
        parts = [p for p in child.get(key, "").split(",") if p]
        child[key] = ",".join([*parts, *(h for h in ("127.0.0.1", "localhost") if h not in parts)])
    return child


def _free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free loopback TCP ports (all sockets held, then released)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _write_connection_config(cli_home: Path, port: int) -> Path:
    cli_home.mkdir(parents=True, exist_ok=True)
    path = cli_home / "config.toml"
    path.write_text(
        f'[superlink]\ndefault = "{CONNECTION_NAME}"\n\n'
        f'[superlink.{CONNECTION_NAME}]\naddress = "{HOST}:{port}"\ninsecure = true\n',
        encoding="utf-8",
    )
    return path


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


def _write_run_config(workdir: Path, run_config: dict[str, Any] | None,
                      run_config_file: Path | None) -> Path | None:
    if run_config is None and run_config_file is None:
        return None
    merged: dict[str, Any] = {}
    if run_config_file is not None:
        try:
            merged.update(_flatten(tomllib.loads(Path(run_config_file).read_text("utf-8"))))
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ConfigError(f"Cannot read run-config file {run_config_file}: {err}") from err
    merged.update(run_config or {})
    lines = []
    for key, value in merged.items():
        if not isinstance(value, (bool, int, float, str)):
            raise ConfigError(f"Run-config value for {key!r} must be bool, int, float or str; "
                              f"got {type(value).__name__}.")
        lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    path = workdir / "run-config.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml_value(value: bool | int | float | str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            return text
        return text if any(c in text for c in ".en") else text + ".0"
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _node_config_arg(cfg: dict[str, int | str]) -> str:
    """Format ``--node-config`` (Flower parses ``k=v`` pairs split on whitespace)."""
    parts = []
    for key, value in cfg.items():
        if not key or any(c.isspace() for c in key) or "=" in key:
            raise ConfigError(f"Invalid node-config key {key!r}.")
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"Node-config value for {key!r} must be int or str.")
        if isinstance(value, str):
            if '"' not in value and "\\" not in value and "\n" not in value:
                text = f'"{value}"'
            elif "'" not in value and "\n" not in value:
                text = f"'{value}'"
            else:
                raise ConfigError(f"Node-config value for {key!r} cannot be quoted: {value!r}.")
        else:
            text = _toml_value(value)
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _pump(popen: subprocess.Popen[bytes], log_path: Path, echo: bool) -> None:
    """Copy the child's output to its log (and stdout when ``echo``)."""
    assert popen.stdout is not None
    with log_path.open("wb") as log:
        for line in iter(popen.stdout.readline, b""):
            log.write(line)
            log.flush()
            if echo:
                try:
                    sys.stdout.write(line.decode("utf-8", "replace"))
                    sys.stdout.flush()
                except (OSError, ValueError):
                    echo = False
    popen.stdout.close()


def _http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=2) as res:
            return 200 <= res.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def _tail_text(text: str, lines: int = TAIL_LINES) -> str:
    """Last ``lines`` lines without ANSI colours or uvicorn access-log noise."""
    kept = [ln for ln in _ANSI.sub("", text).rstrip().splitlines() if "[uvicorn.access]" not in ln]
    return "\n".join(kept[-lines:])


def _msg(what: str, procs: list[_Proc]) -> str:
    """Build a FederationError reason: ``what`` plus the tail of each process's log."""
    parts = [f"Local Flower deployment: {what}."]
    seen: set[Path] = set()
    for proc in procs:
        if proc.log_path in seen:
            continue
        seen.add(proc.log_path)
        parts.append(f"--- last {TAIL_LINES} lines of {proc.log_path} ---\n"
                     f"{_tail_text(_read_text(proc.log_path)) or '(empty)'}")
    return "\n".join(parts)


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
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


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
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
