"""The TensorBoard logger writes each scalar once per step, however often a run calls it."""

from __future__ import annotations

import json
import math
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from fedhar.exceptions import ConfigError
from fedhar.reporting import write_scalars
from fedhar.reporting.tensorboard import scalar_items


def _scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir / "tensorboard"))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


ROWS = [
    {"epoch": 1, "train_loss": 1.5, "accuracy": 0.25, "lr": 1e-3, "seconds": 2, "note": "warm", "stopped": False},
    {"epoch": 2, "train_loss": 1.0, "accuracy": 0.5, "lr": 5e-4, "seconds": 3, "macro_f1": float("nan")},
    {"epoch": 3, "train_loss": 0.5, "accuracy": 0.75, "lr": 1e-4, "seconds": 4, "macro_f1": 0.7},
]


def test_growing_rows_are_written_once_per_step(tmp_path):
    write_scalars(tmp_path, ROWS[:2], "epoch")
    write_scalars(tmp_path, ROWS[:2], "epoch")  # metrics.csv rewritten, nothing new: nothing written
    write_scalars(tmp_path, ROWS, "epoch")  # one more epoch, all rows passed again
    got = _scalars(tmp_path)
    assert sorted(got) == ["accuracy", "lr", "macro_f1", "seconds", "train_loss"]  # no strings, bools or step key
    for tag in ("train_loss", "accuracy", "lr", "seconds"):
        assert [s for s, _ in got[tag]] == [1, 2, 3]
        for (s, value), row in zip(got[tag], ROWS):
            assert math.isclose(value, row[tag], rel_tol=1e-6)
    assert got["macro_f1"] == [(3, pytest.approx(0.7))]  # the NaN of epoch 2 is left out
    assert json.loads((tmp_path / "tensorboard" / "written.json").read_text()) == {"last": {"epoch": 3}}


def test_steps_are_tracked_per_step_key_and_rows_of_one_step_merge(tmp_path):
    write_scalars(tmp_path, [{"round": 1, "loss": 2.0}, {"round": 1, "accuracy": 0.1}, {"accuracy": 0.9}], "round")
    write_scalars(tmp_path, [{"epoch": 1, "train_loss": 3.0}], "epoch")
    got = _scalars(tmp_path)
    assert got["loss"] == [(1, 2.0)]
    assert got["accuracy"] == [(1, pytest.approx(0.1))]  # the row without a round is not logged
    assert got["train_loss"] == [(1, 3.0)]


def test_scalar_items_keeps_finite_numbers_only():
    row = {"round": 4, "a": 1, "b": 2.5, "c": True, "d": "x", "e": None, "f": float("inf"), "g": [1]}
    assert scalar_items(row, "round") == {"a": 1.0, "b": 2.5}


def test_missing_tensorboard_is_a_config_error_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what an environment without the package sees
    for name in [m for m in sys.modules if m.startswith("torch.utils.tensorboard")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ConfigError) as err:
        write_scalars(tmp_path, ROWS, "epoch")
    assert "pip install 'fedhar[tensorboard]'" in err.value.reason
    assert "`loggers`" in err.value.reason
    assert not (tmp_path / "tensorboard").exists()
