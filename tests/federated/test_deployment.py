"""Real local Flower runs: flower-superlink + 2 flower-supernode + `flwr run`, and a plain
`flwr run .` of fedhar itself on the SuperLink Flower starts for it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedhar.config import load_config
from fedhar.exceptions import FederationError
from fedhar.federated.deployment import (
    leftover_processes,
    node_config_arg,
    run_deployment,
    tagged_processes,
    write_run_config,
)
from fedhar.federated.server_app import fit_to_federation

APP_DIR = Path(__file__).parent / "deploy_app"
REPO = Path(__file__).resolve().parents[2]
FLOWER_COMMANDS = ("flower-superlink", "flower-supernode", "flower-superexec",
                   "flwr-serverapp", "flwr-clientapp", "flwr run", "flwr ls")


def _wait_until(condition, timeout_s: float, what: str, poll_s: float = 0.25) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout_s:g} s")
        time.sleep(poll_s)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _manifest(workdir: Path) -> dict:
    return json.loads((workdir / "deployment.json").read_text(encoding="utf-8"))


def _live_flower_processes(ports: list[int]) -> list[str]:
    """`ps` lines of live (non-zombie) Flower processes that use one of ``ports``."""
    out = subprocess.run(["ps", "-eo", "pid=,stat=,args="], capture_output=True, text=True,
                         check=True).stdout
    hits = []
    for line in out.splitlines():
        fields = line.split(None, 2)
        if len(fields) < 3 or fields[1].startswith("Z"):
            continue
        args = fields[2]
        if any(cmd in args for cmd in FLOWER_COMMANDS) and any(f":{p}" in args or f" {p}" in args
                                                               for p in ports):
            hits.append(line.strip())
    return hits


def _assert_nothing_left(workdir: Path, started_min: int = 3) -> dict:
    manifest = _manifest(workdir)
    ports = list(manifest["ports"].values())
    started = [p["pid"] for p in manifest["processes"]]
    # The SuperLink, both SuperNodes and `flwr run` were started (or only `flwr run`); Flower's
    # own children (superexecs, serverapp, clientapps) were seen while the run was going on.
    assert len(started) >= started_min
    assert len(manifest["seen_pids"]) > len(started)
    assert manifest["survivors"] == []
    # Let the kernel finish exits after SIGKILL (teardown already waited).
    _wait_until(lambda: not leftover_processes(manifest["seen_pids"], tag=manifest["tag"]), 5,
                "tagged processes still alive after teardown")
    assert leftover_processes(started) == []
    # Every pid seen (Flower's children too); the tag guards against pid reuse.
    assert leftover_processes(manifest["seen_pids"], tag=manifest["tag"]) == []
    assert tagged_processes(manifest["tag"]) == []
    assert _live_flower_processes(ports) == []
    return manifest


@pytest.mark.deployment
def test_two_supernodes_two_rounds(tmp_path: Path) -> None:
    workdir = tmp_path / "deploy"
    out_file = tmp_path / "marker.json"
    rc = run_deployment(
        APP_DIR,
        supernodes=2,
        node_configs=[{"partition-id": 0, "num-partitions": 2},
                      {"partition-id": 1, "num-partitions": 2}],
        run_config={"out-file": str(out_file), "num-server-rounds": 2},
        workdir=workdir,
        timeout_s=300,
        stream=True,
    )
    assert rc == 0
    marker = json.loads(out_file.read_text(encoding="utf-8"))
    assert marker["num-rounds"] == 2
    assert marker["partition-ids-per-round"] == {"1": [0, 1], "2": [0, 1]}
    # FedAvg (equal weights) of half-steps towards [1, -1] and [2, -2], twice, from 0.
    assert marker["final-arrays"] == pytest.approx([1.125, -1.125])

    manifest = _assert_nothing_left(workdir)
    assert manifest["run_status"]["status"] == "finished:completed"
    assert {p["name"] for p in manifest["processes"]} == {
        "superlink", "supernode-0", "supernode-1", "flwr-run"}
    # The ServerApp ran in a process of this deployment, and is gone too.
    assert marker["serverapp-pid"] in manifest["seen_pids"]
    assert (workdir / "flwr-home" / "cli" / "config.toml").is_file()


@pytest.mark.deployment
def test_failing_serverapp_raises_with_log_tail(tmp_path: Path) -> None:
    workdir = tmp_path / "deploy"
    with pytest.raises(FederationError) as excinfo:
        run_deployment(
            APP_DIR,
            supernodes=2,
            node_configs=[],
            run_config={"fail": True, "out-file": str(tmp_path / "never.json")},
            workdir=workdir,
            timeout_s=300,
            stream=False,
        )
    reason = excinfo.value.reason
    assert "finished:failed" in reason
    assert "failing on purpose" in reason  # from the ServerApp's traceback in the log tail
    assert "flwr-run.log" in reason
    assert not (tmp_path / "never.json").exists()
    manifest = _assert_nothing_left(workdir)
    assert manifest["run_status"]["status"] == "finished:failed"


@pytest.mark.deployment
def test_sigterm_to_caller_still_tears_down(tmp_path: Path) -> None:
    """A caller killed with SIGTERM mid-run still stops every Flower process."""
    workdir = tmp_path / "deploy"
    code = (
        "from pathlib import Path\n"
        "from fedhar.federated.deployment import run_deployment\n"
        f"run_deployment(Path({str(APP_DIR)!r}), supernodes=2, node_configs=[],\n"
        f"    run_config={{'num-server-rounds': 50}}, workdir=Path({str(workdir)!r}),\n"
        "    timeout_s=100, stream=False)\n"
    )
    caller = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    def under_way() -> bool:  # clients have trained: the ServerApp and ClientApps are live
        assert caller.poll() is None, caller.stderr.read().decode() if caller.stderr else ""
        return "[ROUND 2/" in _read(workdir / "flwr-run.log")

    try:
        _wait_until(under_way, 90, "the deployment did not reach round 2")
        caller.send_signal(signal.SIGTERM)
        assert caller.wait(timeout=40) == 128 + signal.SIGTERM
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    manifest = _assert_nothing_left(workdir)
    assert manifest["timings"]["teardown_done_s"] > 0


def test_config_formatting(tmp_path: Path) -> None:
    assert node_config_arg({"partition-id": 0, "num-partitions": 2, "name": "a b"}) == (
        'partition-id=0 num-partitions=2 name="a b"')
    path = write_run_config(tmp_path, {"lr": 1e-3, "fail": False, "note": 'say "hi"', "overrides": "a.b=1 c=[x, y]"})
    assert path is not None
    import tomllib

    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        "lr": 1e-3, "fail": False, "note": 'say "hi"', "overrides": "a.b=1 c=[x, y]"}
    assert write_run_config(tmp_path, None) is None


@pytest.mark.deployment
def test_flwr_run_dot_with_override(tmp_path: Path) -> None:
    """README's `flwr run . --run-config ...` on a fresh FLWR_HOME: Flower starts its own local
    SuperLink (Simulation Runtime, 2 SuperNodes by default here too); smoke.yaml's 4 subject
    clients are regrouped into 2, `overrides` cuts the run to 1 round, and the SuperLink that
    `flwr run` left running is stopped."""
    workdir, run_dir = tmp_path / "flwr", tmp_path / "run"
    rc = run_deployment(REPO, supernodes=2, simulation=True, workdir=workdir, timeout_s=240, stream=False,
                        run_config={"config-file": "configs/smoke.yaml", "run-dir": str(run_dir),
                                    "overrides": "federated.rounds=1; train.lr=1e-3"})
    assert rc == 0
    results = json.loads((run_dir / "results.json").read_text())
    assert results["complete"] is True and results["num_clients"] == 2
    assert [r["round"] for r in results["rounds"]] == [1]
    assert results["rounds"][0]["clients"] == 2 and results["rounds"][0]["failures"] == 0
    saved = load_config(run_dir / "config.yaml")
    assert (saved.federated.rounds, saved.federated.num_clients, saved.train.lr) == (1, 2, 1e-3)
    log = _read(workdir / "flwr-run.log")
    assert "Starting local SuperLink" in log and "2 simulated SuperNodes" in log
    manifest = _assert_nothing_left(workdir, started_min=1)
    assert manifest["run_status"]["status"] == "finished:completed"
    assert (workdir / "flwr-home" / "cli" / "local-superlink" / "superlink.log").is_file()


def test_clients_follow_the_federation() -> None:
    cfg = load_config("configs/smoke.yaml")  # 4 training subjects, num_clients left open
    assert fit_to_federation(cfg, 4) is cfg
    assert fit_to_federation(cfg, 3).federated.num_clients == 3
    with pytest.raises(FederationError, match='num-supernodes=4'):
        fit_to_federation(cfg, 5)  # more nodes than subjects
    fixed = load_config("configs/smoke.yaml", "federated.num_clients=3")
    with pytest.raises(FederationError, match='2 nodes but the config yields 3 clients.*num-supernodes=3'):
        fit_to_federation(fixed, 2)
