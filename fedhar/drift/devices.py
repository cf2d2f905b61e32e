"""Device profiles: what a particular phone or watch does to the motion it measures.

A profile turns the reference recording (the HAPT phone, 50 Hz, g and rad/s) into what another
device would have reported for the same motion. Effects are applied in the order a real sensor
chain applies them:

1. sampling at the device rate, at jittered instants (the source is interpolated there, after an
   anti-alias low-pass when the device is slower; labels follow the nearest source sample);
2. axis order and sign (the device's frame convention);
3. per-axis gain error, then constant bias plus a random-walk bias drift over *absolute* time;
4. white noise (density x sqrt(rate / 2): the noise in the device's Nyquist band);
5. range clipping, then quantisation to ``2**adc_bits`` levels across the full-scale range.

The source already holds the reference phone's own noise and calibration errors; these effects
come on top, so ``reference`` is the identity. Gain, bias and drift take one value for both
sensors, each in its own unit (g for the accelerometer, rad/s for the gyroscope): typical MEMS
parts have errors of the same order in those units (tens of mg; a few hundredths of a rad/s).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from fedhar.exceptions import ConfigError, DataError
from fedhar.registry import Registry
from fedhar.schema import named_or_mapping

SENSORS = ("acc", "gyro")
_DRIFT_GRID_S = 1.0  # the bias random walk is drawn on a 1 s grid and interpolated between


@dataclass
class DeviceProfile:
    """One kind of device; the random parts (gain, bias, drift) are drawn per device instance."""

    name: str
    rate_hz: float = 50.0
    jitter: float = 0.0
    """Std of the sample-time error, as a fraction of the sample period."""
    acc_noise: float = 0.0
    """Accelerometer noise density, g/sqrt(Hz)."""
    gyro_noise: float = 0.0
    """Gyroscope noise density, rad/s/sqrt(Hz)."""
    gain_error: float = 0.0
    """Std of the per-axis multiplicative gain error (0.01 = 1 %)."""
    bias: float = 0.0
    """Std of the per-axis constant bias, in the sensor's unit."""
    bias_drift: float = 0.0
    """Random-walk bias: std of the bias change after one hour (grows with sqrt(time))."""
    adc_bits: int | None = None
    acc_range_g: float | None = None
    gyro_range_rad_s: float | None = None
    axis_order: str = "xyz"
    """Device axis i reports source axis ``axis_order[i]`` (a permutation of ``xyz``)."""
    axis_sign: list[int] = field(default_factory=lambda: [1, 1, 1])
    sensors: list[str] = field(default_factory=lambda: list(SENSORS))

    def __post_init__(self) -> None:
        where = f"device profile `{self.name}`"
        if not isinstance(self.name, str) or not self.name.strip():
            raise ConfigError(f"device profile: `name` must be a non-empty string; got {self.name!r}.")

        def number(key: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
            v = getattr(self, key)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            ok = ok and (v > low if low_open else v >= low) and v < high
            if not ok:
                bound = f"> {low}" if low_open else f">= {low}"
                bound += f" and < {high}" if high != math.inf else ""
                raise ConfigError(f"{where}: `{key}` must be a number {bound}; got {v!r}.")

        number("rate_hz", 0.0, low_open=True)
        number("jitter", 0.0, 0.5)
        for key in ("acc_noise", "gyro_noise", "gain_error", "bias", "bias_drift"):
            number(key, 0.0)
        for key in ("acc_range_g", "gyro_range_rad_s"):
            if getattr(self, key) is not None:
                number(key, 0.0, low_open=True)
        if self.adc_bits is not None:
            if isinstance(self.adc_bits, bool) or not isinstance(self.adc_bits, int) or not 2 <= self.adc_bits <= 32:
                raise ConfigError(f"{where}: `adc_bits` must be an integer in 2..32 or null; got {self.adc_bits!r}.")
        if sorted(str(self.axis_order)) != ["x", "y", "z"]:
            raise ConfigError(f"{where}: `axis_order` must be a permutation of 'xyz'; got {self.axis_order!r}.")
        if len(self.axis_sign) != 3 or any(s not in (1, -1) or isinstance(s, bool) for s in self.axis_sign):
            raise ConfigError(f"{where}: `axis_sign` must be three values of 1 or -1; got {self.axis_sign!r}.")
        self.axis_sign = [int(s) for s in self.axis_sign]
        bad = [s for s in self.sensors if s not in SENSORS]
        if bad or not self.sensors or len(set(self.sensors)) != len(self.sensors) or "acc" not in self.sensors:
            raise ConfigError(
                f"{where}: `sensors` must list `acc` and optionally `gyro`, each once; got {self.sensors!r}."
            )
        if self.adc_bits is not None:
            if self.acc_range_g is None:
                raise ConfigError(f"{where}: `adc_bits` needs `acc_range_g` (the full scale the ADC levels span).")
            if self.has_gyro and self.gyro_range_rad_s is None:
                raise ConfigError(
                    f"{where}: `adc_bits` needs `gyro_range_rad_s` (the full scale the ADC levels span) "
                    "for a device with a gyroscope."
                )

    @property
    def has_gyro(self) -> bool:
        return "gyro" in self.sensors


DEVICES: Registry[DeviceProfile] = Registry("device profile")
"""Built-in profiles. Orders of magnitude follow typical MEMS datasheets (Bosch BMI160/BMA4xx,
ST LSM6DSx/LIS3DH): accelerometer noise 70-300 ug/sqrt(Hz) in normal mode (around 1 mg/sqrt(Hz)
in low-power mode), gyroscope noise 0.004-0.02 dps/sqrt(Hz) (7e-5..3.5e-4 rad/s/sqrt(Hz)),
sensitivity tolerance 1-3 %, zero-g offset 20-60 mg before calibration, 16-bit outputs with
+-2..16 g and +-125..2000 dps ranges; 8-12 bits in low-power accelerometers."""

for _p in (
    DeviceProfile("reference"),  # the HAPT phone as recorded: the identity
    DeviceProfile(  # recent phone, calibrated 16-bit IMU at Android's "game" rate
        "flagship_phone", rate_hz=50.0, jitter=0.02, acc_noise=1.0e-4, gyro_noise=7.0e-5,
        gain_error=0.005, bias=0.01, bias_drift=0.002, adc_bits=16, acc_range_g=8.0,
        gyro_range_rad_s=34.9,  # +-2000 dps
    ),
    DeviceProfile(  # low-cost accelerometer-only phone in low-power mode, irregular timestamps
        "budget_phone", rate_hz=25.0, jitter=0.1, acc_noise=1.0e-3, gain_error=0.03, bias=0.04,
        bias_drift=0.005, adc_bits=10, acc_range_g=2.0, sensors=["acc"],
    ),
    DeviceProfile(  # smartwatch: 90 deg frame convention (x, y swapped, one flipped), low-power gyro
        "watch", rate_hz=50.0, jitter=0.05, acc_noise=2.0e-4, gyro_noise=3.5e-4, gain_error=0.01,
        bias=0.02, bias_drift=0.003, adc_bits=16, acc_range_g=8.0, gyro_range_rad_s=34.9,
        axis_order="yxz", axis_sign=[1, -1, 1],
    ),
):
    DEVICES.register(_p.name, _p)


def device_profile(spec: str | Mapping[str, Any] | DeviceProfile, where: str = "device") -> DeviceProfile:
    """A profile from a registry name, a mapping of fields (optionally ``base: <name>`` plus
    overrides; the name then defaults to ``<base>_custom``) or a profile (returned as is)."""
    return named_or_mapping(spec, DEVICES, DeviceProfile, "device profile", where)


@dataclass
class DeviceSignal:
    """What the device reported: samples at ``rate_hz`` (nominal, evenly spaced timestamps)."""

    acc: np.ndarray
    gyro: np.ndarray | None
    label: np.ndarray
    rate_hz: float


@dataclass
class _Instance:
    """The random parts of one physical device, fixed for its lifetime."""

    gain: dict[str, np.ndarray]
    bias: dict[str, np.ndarray]
    walk_seed: dict[str, int]


def _draw_instance(rng: np.random.Generator) -> _Instance:
    # Always the same draws in the same order, whatever the profile, so an instance is stable.
    z = rng.standard_normal((4, 3))
    seeds = rng.integers(0, 2**63, size=2)
    return _Instance(
        gain={"acc": z[0], "gyro": z[1]}, bias={"acc": z[2], "gyro": z[3]},
        walk_seed={"acc": int(seeds[0]), "gyro": int(seeds[1])},
    )


def bias_walk(seed: int, std_per_sqrt_hour: float, t_s: np.ndarray) -> np.ndarray:
    """Random-walk bias ``(len(t_s), 3)`` at absolute times ``t_s``; 0 at time 0.

    Drawn on a fixed 1 s grid from time 0 with a seeded generator, so the same seed gives the
    same walk whatever span is asked for: consecutive phases of one device continue it.
    """
    if std_per_sqrt_hour == 0 or len(t_s) == 0:
        return np.zeros((len(t_s), 3))
    n = int(math.ceil(float(np.max(t_s)) / _DRIFT_GRID_S)) + 2
    step_std = std_per_sqrt_hour * math.sqrt(_DRIFT_GRID_S / 3600)
    steps = np.random.default_rng(seed).standard_normal((n - 1, 3)) * step_std
    walk = np.vstack([np.zeros((1, 3)), np.cumsum(steps, axis=0)])
    grid = np.arange(n) * _DRIFT_GRID_S
    return np.stack([np.interp(t_s, grid, walk[:, k]) for k in range(3)], axis=1)


def _sample(x: np.ndarray, rate_from: float, rate_to: float, t: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``(T, C)`` samples at times ``t`` (s), anti-aliased when slowing."""
    if rate_to < rate_from and len(x) > 1:
        from scipy.signal import butter, sosfiltfilt

        sos = butter(4, 0.45 * rate_to, fs=rate_from, output="sos")
        padlen = min(3 * (2 * len(sos) + 1), len(x) - 1)
        x = sosfiltfilt(sos, x, axis=0, padlen=padlen)
    src_t = np.arange(len(x)) / rate_from
    return np.stack([np.interp(t, src_t, x[:, c]) for c in range(x.shape[1])], axis=1)


def _quantise(x: np.ndarray, full_scale: float, bits: int) -> np.ndarray:
    """Two's-complement ADC: ``2**bits`` levels k*LSB, k in [-2**(bits-1), 2**(bits-1) - 1]."""
    lsb = full_scale / 2 ** (bits - 1)
    k = np.clip(np.round(x / lsb), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return k * lsb


def apply_device(
    acc: np.ndarray,
    gyro: np.ndarray | None,
    label: np.ndarray,
    rate_hz: float,
    profile: DeviceProfile,
    rng: np.random.Generator,
    t0_s: float = 0.0,
    instance_rng: np.random.Generator | None = None,
) -> DeviceSignal:
    """What ``profile`` would report for the motion recorded in ``acc`` (g) / ``gyro`` (rad/s).

    Parameters
    ----------
    acc, gyro, label
        Source stream ``(T, 3)``, ``(T, 3)`` or None, ``(T,)`` at ``rate_hz``, already in the
        device's orientation (see :mod:`fedhar.drift.placements`).
    profile : DeviceProfile
    rng : np.random.Generator
        Per-recording randomness: timing jitter and noise.
    t0_s : float
        Absolute time of the first sample, for the bias drift (which grows with device age).
    instance_rng : np.random.Generator, optional
        Randomness of the device instance (gain, bias, drift walk); defaults to ``rng``. Pass a
        generator seeded per physical device so its errors persist across recordings.
    """
    acc = np.asarray(acc, dtype=np.float64)
    label = np.asarray(label)
    if acc.ndim != 2 or acc.shape[1] != 3:
        raise DataError(f"apply_device: `acc` must have shape (T, 3); got {acc.shape}.")
    if label.shape != (len(acc),):
        raise DataError(f"apply_device: `label` must have shape ({len(acc)},); got {label.shape}.")
    if profile.has_gyro and gyro is None:
        raise DataError(f"device profile `{profile.name}` has a gyroscope but the source stream has none.")
    if gyro is not None and np.shape(gyro) != acc.shape:
        raise DataError(f"apply_device: `gyro` must have shape {acc.shape} like `acc`; got {np.shape(gyro)}.")
    inst = _draw_instance(instance_rng if instance_rng is not None else rng)
    sensors = {"acc": acc}
    if profile.has_gyro:
        sensors["gyro"] = np.asarray(gyro, dtype=np.float64)

    # 1. sampling instants: nominal grid at the device rate, jittered, inside the source span
    rate = profile.rate_hz
    n_src = len(acc)
    same_grid = abs(rate - rate_hz) < 1e-9 and profile.jitter == 0
    if same_grid or n_src == 0:
        t = np.arange(n_src) / rate_hz
        lab = label.copy()
    else:
        span = (n_src - 1) / rate_hz
        n = int(math.floor(span * rate + 1e-9)) + 1
        t = np.arange(n) / rate
        if profile.jitter:
            t = np.sort(np.clip(t + rng.standard_normal(n) * profile.jitter / rate, 0.0, span))
        lab = label[np.clip(np.round(t * rate_hz).astype(np.int64), 0, n_src - 1)]
        stacked = _sample(np.concatenate(list(sensors.values()), axis=1), rate_hz, rate, t)
        sensors = {k: stacked[:, 3 * i : 3 * i + 3] for i, k in enumerate(sensors)}
    t_nominal = np.arange(len(t)) / rate

    order = ["xyz".index(a) for a in profile.axis_order]
    sign = np.asarray(profile.axis_sign, dtype=np.float64)
    ranges = {"acc": profile.acc_range_g, "gyro": profile.gyro_range_rad_s}
    noise = {"acc": profile.acc_noise, "gyro": profile.gyro_noise}
    out: dict[str, np.ndarray] = {}
    for key, x in sensors.items():
        x = x[:, order] * sign  # 2. frame convention
        if profile.gain_error:  # 3. gain, bias, drift
            x = x * (1.0 + profile.gain_error * inst.gain[key])
        if profile.bias:
            x = x + profile.bias * inst.bias[key]
        if profile.bias_drift:
            x = x + bias_walk(inst.walk_seed[key], profile.bias_drift, t0_s + t_nominal)
        if noise[key]:  # 4. white noise over the device's band
            x = x + rng.standard_normal(x.shape) * noise[key] * math.sqrt(rate / 2.0)
        if ranges[key] is not None:  # 5. clipping, quantisation
            x = np.clip(x, -ranges[key], ranges[key])
            if profile.adc_bits is not None:
                x = _quantise(x, ranges[key], profile.adc_bits)
        out[key] = x
    return DeviceSignal(acc=out["acc"], gyro=out.get("gyro"), label=lab, rate_hz=float(rate))
