"""Page-Hinkley confidence drift detector: fires after a shift (with its delay), quiet otherwise."""

import numpy as np
import pytest

from fedhar.continual import ConfidenceDriftDetector, stream_detection, window_confidence
from fedhar.exceptions import ConfigError


def _conf(rng, mean, n, sd=0.05):
    return np.clip(rng.normal(mean, sd, n), 0.0, 1.0)


def test_quiet_on_a_stationary_stream():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        det = ConfidenceDriftDetector()
        det.reset(_conf(rng, 0.9, 200))
        assert not det.update(_conf(rng, 0.9, 5000))
        assert det.detections == [] and det.t == 5000


def test_fires_after_a_drop_and_reports_the_delay():
    rng = np.random.default_rng(0)
    det = ConfidenceDriftDetector(delta=0.5, threshold=25, min_samples=30)
    det.reset(_conf(rng, 0.9, 200))
    stream = np.concatenate([_conf(rng, 0.9, 500), _conf(rng, 0.75, 500)])
    res = stream_detection(det, stream, change_at=500)
    assert res["detected"] and res["false_alarms"] == 0
    assert res["fired_at"] >= 500 and res["delay"] == res["fired_at"] - 500 + 1
    # a 3-sd drop, clipped: about threshold / (3 - delta) = 10 windows
    assert 5 <= res["delay"] <= 30, res
    # stream indices count from the detector's start; with the old reference kept, it fires again
    assert det.detections[0] == res["fired_at"] and len(det.detections) > 1


def test_chunks_stop_at_the_first_detection_and_burn_in_without_reference():
    rng = np.random.default_rng(1)
    det = ConfidenceDriftDetector(min_samples=50)  # no reference: the first 50 windows are it
    pulled = []

    def chunks():
        for k in range(20):
            pulled.append(k)
            yield _conf(rng, 0.9 if k < 5 else 0.6, 100)

    res = stream_detection(det, chunks(), change_at=500, stop_on_detection=True)
    assert res["detected"] and res["false_alarms"] == 0 and res["delay"] <= 100
    assert len(pulled) == 6 and res["windows"] == 600


def test_increase_direction_and_state_round_trip():
    rng = np.random.default_rng(2)
    det = ConfidenceDriftDetector(direction="both", threshold=15)
    det.reset(_conf(rng, 0.5, 100))
    det.update(_conf(rng, 0.5, 300))
    copy = ConfidenceDriftDetector.from_state(det.state_dict())
    assert copy.state_dict() == det.state_dict()
    tail = _conf(rng, 0.7, 100)
    assert det.update(tail) and copy.update(tail)
    assert copy.detections == det.detections and det.detections[0] >= 300


def test_bad_parameters():
    with pytest.raises(ConfigError):
        ConfidenceDriftDetector(threshold=0)
    with pytest.raises(ConfigError):
        ConfidenceDriftDetector(direction="sideways")
    with pytest.raises(ConfigError):
        ConfidenceDriftDetector().reset(np.array([0.5]))


def test_window_confidence_of_the_model(tiny, stream):
    model, cfg = tiny
    c = window_confidence(model, stream[0].test.X, cfg)
    assert c.shape == (len(stream[0].test),)
    assert np.all(c >= 1 / len(model.classes) - 1e-6) and np.all(c <= 1)
    assert window_confidence(model, stream[0].test.X[:0], cfg).shape == (0,)
