"""Fixtures shared by the federated tests."""

import pytest


@pytest.fixture
def flower_task_identity():
    """Messages need a run id, as inside a real ServerApp (Flower sets it the same way)."""
    from flwr.supercore.task_identity import TaskIdentity

    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield
