"""The prompt prefix: texts from the data and raw windows, embedded with the frozen LLM, before the sensor tokens."""

import math

import pytest
import torch

from fedhar.exceptions import ConfigError, ModelError
from fedhar.models import ModelConfig, build_model
from fedhar.models.config import BackboneConfig, PromptConfig
from fedhar.models.backbones import build_backbone
from fedhar.models.prompt import build_prompt
from fedhar.schema import from_mapping

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = ("a", "b", "c")
T = 100  # 2 s at 50 Hz: a 0.5 Hz frequency grid


def tiny(prompt: dict | None = None, seed: int = 0, **head):
    spec = {"backbone": {"name": "tiny-llama", "layers": 2},
            "frontend": {"tokens": 6, "channels": [8], "kernels": [3], "strides": [2]}, "head": head}
    if prompt is not None:
        spec["prompt"] = {"enabled": True, "rate_hz": 50, **prompt}
    return build_model(from_mapping(ModelConfig, spec), CHANNELS, T, CLASSES, seed=seed)


def synthetic(batch: int = 1) -> torch.Tensor:
    """acc_z = 1 g + a 0.5 g sine at 2 Hz, gyro_x constant 0.4 rad/s."""
    t = torch.arange(T) / 50.0
    x = torch.zeros(batch, 6, T)
    x[:, 2] = 1.0 + 0.5 * torch.sin(2 * math.pi * 2.0 * t)
    x[:, 3] = 0.4
    return x


class CountingTokenizer:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def encode(self, text, add_special_tokens=False):
        self.calls += 1
        return self.inner.encode(text, add_special_tokens=add_special_tokens)


def test_static_prompt_shapes_text_and_single_tokenisation():
    model = tiny({"fields": {"dataset": "UCI-HAR"},
                  "template": "{dataset}: {channels} at {rate_hz:g} Hz, {seconds:g} s."})
    text = "UCI-HAR: acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z at 50 Hz, 2 s."
    x = torch.randn(4, 6, T)
    assert model.prompt.texts(x) == [text] * 4
    spy = CountingTokenizer(model.prompt.tokenizer)
    model.prompt.tokenizer = spy
    embeds, mask = model.prompt(x)
    model.prompt(torch.randn(3, 6, T))
    assert spy.calls == 1 and list(model.prompt.cache) == [text]  # tokenised once for every window
    assert embeds.shape == (4, len(text.encode()), 64) and mask.shape == (4, len(text.encode()))
    assert bool(mask.eq(1).all())
    ids = torch.tensor(list(text.encode()))
    assert torch.equal(embeds[2], model.backbone.model.get_input_embeddings()(ids))  # the LLM's own embeddings
    assert model.prompt.mean_tokens == len(text.encode())
    assert model.tokens_per_window(x) == 6 + len(text.encode())


def test_stats_text_of_known_window():
    model = tiny({"stats": True, "template": "Phone at the waist."})
    x = synthetic(2)
    x[1, 3:] = 0  # no gyroscope in the second window
    x[1, 2] = 1.0  # and a still accelerometer
    texts = model.prompt.texts(x)
    assert texts[0] == ("Phone at the waist. Statistics: mean |acc| 1.00 g, std |acc| 0.35 g, "
                        "dominant frequency 2.0 Hz, mean |gyro| 0.40 rad/s.")
    assert texts[1] == ("Phone at the waist. Statistics: mean |acc| 1.00 g, std |acc| 0.00 g, "
                        "no dominant frequency, no gyroscope.")


def test_stats_field_in_template_and_units_from_data():
    cfg = PromptConfig(enabled=True, stats=True, template="{sensors} in {units}; {stats}", rate_hz=50)
    backbone = build_backbone(BackboneConfig(name="tiny-llama", layers=2), 0)
    prefix = build_prompt(cfg, backbone, "tiny-llama", CHANNELS, T, None, units=("m/s^2",) * 3 + ("rad/s",) * 3)
    x = synthetic()
    x[:, 2] *= 9.80665
    assert prefix.texts(x) == ["accelerometer and gyroscope in accelerometer in m/s^2, gyroscope in rad/s; "
                               "mean |acc| 9.81 m/s^2, std |acc| 3.47 m/s^2, dominant frequency 2.0 Hz, "
                               "mean |gyro| 0.40 rad/s"]


def test_left_padding_and_mask_leave_each_window_unchanged():
    model = tiny({"stats": True, "template": "HAR."})
    model.eval()
    x = synthetic(3)
    x[1, 3:] = 0  # "no gyroscope" is shorter than "mean |gyro| 0.40 rad/s"
    x[2] *= 3.0
    embeds, mask = model.prompt(x)
    lengths = [len(t.encode()) for t in model.prompt.texts(x)]
    assert len(set(lengths)) > 1 and embeds.shape[1] == max(lengths)
    for row, n in enumerate(lengths):
        pad = max(lengths) - n
        assert mask[row, :pad].eq(0).all() and mask[row, pad:].eq(1).all()  # left padded
        assert embeds[row, :pad].eq(0).all()
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-5)


