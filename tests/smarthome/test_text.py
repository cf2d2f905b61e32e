"""Event text: serialisation, the smarthome data format, the text model and zero-shot scoring."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedhar.data.smarthome import read_home
from fedhar.data.smarthome.windows import event_windows
from fedhar.exceptions import ConfigError, DataError
from fedhar.data.smarthome import ByteTokenizer, EventTextTemplate, encode_texts, parse_line, serialize_window, serialize_windows


def test_serialisation_is_deterministic_and_round_trips(generated_homes, real_data):
    for rec in (read_home(generated_homes, "ordonez_b"), read_home(real_data / "smarthome", "kasteren2010_c")):
        w = event_windows(rec, 10)
        texts = serialize_windows(w.subset(np.arange(50)))
        assert texts == serialize_windows(w.subset(np.arange(50)))  # same window, same text
        for j, text in enumerate(texts[:20]):
            lines = text.split("\n")
            assert len(lines) == 10
            for i, line in zip(range(int(w.start[j]), int(w.end[j])), lines):
                f = parse_line(line)
                info = rec.sensors[str(rec.sensor[i])]
                assert f["time"] == rec.time[i].astype("datetime64[s]").item().strftime("%H:%M")
                assert f["place"] == info.place.replace("_", " ").lower()
                assert f["sensor"] == info.name.replace("_", " ").lower()
                assert f["state"] == __import__("fedhar.data.smarthome.serialize", fromlist=["state_word"]).state_word(info.type, rec.state[i])


def test_template_fields_and_header(generated_homes):
    rec = read_home(generated_homes, "ordonez_a")
    t = EventTextTemplate(line="{weekday} {time} | {sensor} {state}", time_format="%H", header="rooms: {rooms}")
    text = serialize_window(rec, 0, 3, t)
    header, *lines = text.split("\n")
    assert header.startswith("rooms: ") and "bedroom" in header and len(lines) == 3
    assert parse_line(lines[0], t)["weekday"] == "monday"
    with pytest.raises(ConfigError, match="unknown field"):
        EventTextTemplate(line="{time} {room}")
    with pytest.raises(ValueError, match="does not follow"):
        parse_line("not an event line")


def test_tokenised_windows_keep_the_latest_events():
    tok = ByteTokenizer()
    ids = encode_texts(["abc", "hello world"], tok, max_tokens=5)
    assert ids.shape == (2, 1, 5) and ids.dtype == np.int64
    assert tok.decode([i for i in ids[0, 0] if i >= 0]) == "abc" and list(ids[0, 0, 3:]) == [-1, -1]
    assert tok.decode(ids[1, 0]) == "world"  # the end of the text is kept


def test_the_header_survives_truncation(generated_homes):
    from fedhar.data.loaders.smarthome import load_smarthome
    from fedhar.exceptions import ConfigError, ModelError

    tok = ByteTokenizer()
    ids = encode_texts(["hello world"], tok, max_tokens=8, prefix="H:\n")
    assert tok.decode(ids[0, 0]) == "H:\nworld"  # the prefix in front, then the end of the text
    with pytest.raises(ModelError, match="leaving none of `max_tokens`"):
        encode_texts(["x"], tok, max_tokens=3, prefix="abc")
    with pytest.raises(ConfigError, match=r"home `ordonez_a`.*data\.options\.max_tokens.*data\.options\.text\.header"):
        load_smarthome(generated_homes, homes=["ordonez_a"], k=6, tokenizer="bytes", max_tokens=8,
                       text={"header": "home {home}"})
    # every window of a home starts with that home's header, however long its events are
    d = load_smarthome(generated_homes, homes=["ordonez_a", "ordonez_b"], k=6, tokenizer="bytes", max_tokens=40,
                       text={"header": "home {home}"})
    for s, home in enumerate(("ordonez a", "ordonez b")):
        rows = d.X[d.subject == s][:, 0]
        head = f"home {home}\n".encode()
        assert (rows[:, : len(head)] == np.frombuffer(head, np.uint8)).all() and (rows[:, -1] >= 0).all()


def test_smarthome_format_split_and_masks(generated_homes):
    from fedhar.config import build_config
    from fedhar.data.sources import load_splits
    from fedhar.data.vocab import MASK_KEY

    cfg = build_config({"data": {"source": str(generated_homes), "split": "chronological", "test_fraction": 0.3,
                                 "options": {"homes": ["ordonez_a", "ordonez_b"], "k": 6, "tokenizer": "bytes"}}})
    train, test = load_splits(cfg.data)
    assert train.channels == ("token",) and train.X.dtype == np.int64
    for s in (0, 1):  # per home: every test day after every training day
        assert train.extras["day"][train.subject == s].max() < test.extras["day"][test.subject == s].min()
    # a home is never trained or scored on classes it does not have
    a, b = train.subset(train.subject == 0), train.subset(train.subject == 1)
    assert train.classes.index("showering") in set(b.y) and not a.extras[MASK_KEY][:, train.classes.index("showering")].any()
    assert b.extras[MASK_KEY][:, train.classes.index("showering")].all()
    assert train.extras["event_counts"].shape[1] == len(read_home(generated_homes, "ordonez_a").sensors) \
        + len(read_home(generated_homes, "ordonez_b").sensors) + 2
    with pytest.raises(DataError, match="needs a `day` column"):
        build_config({"data": {"source": "synthetic", "split": "chronological"}})
        load_splits(build_config({"data": {"source": "synthetic", "split": "chronological"}}).data)


def _text_model(trim=False, pooling="last", vocab=None):
    from fedhar.models import build_model
    from fedhar.models.config import ModelConfig
    from fedhar.schema import from_mapping

    cfg = from_mapping(ModelConfig, {"backbone": {"name": "tiny-llama", "layers": 2, "lora": {"r": 4}}, "head": {"pooling": pooling},
                                     "text": {"trim_vocab": trim}})
    return build_model(cfg, ("token",), 16, ("a", "b", "c"), seed=3, vocab_ids=vocab).eval()


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_text_model_ignores_padding_and_trimming_keeps_logits(pooling):
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 256, (4, 1, 12))
    ids[1, 0, 7:] = -1
    padded = np.concatenate([ids, np.full((4, 1, 5), -1)], axis=2)
    model = _text_model(pooling=pooling)
    with torch.no_grad():
        a, b = model(torch.from_numpy(ids)), model(torch.from_numpy(padded))
    assert torch.allclose(a, b, atol=1e-5)
    trimmed = _text_model(trim=True, pooling=pooling, vocab=ids)
    with torch.no_grad():
        assert torch.allclose(trimmed(torch.from_numpy(ids)), a, atol=1e-5)  # same rows, same logits
    assert trimmed.param_counts()["backbone_params"] < model.param_counts()["backbone_params"]
    assert not any(k.startswith("normalizer.") or k.startswith("frontend.") for k in model.state_keys)
    assert {k.split(".")[0] for k in model.state_keys} == {"backbone", "head"}


def test_zero_shot_cache_matches_full_scoring():
    from fedhar.smarthome.zero_shot import PROMPT, ZeroShotScorer, load_causal_lm

    lm, tok = load_causal_lm("tiny-llama", seed=1), ByteTokenizer()
    scorer = ZeroShotScorer(lm, tok, ["sleeping", "leaving", "toileting"], precision="fp32")
    text = "07:41 kitchen: fridge opened"
    got = scorer.scores([text], progress=False)[0]
    prefix = tok.encode(text + PROMPT)
    for k, cand in enumerate(scorer.candidates):
        with torch.no_grad():
            logp = torch.log_softmax(lm(input_ids=torch.tensor([prefix + cand])).logits[0].float(), -1)
        ref = np.mean([logp[len(prefix) - 1 + j, c].item() for j, c in enumerate(cand)])
        assert got[k] == pytest.approx(ref, abs=1e-4)


@pytest.mark.slow
def test_embedded_tokenizer_is_cached_with_the_weights():
    from pathlib import Path

    from fedhar.hub import resolve_pretrained
    from fedhar.data.smarthome.tokenize import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    assert (Path(resolve_pretrained("smollm2-135m")) / "tokenizer.json").exists()
    text = "07:41 kitchen: fridge opened\n07:42 kitchen: fridge closed"
    ids = encode_texts([text], tok, max_tokens=64)
    assert ids.max() < tok.vocab_size + 64 and decode_roundtrip(ids, tok) == text


def decode_roundtrip(ids, tok):
    from fedhar.smarthome.zero_shot import texts_of

    return texts_of(ids[:1], tok)[0]


def test_client_local_split_can_be_chronological(generated_homes):
    from fedhar.data.loaders.smarthome import load_smarthome
    from fedhar.data.loaders.synthetic import make_synthetic
    from fedhar.federated.partition import chronological_local_split

    ds = load_smarthome(generated_homes, homes=["ordonez_a"], k=6, tokenizer="bytes")
    tr, te = chronological_local_split(ds, 0.3)
    day = ds.extras["day"]
    assert len(tr) + len(te) == len(ds) and day[tr].max() < day[te].min()
    assert len(np.unique(day[te])) == 2  # ceil(0.3 * 6 days)
    with pytest.raises(DataError, match="needs a `day` column"):
        chronological_local_split(make_synthetic(n_per_class=3, subjects=2), 0.3)


def test_phrase_normalisations_from_constructed_token_log_probabilities():
    """Sum charges a long phrase for every token, mean does not, first looks at the first token only."""
    from fedhar.models.lm_scoring import reduce_token_logps

    valid = np.array([[True, False, False], [True, True, True]])
    logp = np.array([[-2.0, 0.0, 0.0], [-3.0, -0.1, -0.1]])  # a short phrase; a long one with a confident tail
    assert reduce_token_logps(logp, valid, "sum").argmax() == 0
    assert reduce_token_logps(logp, valid, "mean").argmax() == 1
    assert reduce_token_logps(logp, valid, "first").argmax() == 0
    with pytest.raises(Exception, match="unknown phrase normalisation"):
        reduce_token_logps(logp, valid, "median")


def test_domain_calibration_lets_the_right_phrase_win_over_a_phrase_the_lm_always_likes():
    """A constructed case: the LM likes "doing something else" after any text (+3), and each window's
    own activity only a little more than the others (+1). Raw scoring names the generic phrase for every
    window; subtracting the phrases' mean score over unlabelled in-domain texts names the right one."""
    from fedhar.distill.compare import score
    from fedhar.data.dataset import WindowDataset
    from fedhar.smarthome.zero_shot import score_variants

    rng = np.random.default_rng(0)
    K, n = 4, 80  # classes 0-2 are activities, 3 is "doing something else"
    y = rng.integers(0, 3, n)

    def logps(labels):
        lp = np.full((len(labels), K, 1), -5.0) + rng.normal(0, 0.05, (len(labels), K, 1))
        lp[:, 3, 0] += 3.0
        lp[np.arange(len(labels)), labels, 0] += 1.0
        return lp

    valid = np.ones((K, 1), dtype=bool)
    variants = score_variants(logps(y), np.full((K, 1), -5.0), logps(rng.integers(0, 3, 64)), valid)
    test = WindowDataset(X=np.zeros((n, 1, 2), np.float32), y=y, subject=np.zeros(n, np.int64), classes=("a", "b", "c", "other"),
                         channels=("t",), units=("id",), rate_hz=1.0, name="t")
    raw = variants[("mean", "none")].argmax(1)
    assert (raw == 3).all()  # the generic phrase wins every window
    assert (variants[("mean", "content-free")].argmax(1) == 3).all()  # the prompt alone does not see the domain's bias
    fixed = variants[("mean", "domain")].argmax(1)
    assert (fixed == y).all() and score(test, fixed)["macro_f1"] == 1.0 and score(test, raw)["macro_f1"] == 0.0
