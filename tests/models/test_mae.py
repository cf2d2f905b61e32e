"""The masked autoencoder: masking ratio, loss on hidden patches only, checkpoints, and the MAE
as a LoRA-adapted backbone with the same frontend/head/training code as the LLMs."""

import numpy as np
import pytest
import torch

from fedhar.config import build_config
from fedhar.exceptions import ConfigError, ModelError
from fedhar.models import build_model
from fedhar.models.mae import MAEConfig, MaskedAutoencoder, load_mae, random_mask

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
TINY = MAEConfig(patch=8, width=32, depth=2, heads=4, mlp_ratio=2, mask_ratio=0.75, decoder_width=16, decoder_depth=1)


@pytest.mark.parametrize("ratio,n,hidden", [(0.75, 16, 12), (0.5, 15, 8), (0.9, 4, 3), (0.1, 4, 1)])
def test_mask_hides_the_configured_share(ratio, n, hidden):
    mask = random_mask(64, n, ratio, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [hidden] * 64
    assert len({tuple(r.tolist()) for r in mask}) > 1  # a fresh draw per window


def test_loss_counts_hidden_patches_only():
    torch.manual_seed(0)
    mae = MaskedAutoencoder(TINY, CHANNELS, 128)
    x = torch.randn(4, 6, 128)
    mask = random_mask(4, 16, 0.75, torch.Generator().manual_seed(1))
    loss, recon, _ = mae(x, mask=mask)
    target = mae.embed.patches(x)
    per_patch = ((recon - target) ** 2).mean(-1)
    assert loss.item() == pytest.approx(per_patch[mask].mean().item(), rel=1e-5)
    assert not torch.isclose(loss, per_patch.mean())  # the visible patches' error is left out
    loss.backward()
    assert mae.pred.weight.grad is not None and mae.encoder.blocks[0].q.weight.grad.abs().sum() > 0


def test_encoder_sees_only_visible_patches():
    """Hidden patches' content must not reach the encoder: changing them leaves the encoded
    visible tokens (and so everything but the hidden targets) unchanged."""
    torch.manual_seed(0)
    mae = MaskedAutoencoder(TINY, CHANNELS, 128).eval()
    x = torch.randn(2, 6, 128)
    mask = random_mask(2, 16, 0.75, torch.Generator().manual_seed(2))
    y = x.clone()
    hidden = mask[0].nonzero()[0].item()
    y[0, :, hidden * 8 : (hidden + 1) * 8] += 10.0
    with torch.no_grad():
        _, r1, _ = mae(x, mask=mask)
        _, r2, _ = mae(y, mask=mask)
    assert torch.allclose(r1, r2)


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    mae = MaskedAutoencoder(TINY, CHANNELS, 128)
    mae.save(tmp_path / "m", extra={"mean": [0.0] * 6, "std": [1.0] * 6})
    back = load_mae(tmp_path / "m")
    assert all(torch.equal(a, b) for a, b in zip(mae.state_dict().values(), back.state_dict().values()))
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "mae.json").write_text("{}")
    with pytest.raises(ModelError, match="not a readable fedhar MAE checkpoint"):
        load_mae(tmp_path / "bad")
    with pytest.raises(ConfigError, match="pretrain.mae.mask_ratio"):
        MAEConfig(mask_ratio=1.0)


def test_mae_backbone_lora_targets_and_training(tmp_path, synthetic):
    from fedhar.training.central import build_for_data
    from fedhar.training.loop import fit

    torch.manual_seed(0)
    MaskedAutoencoder(TINY, CHANNELS, 128).save(tmp_path / "m", extra={"mean": [0.5] * 6, "std": [2.0] * 6})
    cfg = build_config({"model": {"backbone": {"name": str(tmp_path / "m"), "lora": {"r": 2, "alpha": 4}}},
                        "train": {"epochs": 2, "precision": "fp32", "progress": False}})
    model = build_for_data(cfg, synthetic)
    assert len(model.backbone.targeted_modules) == 2 * 6  # q, k, v, o, fc1, fc2 in both blocks
    assert model.normalizer.mean.tolist() == [0.5] * 6  # the pretraining statistics, not the labelled set's
    frozen = {n: p.clone() for n, p in model.backbone.encoder.named_parameters() if "lora_" not in n}
    assert not any(p.requires_grad for n, p in model.backbone.encoder.named_parameters() if "lora_" not in n)
    fit(model, synthetic, cfg.train, seed=0)
    assert all(torch.equal(p, frozen[n]) for n, p in model.backbone.encoder.named_parameters() if "lora_" not in n)
    assert any("lora_" in k for k in model.state_keys) and any(k.startswith("frontend.proj") for k in model.state_keys)
    full = build_model(build_config({"model": {"backbone": {"name": str(tmp_path / "m"), "full_finetune": True}}}).model,
                       CHANNELS, 128, synthetic.classes)
    assert full.param_counts()["trainable_params"] > model.param_counts()["trainable_params"]
    with pytest.raises(ModelError, match="pretrained on channels"):
        build_model(cfg.model, CHANNELS[:3], 128, synthetic.classes)


def test_fedhar_pretrain_then_train(tmp_path, smoke_config):
    """`fedhar pretrain` writes a folder that `model.backbone.name` can name."""
    import json

    from fedhar.cli import main

    cfg = tmp_path / "pre.yaml"
    cfg.write_text(
        "name: pre\ndata: {source: synthetic, split: subject, test_fraction: 0.34, options: {n_per_class: 10, subjects: 3}}\n"
        "pretrain: {epochs: 3, batch_size: 16, eval_every: 1, mae: {patch: 16, width: 32, depth: 2, heads: 4, "
        "decoder_width: 16, decoder_depth: 1}}\n")
    assert main(["pretrain", str(cfg), "--out", str(tmp_path / "mae")]) == 0
    results = json.loads((tmp_path / "mae" / "results.json").read_text())
    assert len(results["history"]) == 3 and np.isfinite(results["final"]["test_loss"])
    assert (tmp_path / "mae" / "loss_curve.png").exists()
    train_cfg = tmp_path / "train.yaml"
    train_cfg.write_text(
        "name: ft\ndata: {source: synthetic, split: subject, test_fraction: 0.34, options: {n_per_class: 10, subjects: 3}}\n"
        f"model: {{backbone: {{name: {tmp_path / 'mae'}, lora: {{r: 2, alpha: 4}}}}}}\n"
        "train: {epochs: 2, precision: fp32, progress: false}\n")
    assert main(["train", str(train_cfg), "--out", str(tmp_path / "ft")]) == 0
    ft = json.loads((tmp_path / "ft" / "results.json").read_text())
    assert ft["model"]["lora_targets"] == 12 and 0 <= ft["final"]["macro_f1"] <= 1
