"""Fixtures of the continual tests."""

from __future__ import annotations

import pytest

from continual_helpers import make_stream


@pytest.fixture
def stream():
    return make_stream()


@pytest.fixture
def tiny(smoke_config, stream):
    """``(model, cfg.train)``: the smoke config's tiny Llama with LoRA, 1 epoch, shaped for the stream."""
    from fedhar.training.central import build_for_data

    cfg = smoke_config(train={"epochs": 1})
    return build_for_data(cfg, stream[0].train), cfg.train
