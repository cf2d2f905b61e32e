"""Each device effect leaves a measurable signature; profiles validate their fields."""

from __future__ import annotations

import numpy as np
import pytest

from fedhar.drift import DEVICES, DeviceProfile, apply_device, device_profile
from fedhar.exceptions import ConfigError, DataError

RATE = 50.0


def run(profile: DeviceProfile, acc, gyro=None, seed=0, **kw):
    acc = np.asarray(acc, dtype=float)
    gyro = np.zeros_like(acc) if gyro is None else gyro
    return apply_device(acc, gyro, np.zeros(len(acc), int), RATE, profile, np.random.default_rng(seed), **kw)


def const(n=100, v=(0.0, 0.0, 0.0)):
    return np.tile(v, (n, 1)).astype(float)


def test_builtins_and_reference_is_identity():
    assert {"reference", "flagship_phone", "budget_phone", "watch"} <= set(DEVICES.names())
    rng = np.random.default_rng(0)
    acc, gyro = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    lab = rng.integers(0, 6, 300)
    out = apply_device(acc, gyro, lab, RATE, device_profile("reference"), rng)
    assert np.array_equal(out.acc, acc) and np.array_equal(out.gyro, gyro) and np.array_equal(out.label, lab)
    budget = device_profile("budget_phone")
    assert not budget.has_gyro and budget.rate_hz < 50 and budget.acc_range_g == 2.0 and 10 <= budget.adc_bits <= 12


@pytest.mark.parametrize("rate, factor", [(25.0, 0.5), (100.0, 2.0)])
def test_rate_change_scales_length(rate, factor):
    out = run(DeviceProfile("r", rate_hz=rate), const(1001, (0, 0, 1)))
    assert len(out.acc) == int(1000 * factor) + 1 and len(out.label) == len(out.acc) and out.rate_hz == rate
    assert np.allclose(out.acc, [0, 0, 1])


def test_jitter_shows_as_sampling_error_against_a_sine():
    t = np.arange(2000) / RATE
    sine = np.sin(2 * np.pi * 2.0 * t)[:, None] * [1.0, 1.0, 1.0]

    def err(jitter):
        out = run(DeviceProfile("j", rate_hz=40.0, jitter=jitter), sine)
        ideal = np.sin(2 * np.pi * 2.0 * np.arange(len(out.acc)) / 40.0)
        return np.sqrt(np.mean((out.acc[20:-20, 0] - ideal[20:-20]) ** 2))

    clean, jittered = err(0.0), err(0.2)
    expected = 2 * np.pi * 2.0 * 0.2 / 40.0 / np.sqrt(2)  # |d sine/dt| rms x timing error std
    assert clean < 0.01 and jittered > 5 * clean
    assert jittered == pytest.approx(expected, rel=0.2)


@pytest.mark.parametrize("field, sensor", [("acc_noise", "acc"), ("gyro_noise", "gyro")])
def test_noise_std_matches_density(field, sensor):
    x = const(20000, (0.1, -0.2, 1.0))
    out = run(DeviceProfile("n", **{field: 0.01}), x, gyro=x.copy())
    diff = getattr(out, sensor) - x
    assert diff.std() == pytest.approx(0.01 * np.sqrt(RATE / 2), rel=0.1)
    other = out.gyro if sensor == "acc" else out.acc
    assert np.array_equal(other, x)


def test_gain_error_is_a_per_axis_ratio():
    prof = DeviceProfile("g", gain_error=0.05)
    ratios = []
    for seed in range(200):
        small, big = run(prof, const(5, (0.5, 0.5, 0.5)), seed=seed), run(prof, const(5, (2, 2, 2)), seed=seed)
        r = small.acc[0] / 0.5
        assert np.allclose(big.acc[0] / 2.0, r)  # multiplicative: same ratio at any amplitude
        ratios.append(r)
    assert np.std(ratios) == pytest.approx(0.05, rel=0.15) and np.mean(ratios) == pytest.approx(1.0, abs=0.01)


def test_bias_is_a_constant_offset():
    prof = DeviceProfile("b", bias=0.03)
    offsets = []
    for seed in range(200):
        out = run(prof, const(50), seed=seed)
        assert np.allclose(out.acc, out.acc[0])  # constant in time
        offsets.append(out.acc[0])
    assert np.std(offsets) == pytest.approx(0.03, rel=0.15)