def test_prompt_changes_logits_and_pools_sensor_positions_only():
    plain, prompted = tiny(), tiny({"template": "A phone at {rate_hz:g} Hz."})
    plain.eval(), prompted.eval()
    x = torch.randn(5, 6, T)
    with torch.no_grad():
        logits = prompted(x)
        assert logits.shape == (5, 3)
        assert not torch.allclose(logits, plain(x), atol=1e-4)  # same weights (same seed): the prompt matters
        feats = prompted.features(x)
        assert torch.allclose(prompted.head.classify(feats), logits, atol=1e-6)
        prefix, mask = prompted.prompt(x)
        tokens = prompted._tokens(x)
        full_mask = torch.cat([mask, torch.ones(5, 6, dtype=mask.dtype)], 1)
        hidden = prompted.backbone(torch.cat([prefix, tokens], 1), attention_mask=full_mask)
        assert torch.allclose(feats, hidden[:, -6:].mean(1), atol=1e-6)
        assert not torch.allclose(feats, hidden.mean(1), atol=1e-4)


def test_last_pooling_is_the_last_sensor_token():
    model = tiny({"template": "Watch."}, pooling="last")
    model.eval()
    x = torch.randn(2, 6, T)
    with torch.no_grad():
        prefix, mask = model.prompt(x)
        seq = torch.cat([prefix, model._tokens(x)], 1)
        hidden = model.backbone(seq, attention_mask=torch.cat([mask, torch.ones(2, 6, dtype=mask.dtype)], 1))
        assert torch.allclose(model.features(x), hidden[:, -1], atol=1e-6)


def test_no_embedding_table_in_trainable_state():
    plain, prompted = tiny(), tiny({"stats": True})
    assert prompted.state_keys == plain.state_keys
    assert set(prompted.state_dict()) == set(plain.state_dict())
    assert prompted.param_counts() == plain.param_counts()
    assert not prompted.prompt.embedding.weight.requires_grad


def test_gradient_reaches_frontend_with_prompt():
    model = tiny({"stats": True})
    model.train()
    loss = torch.nn.functional.cross_entropy(model(synthetic(4) + torch.randn(4, 6, T)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    weights = [p for n, p in model.frontend.named_parameters() if n.endswith("weight") and p.ndim > 1]  # convs, proj
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    assert model.prompt.embedding.weight.grad is None


@pytest.mark.parametrize("prompt, key, words", [
    ({"template": "{dataset} at {place}", "fields": {"dataset": "UCI"}}, "model.prompt.template", "{channels}"),
    ({"template": "{0} windows"}, "model.prompt.template", "unknown field"),
    ({"template": "{channels:d}"}, "model.prompt.template", "cannot be filled"),
    ({"template": "{channels} {stats}"}, "model.prompt.stats", "false"),
    ({"template": "{units}", "fields": {"units": "g"}}, "model.prompt.fields.units", "built-in"),
    ({"template": "{seconds:g} s", "rate_hz": None}, "model.prompt.rate_hz", "seconds"),
    ({"template": "Phone.", "stats": True, "rate_hz": None}, "model.prompt.rate_hz", "dominant frequency"),
])
def test_bad_prompt_config_names_the_key(prompt, key, words):
    with pytest.raises(ConfigError, match=key) as err:
        tiny(prompt)
    assert words in str(err.value)


def test_prompt_needs_an_llm_backbone():
    spec = {"backbone": {"name": "none", "d_model": 16},
            "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [1]},
            "prompt": {"enabled": True, "rate_hz": 50}}
    with pytest.raises(ModelError, match="model.prompt needs an LLM backbone; `none`"):
        build_model(from_mapping(ModelConfig, spec), CHANNELS, T, CLASSES)


@pytest.mark.slow
def test_random_init_smollm2_reads_the_prompt_with_its_own_tokenizer():
    cfg = BackboneConfig(name="smollm2-135m", layers=1, pretrained=False)
    cfg.lora.enabled = False
    backbone = build_backbone(cfg, 0)
    prefix = build_prompt(PromptConfig(enabled=True, stats=True), backbone, "smollm2-135m", CHANNELS, T, 50.0)
    text = prefix.texts(synthetic())[0]
    embeds, mask = prefix(synthetic())
    ids = prefix.cache[text]
    assert prefix.tokenizer.decode(ids) == text
    assert 0 < embeds.shape[1] == len(ids) < len(text.encode())  # BPE, not bytes
    assert embeds.shape[2] == 576 and bool(mask.eq(1).all())
