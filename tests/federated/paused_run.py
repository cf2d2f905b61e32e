"""Kill a federated run at a known round, however fast the machine: :func:`start_paused` runs
``fedhar`` through this file, which pauses the ServerApp once round N's checkpoint is committed and
says so on a pipe. The test then kills it; nothing waits on a clock."""

from __future__ import annotations

import os
import select
import subprocess
import sys


def start_paused(args, rnd: int, timeout: float = 400, **popen) -> subprocess.Popen:
    """``fedhar ARGS`` as a Popen, returned once round ``rnd`` is committed and the run is paused."""
    read, write = os.pipe()
    env = {**os.environ, "FEDHAR_TEST_PAUSE": f"{write}:{rnd}"}
    proc = subprocess.Popen([sys.executable, __file__, *args], pass_fds=(write,), env=env, **popen)
    os.close(write)
    try:  # the timeout only guards against a hang; the pause itself is an event
        said = os.read(read, 64) if select.select([read], [], [], timeout)[0] else b""
    finally:
        os.close(read)
    if said != f"{rnd}\n".encode():
        proc.kill()
        raise AssertionError(f"the run did not pause after round {rnd} (exit code {proc.wait()})")
    return proc


def _pause_after_round() -> None:
    import threading

    from fedhar.federated import server_app

    fd, rnd = map(int, os.environ.pop("FEDHAR_TEST_PAUSE").split(":"))
    os.set_inheritable(fd, False)  # Ray's processes must not hold the pipe open
    save = server_app.save_checkpoint

    def save_then_pause(run_dir, r, *args, **kwargs):
        save(run_dir, r, *args, **kwargs)
        if r == rnd:
            os.write(fd, f"{r}\n".encode())
            threading.Event().wait()  # until killed

    server_app.save_checkpoint = save_then_pause


if __name__ == "__main__":
    _pause_after_round()
    from fedhar.cli import main

    sys.exit(main())
