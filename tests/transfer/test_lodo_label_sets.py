"""Leave-one-dataset-out with a dataset of its own classes and channel names (generated data):
unmapped classes join the union label space, zero-shot is n/a without shared classes, and the
`labels:` / `channels:` mappings of a `lodo.datasets` entry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from fedhar.config import build_config
from fedhar.data import MASK_KEY
from fedhar.data.pool import load_prepared
from fedhar.exceptions import DataError
from fedhar.studies import run_study
from fedhar.transfer.report import lodo_markdown

REPO = Path(__file__).resolve().parents[2]
MAPPING = {"ax": "acc_x", "ay": "acc_y", "az": "acc_z", "gx": "gyro_x", "gy": "gyro_y", "gz": "gyro_z"}
GYM = ("squat", "bench_press", "deadlift")
DAILY = ("walking", "sitting", "standing")


def write_npz(path: Path, classes, channels, subjects: int = 4, per: int = 4, T: int = 128, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y = np.tile(np.repeat(np.arange(len(classes)), per), subjects)
    X = 0.3 * rng.standard_normal((len(y), len(channels), T)) + np.sin(
        2 * np.pi * (1.0 + y)[:, None, None] * np.arange(T) / 50.0)
    np.savez(path, X=X.astype(np.float32), y=y, subject=np.repeat(np.arange(subjects), len(classes) * per),
             rate_hz=50.0, classes=np.array(classes), channels=np.array(channels), units=np.array(["g"] * len(channels)))
    return path


@pytest.fixture
def sources(tmp_path):
    return (write_npz(tmp_path / "gym.npz", GYM, tuple(MAPPING)),
            write_npz(tmp_path / "daily.npz", DAILY, tuple(MAPPING.values()), seed=1))


def specs(sources, **gym):
    gym_path, daily_path = sources
    return [{"name": "gym", "source": str(gym_path), "split": "subject", "test_fraction": 0.25, **gym},
            {"name": "daily", "source": str(daily_path), "split": "subject", "test_fraction": 0.25}]


def lodo_config(datasets):
    base = yaml.safe_load((REPO / "configs" / "lodo_tiny.yaml").read_text())
    base["model"]["backbone"] = {"name": "none"}
    base["train"]["epochs"] = 1
    base["federated"].update(min_train_clients=1, min_evaluate_clients=1, min_available_clients=1)
    base["lodo"].update(datasets=datasets, held_out=["gym"], max_windows=None, budgets=["k2"], modes=["head"],
                        variants=[], trees=5, adapt={"epochs": 1, "min_steps": 2, "batch_size": 16, "lr": 3.0e-3})
    return build_config(base)


def central_stand_in(fcfg, fed_dir):
    """Stands in for the Flower federation of a fold (the federated path is tested on real data in
    test_transfer_runs.py): one central epoch on the same pool, label masks included."""
    from fedhar.federated.task import get_task
    from fedhar.training.loop import fit

    task = get_task(fcfg)
    fit(task.model, task.splits[0], fcfg.train, seed=0)
    return task.model.trainable_state()


def test_union_label_space_keeps_unmapped_classes(sources):
    cfg = lodo_config(specs(sources, channels=MAPPING))
    prepared = load_prepared(cfg.lodo.datasets, rate_hz=20, window=51, sensors=["acc", "gyro"])
    space = ("walking", "sitting", "standing", "bench_press", "deadlift", "squat")
    for p in prepared.values():
        assert p.train.classes == space and p.train.channels == tuple(MAPPING.values())
    gym, daily = prepared["gym"], prepared["daily"]
    assert gym.classes == ["bench_press", "deadlift", "squat"] and daily.classes == list(DAILY)
    assert gym.train.extras[MASK_KEY][0].tolist() == [False] * 3 + [True] * 3  # masked like any class one lacks
    assert daily.test.extras[MASK_KEY][0].tolist() == [True] * 3 + [False] * 3


def test_unnamed_channels_stop_the_pool_with_a_hint(sources):
    cfg = lodo_config(specs(sources))
    with pytest.warns(UserWarning, match=r"Rename them with `lodo.datasets\[gym\].channels` as a mapping"), \
            pytest.raises(DataError, match=r"dataset `gym` has none of the sensors .*`channels:` mapping, e\.g\. "
                                           r"\{ax: acc_x"):
        load_prepared(cfg.lodo.datasets, rate_hz=20, window=51, sensors=["acc", "gyro"])


@pytest.mark.parametrize("labels, shared", [({}, []), ({"Deadlift": "walking"}, ["walking"])])
def test_lodo_fold_with_own_classes(tmp_path, sources, monkeypatch, labels, shared):
    monkeypatch.setattr("fedhar.transfer.lodo.train_federated", central_stand_in)
    cfg = lodo_config(specs(sources, channels=MAPPING, labels=labels))
    results = run_study("cross_dataset", cfg, tmp_path / "lodo")
    assert results["status"] == "complete" and results["folds"]["gym"]["shared_classes"] == shared
    pool = np.load(tmp_path / "lodo" / "folds" / "gym" / "pool.npz")
    assert {"squat", "bench_press"} <= set(pool["classes"].tolist())  # the union label space
    zero = [r for r in results["rows"] if r["budget"] == "zero-shot"]
    assert {r["variant"] for r in zero} == {"no LLM", "classical RF"}
    report = (tmp_path / "lodo" / "report.md").read_text()
    if shared:
        assert all(0 <= r["macro_f1"] <= 1 and "note" not in r for r in zero)
        assert results["datasets"]["gym"]["classes"] == ["walking", "bench_press", "squat"]
    else:
        assert all(r["macro_f1"] is None and r["accuracy"] is None and r["note"] == "no shared classes" for r in zero)
        assert "shared classes for zero-shot: none" in report and "| no LLM | head | n/a |" in report
    budget = [r for r in results["rows"] if r["budget"] != "zero-shot"]
    assert budget and all(0 <= r["macro_f1"] <= 1 for r in budget)
    assert (tmp_path / "lodo" / "metrics.csv").exists()


def test_report_shows_na_for_missing_scores():
    def row(held, variant, mode, budget, f1):
        return {"held_out": held, "variant": variant, "mode": mode, "budget": budget, "labelled_windows": 0 if f1 is None else 4,
                "macro_f1": f1, "accuracy": f1}

    rows = [row("gym", "m", "none", "zero-shot", None), row("gym", "m", "head", "k=1", 0.5),
            row("daily", "m", "none", "zero-shot", 0.4), row("daily", "m", "head", "k=1", 0.7)]
    rows[0]["note"] = "no shared classes"
    text = lodo_markdown({"rows": rows, "folds": {}})
    assert "| m | head | n/a | **0.500 / 0.500** |" in text
    assert "Highest per budget (one seed, no test): zero-shot: n/a; k=1: m (head)." in text
    assert "| m | head | n/a | **0.600** |" in text  # the mean over held-out datasets: n/a where one has none
