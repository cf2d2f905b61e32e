"""QLoRA's quantised frozen layers on CPU: round trips, memory, and LoRA training on top."""

import pytest
import torch
from torch import nn

from fedhar.config import build_config
from fedhar.exceptions import ConfigError
from fedhar.models import build_model
from fedhar.models.quantize import frozen_bytes, quantize_linears


def _mlp():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(128, 256), nn.GELU(), nn.Linear(256, 128))
    for p in m.parameters():
        p.requires_grad_(False)
    return m


@pytest.mark.parametrize("bits,max_err,max_share", [(4, 0.2, 0.15), (8, 0.02, 0.27)])
def test_quantised_layers_round_trip(bits, max_err, max_share):
    m = _mlp()
    x = torch.randn(32, 128)
    ref, before = m(x), frozen_bytes(m)
    assert quantize_linears(m, bits) == 2
    y = m(x)
    rel = float((y - ref).norm() / ref.norm())
    assert 0 < rel < max_err  # changed (really quantised), but close
    assert frozen_bytes(m) < max_share * before
    assert not any(type(mod) is nn.Linear for mod in m.modules())


def test_qlora_trains_only_adapters(synthetic):
    from fedhar.training.loop import fit

    cfg = build_config({"model": {"backbone": {"name": "tiny-llama", "layers": 2, "quantize": 4, "lora": {"r": 4, "alpha": 8}},
                                  "frontend": {"tokens": 8, "channels": [16], "kernels": [5], "strides": [2]}},
                        "train": {"epochs": 2, "precision": "fp32", "progress": False, "lr": 3e-3}})
    model = build_model(cfg.model, synthetic.channels, synthetic.window_length, synthetic.classes)
    plain = build_model(build_config({"model": {**cfg.model.__dict__, "backbone": {"name": "tiny-llama", "layers": 2,
                                                                                     "lora": {"r": 4, "alpha": 8}}}}).model,
                        synthetic.channels, synthetic.window_length, synthetic.classes)
    assert model.backbone.quantized_layers == 2 * 7  # q, k, v, o, gate, up, down in each block
    assert frozen_bytes(model.backbone) < 0.6 * frozen_bytes(plain.backbone)
    assert set(model.state_keys) == set(plain.state_keys)  # the same adapters cross the network
    before = {k: v.clone() for k, v in model.trainable_state().items()}
    history = fit(model, synthetic, cfg.train, seed=0)
    assert history[-1]["train_loss"] < history[0]["train_loss"] * 1.5
    after = model.trainable_state()
    assert any(not torch.equal(before[k], after[k]) for k in before if "lora_B" in k)


def test_quantize_config_errors():
    with pytest.raises(ConfigError, match="model.backbone.quantize"):
        build_config({"model": {"backbone": {"quantize": 2}}})
    with pytest.raises(ConfigError, match="full_finetune"):
        build_config({"model": {"backbone": {"quantize": 4, "full_finetune": True}}})


def test_nf4_layer_trains_after_an_evaluation():
    """Evaluate, then train again: the order every fit() with eval_every takes."""
    from peft import LoraConfig, inject_adapter_in_model

    m = _mlp()
    quantize_linears(m, 4)
    inject_adapter_in_model(LoraConfig(r=2, target_modules=["0", "2"]), m)
    m.eval()
    with torch.inference_mode():
        m(torch.randn(4, 128))
    m.train()
    m(torch.randn(4, 128)).sum().backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if "lora_" in n)
