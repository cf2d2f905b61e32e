"""Run a Flower App on a real, local Deployment Engine and always tear it down.

:func:`run_deployment` starts one ``flower-superlink`` and N ``flower-supernode``
processes on loopback, submits the app with ``flwr run``, waits for the run, checks
its final status, and in ``finally`` stops every process it started (including the
``flower-superexec``, ``flwr-serverapp`` and ``flwr-clientapp`` processes that Flower
starts itself). It needs nothing from the network.

Flower 1.42 layout (verified against the installed ``flwr`` source)
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

Run config: ``run_config`` is written to ``<W>/run-config.toml`` and passed as a single
``--run-config`` file; a file avoids Flower's ``k=v`` quoting rules. Keys must exist in
the app's ``[tool.flwr.app.config]``.

With ``simulation=True`` nothing is started here but ``flwr run``, exactly as a user's
plain ``flwr run .`` on a fresh machine: ``<bin>/flwr run <app_dir> --stream
--federation-config num-supernodes=<N> [--run-config ...]`` with ``FLWR_HOME=<W>/flwr-home/cli``
(no ``config.toml``: Flower writes its default, whose ``local`` connection has the magic
address ``:local:``). ``flwr run`` then starts, detached, ``flower-superlink --insecure
--simulation`` on ``FLWR_LOCAL_SUPERLINK_HTTP_API_PORT`` (default 39091; a free port here,
and ``FLWR_LOCAL_CONTROL_API_PORT`` too), logging to ``$FLWR_HOME/local-superlink/`` and
left running after the run. It inherits the tag, so teardown stops it too.

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

from fedhar.federated.deployment.flower import CONNECTION_NAME, node_config_arg, run_deployment, write_run_config
from fedhar.federated.deployment.processes import TAG_ENV_VAR, leftover_processes, tagged_processes

__all__ = ["CONNECTION_NAME", "TAG_ENV_VAR", "leftover_processes", "node_config_arg", "run_deployment",
           "tagged_processes", "write_run_config"]