def test_bias_drift_grows_over_hours_and_continues_across_calls():
    prof = DeviceProfile("d", bias_drift=0.01)
    at = {h: [run(prof, const(2), seed=s, t0_s=h * 3600.0).acc[0] for s in range(150)] for h in (1, 4)}
    assert np.std(at[1]) == pytest.approx(0.01, rel=0.2)
    assert np.std(at[4]) / np.std(at[1]) == pytest.approx(2.0, rel=0.25)  # sqrt(4 h / 1 h)

    def inst():
        return np.random.default_rng(7)

    x = const(1000)
    whole = apply_device(x, x, np.zeros(1000, int), RATE, prof, np.random.default_rng(0), 600.0, instance_rng=inst())
    a = apply_device(x[:400], x[:400], np.zeros(400, int), RATE, prof, np.random.default_rng(1), 600.0, inst())
    b = apply_device(x[400:], x[400:], np.zeros(600, int), RATE, prof, np.random.default_rng(2), 608.0, inst())
    assert np.allclose(np.concatenate([a.acc, b.acc]), whole.acc)


def test_quantisation_levels_and_clipping():
    x = np.linspace(-3, 3, 5000)[:, None] * [1.0, 0.5, 0.2]
    out = run(DeviceProfile("q", adc_bits=6, acc_range_g=2.0, gyro_range_rad_s=1.0), x, gyro=x.copy())
    lsb = 2.0 / 2**5
    assert len(np.unique(out.acc)) <= 2**6 and np.allclose(out.acc / lsb, np.round(out.acc / lsb))
    assert np.abs(out.acc).max() <= 2.0 and np.abs(out.gyro).max() <= 1.0
    clipped = run(DeviceProfile("c", acc_range_g=2.0), x)
    assert clipped.acc.max() == 2.0 and clipped.acc.min() == -2.0
    assert np.allclose(clipped.acc[np.abs(x) < 2], x[np.abs(x) < 2])


def test_axis_order_and_sign():
    prof = DeviceProfile("a", axis_order="yxz", axis_sign=[1, -1, 1])
    out = run(prof, const(3, (1.0, 2.0, 3.0)), gyro=const(3, (4.0, 5.0, 6.0)))
    assert np.allclose(out.acc, [2.0, -1.0, 3.0]) and np.allclose(out.gyro, [5.0, -4.0, 6.0])


def test_device_without_gyroscope():
    out = run(device_profile("budget_phone"), const(100, (0, 0, 1)))
    assert out.gyro is None and out.acc.shape == (50, 3)
    with pytest.raises(DataError, match="has a gyroscope"):
        apply_device(const(10), None, np.zeros(10, int), RATE, device_profile("watch"), np.random.default_rng(0))


def test_labels_follow_nearest_sample():
    lab = np.repeat([0, 1, 2, 3], 50)
    out = apply_device(const(200), None, lab, RATE, DeviceProfile("l", rate_hz=25.0, sensors=["acc"]),
                       np.random.default_rng(0))
    assert np.array_equal(out.label, lab[::2])


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"rate_hz": 0}, "rate_hz"),
        ({"acc_noise": -1}, "acc_noise"),
        ({"axis_order": "xxz"}, "axis_order"),
        ({"axis_sign": [1, 2, 1]}, "axis_sign"),
        ({"sensors": ["gyro"]}, "sensors"),
        ({"adc_bits": 12}, "acc_range_g"),
        ({"adc_bits": 12, "acc_range_g": 4}, "gyro_range_rad_s"),
        ({"jitter": 0.7}, "jitter"),
    ],
)
def test_profile_validation_names_the_field(fields, match):
    with pytest.raises(ConfigError, match=match):
        device_profile({"name": "x", **fields}, "phases[0].device")


def test_profile_specs():
    p = device_profile({"base": "budget_phone", "adc_bits": 8}, "dev")
    assert p.name == "budget_phone_custom" and p.adc_bits == 8 and p.rate_hz == DEVICES.get("budget_phone").rate_hz
    assert device_profile({"base": "watch", "name": "w2"}).name == "w2"
    device_profile("watch").sensors.append("gyro")  # a copy: the built-in stays intact
    assert DEVICES.get("watch").sensors == ["acc", "gyro"]
    with pytest.raises(ConfigError, match="Valid choices: budget_phone, flagship_phone"):
        device_profile("iphone", "phases[1].device")
    with pytest.raises(ConfigError, match="Unknown key"):
        device_profile({"base": "watch", "colour": "red"}, "dev")
