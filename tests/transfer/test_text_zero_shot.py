"""Readings written as text and scored by a causal LM (HARGPT-style zero-shot), on the random
``tiny-llama`` (byte tokenizer): the rendered text, score shapes, calibration, the label mask,
bad phrases, and the smart-home names that moved to :mod:`fedhar.models.lm_scoring`."""

from __future__ import annotations

import numpy as np
import pytest

from fedhar.exceptions import ConfigError, ModelError
from fedhar.transfer.text_zero_shot import PROMPT, ReadingsZeroShot, render_window

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
RATE, T = 40.0, 100  # 2.5 s: five blocks of 20 samples at 2 Hz
BLOCKS = {0: [0.011, -0.004, 0.5, 1.234, -2.0], 1: [-0.98, -0.95, -0.9, -1.0, -1.02], 2: [0.12, 0.1, 0.0, 0.2, 0.3]}
CLASSES = ("walking", "sitting", "lying", "biking")


def known_window(gyro: bool = False) -> np.ndarray:
    """Each acc channel constant per 20-sample block plus a zero-mean +-0.3 wiggle (so only
    averaging, not picking one sample, gives the block's value); the gyroscope zero unless asked."""
    x = np.zeros((6, T), np.float32)
    wiggle = 0.3 * (-1.0) ** np.arange(20)
    for c, values in BLOCKS.items():
        x[c] = np.concatenate([v + wiggle for v in values])
    if gyro:
        x[3:] = 0.25
    return x


def test_readings_are_block_means_rounded_and_an_all_zero_sensor_is_absent():
    text = render_window(known_window(), CHANNELS, RATE, "readings", downsample_hz=2.0)
    lines = text.splitlines()
    assert lines[0] == "2.5 s of wearable motion sensor data."
    assert lines[1] == ("Accelerometer (g) x,y,z at 2 Hz: 0.01,-0.98,0.12; 0.00,-0.95,0.10; 0.50,-0.90,0.00; "
                        "1.23,-1.00,0.20; -2.00,-1.02,0.30")
    assert lines[2] == "No gyroscope." and "Gyroscope (" not in text and "-0.00" not in text


def test_units_come_from_the_mapping():
    x = known_window(gyro=True)
    default = render_window(x, CHANNELS, RATE, "readings")
    assert "Accelerometer (g) x,y,z" in default
    assert "Gyroscope (rad/s) x,y,z at 2 Hz: 0.25,0.25,0.25; 0.25,0.25,0.25" in default
    z = render_window(x, CHANNELS, RATE, "readings", units={"acc": "standardised", "gyro": "standardised"})
    assert "Accelerometer (standardised) x,y,z" in z and "Gyroscope (standardised) x,y,z" in z
    assert "(g)" not in z and "rad/s" not in z


def test_stats_give_magnitude_numbers_and_the_dominant_rhythm():
    t = np.arange(T) / RATE
    x = np.zeros((6, T), np.float32)
    x[2] = 1.0 + 0.5 * np.sin(2 * np.pi * 2.0 * t)  # magnitude = acc_z, a 2 Hz rhythm
    text = render_window(x, CHANNELS, RATE, "stats")
    assert ("Accelerometer (g) magnitude mean 1.00, std 0.35, min 0.50, max 1.50; mean x,y,z 0.00,0.00,1.00; "
            "dominant rhythm 2.0 Hz (moderate).") in text
    assert text.endswith("No gyroscope.")
    x[2] = 1.0
    assert "no rhythm" in render_window(x, CHANNELS, RATE, "stats")


def test_rendering_rejects_bad_input():
    with pytest.raises(ConfigError, match="style"):
        render_window(known_window(), CHANNELS, RATE, "words")
    with pytest.raises(ConfigError, match="downsample_hz"):
        render_window(known_window(), CHANNELS, RATE, "readings", downsample_hz=0)
    with pytest.raises(Exception, match="6 channels"):
        render_window(known_window()[:5], CHANNELS, RATE)


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 6, T)).astype(np.float32)
    X[:3, 3:] = 0.0  # half of them without a gyroscope
    return X


