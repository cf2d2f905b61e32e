"""Flower specifics of the local Deployment Engine: ports, ``FLWR_HOME``, run config,
SuperLink/SuperNode startup and readiness, ``flwr run`` / ``flwr ls``.

The exact commands, environment and files are documented in the
:mod:`fedhar.federated.deployment` package docstring.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Sequence

from fedhar.exceptions import ConfigError, FederationError
from fedhar.federated.deployment.processes import POLL_S, TAG_ENV_VAR, Deployment, Proc, raise_on_sigterm

CONNECTION_NAME = "fedhar-local"
HOST = "127.0.0.1"
FLOWER_ENV = {
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
}
STARTUP_TIMEOUT_S = 90.0  # SuperLink healthy + every SuperNode registered
STARTUP_ATTEMPTS = 3  # fresh ports when a bind loses a race
TAIL_LINES = 40
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_RUN_ID = re.compile(r"Successfully started run (\d+)")
_SUPERNODE_REGISTERED = "SuperNode ID:"


def run_deployment(
    app_dir: Path,
    *,
    supernodes: int,
    node_configs: Sequence[dict[str, int | str]] = (),
    run_config: dict[str, bool | int | float | str] | None = None,
    workdir: Path,
    timeout_s: float = 1800,
    env: dict[str, str] | None = None,
    stream: bool = True,
    simulation: bool = False,
) -> int:
    """Run ``app_dir`` on a fresh local SuperLink + ``supernodes`` SuperNodes.

    ``node_configs[i]`` is merged over ``{"partition-id": i, "num-partitions": N}`` for
    SuperNode i (an empty list means just those defaults). With ``simulation`` no
    SuperLink or SuperNode is started here: ``flwr run`` starts its own local SuperLink,
    as a plain ``flwr run .`` does, with ``--federation-config num-supernodes=N``; free
    ports and a private ``FLWR_HOME`` keep it apart, and teardown stops it. ``timeout_s``
    bounds the whole call (startup and run). With ``stream`` the run's logs are echoed
    to stdout as well as written to ``workdir/flwr-run.log``.

    Returns the exit code of ``flwr run`` (0). Raises :class:`FederationError`, with
    the tail of the relevant log, if startup fails, a process dies, the run times out,
    ``flwr run`` fails or the run does not finish as ``finished:completed``. All
    processes are stopped before returning or raising.
    """
    app_dir = Path(app_dir).resolve()
    workdir = Path(workdir).resolve()
    _validate_args(app_dir, supernodes, node_configs, timeout_s, simulation)
    deadline = time.monotonic() + timeout_s
    workdir.mkdir(parents=True, exist_ok=True)

    dep = Deployment(workdir=workdir, tag=uuid.uuid4().hex, bindir=_flower_bindir())
    dep.base_env = _child_env(dep.bindir, dep.tag, env)
    restore_sigterm = raise_on_sigterm()
    try:
        if simulation:
            ports = _free_ports(2)
            dep.ports = {"superlink": ports[0], "control": ports[1]}
            dep.base_env.update(FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=str(ports[0]),
                                FLWR_LOCAL_CONTROL_API_PORT=str(ports[1]))
            watched, connection = [], ["--federation-config", f"num-supernodes={supernodes}"]
        else:
            watched, connection = _start_deployment(dep, supernodes, node_configs, deadline), [CONNECTION_NAME]
        return _flwr_run(dep, app_dir, connection, write_run_config(workdir, run_config), watched, deadline, timeout_s,
                         stream)
    finally:
        try:
            dep.teardown()
            dep.write_manifest()
        finally:
            restore_sigterm()


def _start_deployment(dep: Deployment, supernodes: int, node_configs: Sequence[dict[str, int | str]],
                      deadline: float) -> list[Proc]:
    """Start the SuperLink and SuperNodes (fresh ports on a lost bind race) and point the CLI at them."""
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
    _write_connection_config(dep.workdir / "flwr-home" / "cli", dep.ports["superlink"])
    return [superlink, *nodes]


def _flwr_run(dep: Deployment, app_dir: Path, connection: list[str], run_config_path: Path | None,
              watched: list[Proc], deadline: float, timeout_s: float, stream: bool) -> int:
    """``flwr run`` on ``connection`` (ours, or options for Flower's default local one), then the run's
    final status, while the ``watched`` processes stay alive."""
    workdir, cli_home = dep.workdir, dep.workdir / "flwr-home" / "cli"
    cmd = [str(dep.bindir / "flwr"), "run", str(app_dir), *connection, "--stream"]
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
                                       [runner, *watched]))
        dead = [p for p in watched if p.popen.poll() is not None]
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
        raise FederationError(_msg(f"`flwr run` failed with exit code {rc}", [runner, *watched[:1]]))

    # `flwr run --stream` exits 0 even if the ServerApp raised: read the final status.
    dep.run_status = _run_status(dep, cli_home, [c for c in connection if c == CONNECTION_NAME], dep.run_id, deadline)
    status = str(dep.run_status.get("status", "?"))
    if status != "finished:completed":
        details = dep.run_status.get("status-details", "")
        raise FederationError(_msg(f"run {dep.run_id} ended as {status!r}: {details}", [runner, *watched]))
    return rc


class _PortTaken(Exception):
    def __init__(self, proc: Proc) -> None:
        super().__init__(proc.name)
        self.proc = proc


def _check_startup(procs: list[Proc], what: str) -> None:
    """Raise if a process exited; :class:`_PortTaken` if it lost a port race."""
    for proc in procs:
        if proc.popen.poll() is not None:
            if "address already in use" in _read_text(proc.log_path).lower():
                raise _PortTaken(proc)
            raise FederationError(_msg(f"{what}: {proc.name} exited with code "
                                       f"{proc.popen.returncode}", [proc]))


def _start_cluster(dep: Deployment, supernodes: int, node_configs: Sequence[dict[str, int | str]],
                   deadline: float) -> tuple[Proc, list[Proc]]:
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

    nodes: list[Proc] = []
    for i in range(supernodes):
        cfg: dict[str, int | str] = {"partition-id": i, "num-partitions": supernodes}
        if node_configs:
            cfg.update(node_configs[i])
        nodes.append(dep.start(
            f"supernode-{i}",
            [str(bindir / "flower-supernode"), "--insecure", "--superlink", f"{HOST}:{ports[0]}",
             "--host", HOST, "--port", str(ports[1 + i]), "--node-config", node_config_arg(cfg)],
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


def _run_status(dep: Deployment, cli_home: Path, connection: list[str], run_id: str, deadline: float) -> dict[str, Any]:
    """Return the run's entry from ``flwr ls --run-id``; wait briefly if not finished."""
    cmd = [str(dep.bindir / "flwr"), "ls", *connection, "--run-id", run_id, "--format", "json"]
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


def _validate_args(app_dir: Path, supernodes: int, node_configs: Sequence[dict[str, int | str]],
                   timeout_s: float, simulation: bool) -> None:
    if not (app_dir / "pyproject.toml").is_file():
        raise ConfigError(f"Flower app directory {app_dir} has no pyproject.toml.")
    if supernodes < 1:
        raise ConfigError(f"`supernodes` must be at least 1; got {supernodes}.")
    if node_configs and len(node_configs) != supernodes:
        raise ConfigError(f"`node_configs` must have one entry per SuperNode ({supernodes}); "
                          f"got {len(node_configs)}.")
    if simulation and node_configs:
        raise ConfigError("`node_configs` cannot be set with `simulation`: Flower's Simulation Runtime numbers the nodes.")
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


def _write_connection_config(cli_home: Path, port: int) -> None:
    cli_home.mkdir(parents=True, exist_ok=True)
    (cli_home / "config.toml").write_text(f'[superlink]\ndefault = "{CONNECTION_NAME}"\n\n[superlink.{CONNECTION_NAME}]\n'
                                          f'address = "{HOST}:{port}"\ninsecure = true\n', encoding="utf-8")


def write_run_config(workdir: Path, run_config: dict[str, Any] | None) -> Path | None:
    """``run_config`` as ``workdir/run-config.toml``: one ``--run-config`` file, free of ``k=v`` quoting rules."""
    if run_config is None:
        return None
    lines = []
    for key, value in run_config.items():
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
    if isinstance(value, (int, float)):
        return repr(value)  # a float's repr always has a point or an exponent (or is inf/nan), as TOML wants
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def node_config_arg(cfg: dict[str, int | str]) -> str:
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


def _msg(what: str, procs: list[Proc]) -> str:
    """Build a FederationError reason: ``what`` plus the tail of each process's log."""
    parts = [f"Local Flower deployment: {what}."]
    for log in dict.fromkeys(proc.log_path for proc in procs):  # each log once
        parts.append(f"--- last {TAIL_LINES} lines of {log} ---\n{_tail_text(_read_text(log)) or '(empty)'}")
    return "\n".join(parts)
