import json

import numpy as np
import pytest
import torch

from fedhar.exceptions import ConfigError, ModelError
from fedhar.models import ModelConfig, build_model
from fedhar.models.checkpoint import load_model_state, save_model
from fedhar.schema import from_mapping

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = ("a", "b", "c")


def tiny(**backbone):
    spec = {"backbone": {"name": "tiny-llama", "layers": 2, **backbone}, "frontend": {"tokens": 6, "channels": [8], "kernels": [3], "strides": [2]}}
    return build_model(from_mapping(ModelConfig, spec), CHANNELS, 64, CLASSES, seed=0)


def test_forward_shapes_and_named_parts():
    model = tiny()
    x = torch.randn(5, 6, 64)
    assert model(x).shape == (5, 3)
    assert model.features(x).shape == (5, 64)
    tokens = model.frontend(model.normalizer(x))
    assert tokens.shape == (5, 6, 64)  # [B, L, d_model]
    assert model.frontend.sensor_names == ["acc", "gyro"]


def test_frontend_tokens_scaled_to_embedding_norm():
    model = tiny()
    model.eval()
    tokens = model.frontend(torch.randn(32, 6, 64) * 50)
    target = model.backbone.embedding_norm
    assert abs(float(tokens.detach().norm(dim=-1).mean()) / target - 1) < 0.05


def test_lora_targets_and_frozen_backbone():
    model = tiny()
    assert len(model.backbone.targeted_modules) == 2 * 4  # q/k/v/o in 2 blocks
    frozen = [n for n, p in model.named_parameters() if n.startswith("backbone") and "lora_" not in n]
    assert frozen and not any(dict(model.named_parameters())[n].requires_grad for n in frozen)
    counts = model.param_counts()
    assert counts["trainable_params"] < counts["total_params"]
    assert model.state_bytes() == 4 * (counts["trainable_params"] + 2 * len(CHANNELS))


def test_trainable_state_round_trip_and_errors(tmp_path):
    a, b = tiny(), tiny()
    with torch.no_grad():
        for p in a.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p))
    a.normalizer.set_stats(np.arange(6.0), np.ones(6) * 2)
    save_model(a, tmp_path)
    assert (tmp_path / "adapter" / "adapter_config.json").exists()  # PEFT's own format
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["r"] == 8
    load_model_state(b, tmp_path)
    x = torch.randn(3, 6, 64)
    a.eval(), b.eval()
    assert torch.allclose(a(x), b(x))
    state = a.trainable_state()
    state.pop(next(iter(state)))
    with pytest.raises(ModelError, match="missing"):
        b.load_trainable_state(state)
    bad = a.trainable_state()
    key = next(iter(bad))
    bad[key] = torch.zeros(1)
    with pytest.raises(ModelError, match=f"`{key}` has shape"):
        b.load_trainable_state(bad)


def test_head_only_keeps_state_keys():
    model = tiny()
    keys = model.state_keys
    model.set_trainable(("head",))
    assert all(p.requires_grad == n.startswith("head") for n, p in model.named_parameters() if n in keys)
    assert model.state_keys == keys


def test_baselines_build():
    none = build_model(from_mapping(ModelConfig, {"backbone": {"name": "none", "d_model": 32}}), CHANNELS, 64, CLASSES)
    tr = build_model(from_mapping(ModelConfig, {"backbone": {"name": "transformer", "layers": 2, "d_model": 32}}), CHANNELS, 64, CLASSES)
    x = torch.randn(2, 6, 64)
    assert none(x).shape == tr(x).shape == (2, 3)
    assert none.param_counts()["backbone_params"] == 0
    assert all(p.requires_grad for p in tr.parameters())


def test_bad_model_config():
    with pytest.raises(ConfigError, match="must be non-empty lists of the same length"):
        from_mapping(ModelConfig, {"frontend": {"channels": [8, 8], "kernels": [3]}})
    with pytest.raises(ModelError, match="has only 2 blocks"):
        tiny(layers=5)


