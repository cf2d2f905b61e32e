"""Fixtures for the drift tests: small generated HAPT-like streams."""

from __future__ import annotations

import pytest

from drift_helpers import make_streams
from fedhar.data.loaders.hapt import HaptStreams


@pytest.fixture
def streams() -> HaptStreams:
    return make_streams()