def make(calibrate: bool, style: str = "readings", **kw) -> ReadingsZeroShot:
    return ReadingsZeroShot("tiny-llama", seed=0, style=style, precision="fp32", calibrate=calibrate, progress=False,
                            **kw)


@pytest.mark.parametrize("style", ["readings", "stats"])
def test_scores_are_finite_per_window_and_class_and_calibration_subtracts_a_prior(windows, style):
    raw = make(False, style).scores(windows, CHANNELS, RATE, CLASSES)
    zs = make(True, style)
    cal = zs.scores(windows, CHANNELS, RATE, CLASSES)
    assert raw.shape == cal.shape == (len(windows), len(CLASSES))
    assert np.isfinite(raw).all() and np.isfinite(cal).all()
    assert not np.allclose(raw, cal)
    shift = raw - cal  # the same per-class prior for every window
    assert np.allclose(shift, shift[0], atol=1e-5) and np.ptp(shift[0]) > 0
    texts = zs.texts(windows, CHANNELS, RATE)
    assert zs.mean_tokens == pytest.approx(np.mean([len((t + PROMPT).encode()) for t in texts]))
    assert zs.seconds > 0


def test_predict_never_picks_a_masked_class(windows):
    zs = make(True)
    free = zs.predict(windows, CHANNELS, RATE, CLASSES)
    assert free.shape == (len(windows),) and set(free) <= set(range(len(CLASSES)))
    favourite = int(np.bincount(free, minlength=len(CLASSES)).argmax())
    mask = np.ones(len(CLASSES), bool)
    mask[favourite] = False
    masked = zs.predict(windows, CHANNELS, RATE, CLASSES, mask)
    assert favourite not in set(masked) and set(masked) <= set(np.flatnonzero(mask))
    only = np.zeros(len(CLASSES), bool)
    other = (favourite + 1) % len(CLASSES)
    only[other] = True
    assert (zs.predict(windows, CHANNELS, RATE, CLASSES, only) == other).all()
    with pytest.raises(ConfigError, match="one entry per class"):
        zs.predict(windows, CHANNELS, RATE, CLASSES, mask[:-1])
    with pytest.raises(ConfigError, match="allows no class"):
        zs.predict(windows, CHANNELS, RATE, CLASSES, np.zeros(len(CLASSES), bool))


def test_a_phrase_that_tokenises_to_nothing_is_a_model_error(windows):
    from fedhar.models.lm_scoring import ZeroShotScorer, load_causal_lm

    class LettersOnly:  # drops everything but a-z, as a tokenizer without those characters would
        def encode(self, text, add_special_tokens=False):
            return [b for b in text.encode() if 97 <= b <= 122]

    with pytest.raises(ModelError, match="`sitting`"):
        ZeroShotScorer(load_causal_lm("tiny-llama"), LettersOnly(), ["walking", "sitting"], PROMPT,
                       phrases={"sitting": "???"})
    with pytest.raises(ModelError, match="`walking`"):
        make(False, phrases={"walking": "  "}).scores(windows, CHANNELS, RATE, CLASSES)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="style"):
        make(False, style="words")
    with pytest.raises(ConfigError, match="precision"):
        ReadingsZeroShot("tiny-llama", precision="fp16")


def test_smart_home_names_still_import_and_keep_their_defaults():
    from fedhar.data.smarthome.tokenize import ByteTokenizer
    from fedhar.models import lm_scoring
    from fedhar.smarthome.zero_shot import PHRASES, PROMPT as HOME_PROMPT, ZeroShotScorer, load_causal_lm, texts_of

    assert load_causal_lm is lm_scoring.load_causal_lm and issubclass(ZeroShotScorer, lm_scoring.ZeroShotScorer)
    tok = ByteTokenizer()
    scorer = ZeroShotScorer(load_causal_lm("tiny-llama"), tok, ["leaving", "preparing_lunch", "watching_tv"],
                            precision="fp32")
    assert scorer.prompt == HOME_PROMPT == "\nThe resident is"
    assert scorer.candidates == [tok.encode(" " + PHRASES["leaving"]), tok.encode(" preparing lunch"),
                                 tok.encode(" watching tv")]
    assert texts_of(np.array([[[104, 105, -1]]]), tok) == ["hi"]
