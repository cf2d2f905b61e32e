"""Real local Deployment Engine: flower-superlink + 2 flower-supernode + `flwr run`."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fedhar.exceptions import FederationError
from fedhar.federated.deployment import (
    _node_config_arg,
    _write_run_config,
    leftover_processes,
    run_deployment,
    tagged_processes,
)

APP_DIR = Path(__file__).parent / "deploy_app"
FLOWER_COMMANDS = ("flower-superlink", "flower-supernode", "flower-superexec",
                   "flwr-serverapp", "flwr-clientapp", "flwr run", "flwr ls")


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


def _assert_nothing_left(workdir: Path) -> dict:
    manifest = _manifest(workdir)
    ports = list(manifest["ports"].values())
    started = [p["pid"] for p in manifest["processes"]]
    # The SuperLink, both SuperNodes and `flwr run` were started; Flower's own children
    # (superexecs, serverapp, clientapps) were seen while the run was going on.
    assert len(started) >= 3
    assert len(manifest["seen_pids"]) > len(started)
    assert manifest["survivors"] == []
    # Give the kernel a moment to finish exits after SIGKILL (teardown already waited).
    for _ in range(20):
        if not leftover_processes(manifest["seen_pids"], tag=manifest["tag"]):
            break
        time.sleep(0.25)
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
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait until `flwr run` is under way
            manifest_path = workdir / "deployment.json"
            if manifest_path.exists() and "Starting logstream" in (
                    (workdir / "flwr-run.log").read_text(errors="replace")
                    if (workdir / "flwr-run.log").exists() else ""):
                break
            assert caller.poll() is None, caller.stderr.read().decode() if caller.stderr else ""
            time.sleep(0.25)
        else:
            pytest.fail("the deployment did not start within 60 s")
        time.sleep(2)
        caller.send_signal(signal.SIGTERM)
        assert caller.wait(timeout=40) == 128 + signal.SIGTERM
    finally:
        if caller.poll() is None:
            caller.kill()
            caller.wait()
    manifest = _assert_nothing_left(workdir)
    assert manifest["timings"]["teardown_done_s"] > 0


def test_config_formatting(tmp_path: Path) -> None:
    assert _node_config_arg({"partition-id": 0, "num-partitions": 2, "name": "a b"}) == (
        'partition-id=0 num-partitions=2 name="a b"')
    base = tmp_path / "base.toml"
    base.write_text('lr = 0.1\nout-file = "x"\n[model]\nblocks = 4\n', encoding="utf-8")
    path = _write_run_config(tmp_path, {"lr": 1e-3, "fail": False, "note": 'say "hi"'}, base)
    assert path is not None
    import tomllib

    assert tomllib.loads(path.read_text(encoding="utf-8")) == {
        "lr": 1e-3, "out-file": "x", "model.blocks": 4, "fail": False, "note": 'say "hi"'}