@pytest.mark.parametrize("arch, targets", [("gpt2", {"c_attn"}), ("qwen2", {"q_proj", "k_proj", "v_proj", "o_proj"})])
def test_local_hf_folder_backbone(tmp_path, arch, targets):
    from transformers import AutoModel, GPT2Config, Qwen2Config

    if arch == "gpt2":
        config = GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=64)
    else:
        config = Qwen2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                             intermediate_size=64, vocab_size=64)
    AutoModel.from_config(config).save_pretrained(tmp_path)
    spec = {"backbone": {"name": str(tmp_path), "layers": 1}, "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [1]}}
    model = build_model(from_mapping(ModelConfig, spec), CHANNELS, 32, CLASSES)
    assert model(torch.randn(2, 6, 32)).shape == (2, 3)
    assert {m.rsplit(".", 1)[-1] for m in model.backbone.targeted_modules} == targets  # one block kept


def test_unloadable_backbone_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match=f"Unknown backbone `{tmp_path / 'nothing'}`: no folder"):
        build_model(from_mapping(ModelConfig, {"backbone": {"name": str(tmp_path / "nothing")}}), CHANNELS, 32, CLASSES)
    with pytest.raises(ModelError, match="has no config.json"):
        build_model(from_mapping(ModelConfig, {"backbone": {"name": str(tmp_path)}}), CHANNELS, 32, CLASSES)


def test_mistyped_backbone_fails_fast_offline_with_the_builtin_names(monkeypatch):
    """`tinyllama` for `tiny-llama`: no hub retries (even with the hub not marked offline), the
    closest built-in name and the full list in one message."""
    import time

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # any hub request would fail, not pass
    t0 = time.perf_counter()
    with pytest.raises(ModelError) as err:
        build_model(from_mapping(ModelConfig, {"backbone": {"name": "tinyllama"}}), CHANNELS, 32, CLASSES)
    assert time.perf_counter() - t0 < 5
    reason = err.value.reason
    assert "Did you mean `tiny-llama`?" in reason
    for name in ("smollm2-135m", "none", "transformer", "classical"):
        assert name in reason
    assert "model.backbone.allow_download" in reason


def test_missing_sensor_uses_learned_absent_features_not_zero_input():
    """An all-zero gyroscope is absent: its branch is replaced, the other windows are untouched."""
    import torch

    from fedhar.data import make_synthetic
    from fedhar.models import ModelConfig, build_model
    from fedhar.schema import from_mapping

    ds = make_synthetic(n_per_class=4, subjects=2, seed=0, window=64)
    assert {"acc", "gyro"} <= {c.rsplit("_", 1)[0] for c in ds.channels}
    cfg = from_mapping(ModelConfig, {"backbone": {"name": "none", "d_model": 32},
                                     "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [1], "dropout": 0.0}})
    m = build_model(cfg, ds.channels, ds.window_length, ds.classes).eval()
    x = torch.from_numpy(ds.X[:6].copy())
    gyro = [i for i, c in enumerate(ds.channels) if c.startswith("gyro")]
    x[3:, gyro] = 0.0  # the last three windows come from a device without a gyroscope
    present = m.frontend.presence(x)
    assert present[:3].all() and not present[3:, 1].any() and present[3:, 0].all()
    with torch.no_grad():
        before = m(x)
        m.frontend.absent.add_(1.0)
        after = m(x)
    assert torch.equal(before[:3], after[:3])  # windows with a gyroscope do not see the absent path
    assert not torch.allclose(before[3:], after[3:])  # gyro-less windows do
    assert "frontend.absent" in m.state_keys  # learned, and exchanged with the rest of the frontend


def test_models_built_in_one_process_with_one_seed_are_identical(tmp_path):
    """LoRA's A matrices come from torch's global generator: two builds must still match."""
    import torch
    from transformers import AutoModel, LlamaConfig

    from fedhar.models import ModelConfig, build_model
    from fedhar.schema import from_mapping

    folder = tmp_path / "llama"  # a local pretrained folder: loaded as is, no seeding inside
    AutoModel.from_config(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2)).save_pretrained(folder)
    cfg = from_mapping(ModelConfig, {"backbone": {"name": str(folder), "layers": 1, "lora": {"r": 4}},
                                     "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [1]}})
    a = build_model(cfg, ("acc_x", "acc_y", "acc_z"), 32, ("a", "b"), seed=3).trainable_state()
    torch.rand(100)  # move the global generator, as any earlier work in the process would
    b = build_model(cfg, ("acc_x", "acc_y", "acc_z"), 32, ("a", "b"), seed=3).trainable_state()
    lora = [k for k in a if "lora_A" in k]
    assert lora and all(torch.equal(a[k], b[k]) for k in a)
