"""The `patch` frontend (GPT4TS / PatchTST tokens with instance normalisation) and `train_norms`."""

import pytest
import torch

from fedhar.exceptions import ConfigError
from fedhar.models import ModelConfig, build_model
from fedhar.models.config import FrontendConfig
from fedhar.models.frontend import FRONTENDS, ConvFrontend, PatchFrontend, build_frontend
from fedhar.models.har_model import part_of
from fedhar.schema import from_mapping

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = ("a", "b", "c")
T = 42  # patch 8, stride 4: ceil((42 - 8) / 4) + 1 = 10 patches, the last one padded by 2 samples
N_PATCHES = 10
D = 32


def patch_frontend(embedding_norm: float | None = None, **kw) -> PatchFrontend:
    cfg = FrontendConfig(kind="patch", patch_length=8, patch_stride=4, dropout=0.0, **kw)
    torch.manual_seed(0)
    return PatchFrontend(CHANNELS, T, D, cfg, embedding_norm).eval()


def windows(batch: int = 4, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, len(CHANNELS), T, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("per, streams", [("sensor", 2), ("channel", 6)])
@pytest.mark.parametrize("instance_norm", [True, False])
def test_shapes_and_documented_token_count(per, streams, instance_norm):
    fe = patch_frontend(patch_per=per, instance_norm=instance_norm)
    out = fe(windows(), None)
    expected = N_PATCHES * streams + int(instance_norm)
    assert out.shape == (4, expected, D)
    assert fe.num_tokens == expected and fe.n_patches == N_PATCHES
    assert FRONTENDS.get("patch") is PatchFrontend
    assert isinstance(build_frontend(FrontendConfig(kind="patch"), CHANNELS, T, D, None), PatchFrontend)


def test_tokens_ignore_cfg_tokens():
    a = patch_frontend(tokens=3)
    b = patch_frontend(tokens=64)
    assert a(windows()).shape == b(windows()).shape == (4, 2 * N_PATCHES + 1, D)


@pytest.mark.parametrize("per", ["sensor", "channel"])
def test_padding_covers_the_last_sample(per):
    fe = patch_frontend(patch_per=per, instance_norm=False)
    x = windows()
    y = x.clone()
    y[..., -1] += 5.0  # only in the last (padded) patch
    a, b = fe(x), fe(y)
    assert not torch.allclose(a[:, N_PATCHES - 1], b[:, N_PATCHES - 1])  # last patch of the first stream
    assert torch.allclose(a[:, : N_PATCHES - 1], b[:, : N_PATCHES - 1])


@pytest.mark.parametrize("per", ["sensor", "channel"])
def test_instance_norm_removes_level_and_scale_into_stats_token(per):
    x = windows()
    y = x.clone()
    y[:, 1] = y[:, 1] * 10 + 3
    fe = patch_frontend(patch_per=per, instance_norm=True)
    a, b = fe(x), fe(y)
    assert torch.allclose(a[:, 1:], b[:, 1:], atol=1e-4)  # patch tokens see shape only
    assert (a[:, 0] - b[:, 0]).abs().max() > 1e-2  # the stats token keeps level and scale
    mean = x[:, 2:3].mean(-1, keepdim=True)
    z = x.clone()
    z[:, 2:3] = (x[:, 2:3] - mean) * 10 + mean  # scale alone, same level
    c = fe(z)
    assert torch.allclose(a[:, 1:], c[:, 1:], atol=1e-4)
    assert (a[:, 0] - c[:, 0]).abs().max() > 1e-2
    raw = patch_frontend(patch_per=per, instance_norm=False)
    assert (raw(x) - raw(y)).abs().max() > 1e-2  # without it the patch tokens do change


def test_tokens_scaled_to_embedding_norm():
    fe = patch_frontend(embedding_norm=3.0)
    norms = fe(windows() * 50).norm(dim=-1)
    assert torch.allclose(norms, torch.full_like(norms, 3.0), rtol=1e-2)


@pytest.mark.parametrize("per", ["sensor", "channel"])
@pytest.mark.parametrize("instance_norm", [True, False])
def test_absent_sensor_gets_the_absent_embedding(per, instance_norm):
    fe = patch_frontend(patch_per=per, instance_norm=instance_norm)
    acc = windows(2)[:, :3]
    zero_gyro = torch.cat([acc, torch.zeros_like(acc)], 1)
    noisy_gyro = torch.cat([acc, 0.01 * windows(2, seed=2)[:, 3:]], 1)
    present_zero, present_noisy = fe.presence(zero_gyro), fe.presence(noisy_gyro)
    assert present_zero.tolist() == [[True, False]] * 2 and bool(present_noisy.all())
    out_zero, out_noisy = fe(zero_gyro, present_zero), fe(noisy_gyro, present_noisy)
    assert (out_zero - out_noisy).abs().max() > 1e-2  # a missing gyroscope is not a still one
    # Marked absent, the gyroscope's content does not matter at all (tokens and statistics).
    assert torch.allclose(fe(noisy_gyro, present_zero), out_zero, atol=1e-6)
    # The two zero-gyro windows with the same acc give identical outputs.
    assert torch.allclose(out_zero[0], fe(zero_gyro[:1], present_zero[:1])[0], atol=1e-6)
    first = int(instance_norm)
    acc_tokens = slice(first, first + (3 if per == "channel" else 1) * N_PATCHES)
    assert torch.allclose(out_zero[:, acc_tokens], out_noisy[:, acc_tokens], atol=1e-6)  # acc unaffected
    out_zero.sum().backward()
    assert fe.absent.grad[1].abs().sum() > 0 and fe.absent.grad[0].abs().sum() == 0


def test_patch_longer_than_window_names_the_key():
    with pytest.raises(ConfigError, match="model.frontend.patch_length"):
        PatchFrontend(CHANNELS, T, D, FrontendConfig(kind="patch", patch_length=T + 1), None)
    with pytest.raises(ConfigError, match="model.frontend.patch_length"):
        model(backbone="none", frontend={"patch_length": 64})


def test_conv_frontend_shares_the_sensor_grouping():
    fe = ConvFrontend(CHANNELS, T, D, FrontendConfig(tokens=4, channels=[8], kernels=[3], strides=[1]))
    x = windows()
    x[0, 3:] = 0
    assert fe.sensor_names == patch_frontend().sensor_names == ["acc", "gyro"]
    assert fe.presence(x).tolist() == patch_frontend().presence(x).tolist() == [[True, False]] + [[True, True]] * 3
    assert fe(x, fe.presence(x)).shape == (4, 4, D)


def model(backbone: str = "tiny-llama", frontend: dict | None = None, **backbone_kw):
    spec = {"backbone": {"name": backbone, "layers": 2, "d_model": D, **backbone_kw},
            "frontend": {"kind": "patch", "patch_length": 8, "patch_stride": 4, **(frontend or {})}}
    return build_model(from_mapping(ModelConfig, spec), CHANNELS, T, CLASSES, seed=0)


def train_step(m) -> dict[str, torch.Tensor]:
    """One AdamW step on a random batch; returns the trainable state before it."""
    before = m.trainable_state()
    m.train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-2)
    x = windows(8)
    x[:4, 3:] = 0  # some windows without gyroscope
    loss = torch.nn.functional.cross_entropy(m(x), torch.arange(8) % 3)
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()
    return before


@pytest.mark.parametrize("backbone", ["tiny-llama", "none"])
@pytest.mark.parametrize("per", ["sensor", "channel"])
def test_full_model_builds_and_trains_one_step(backbone, per):
    m = model(backbone, {"patch_per": per})
    assert isinstance(m.frontend, PatchFrontend)
    streams = 2 if per == "sensor" else 6
    assert m.frontend(m.normalizer(windows())).shape[1] == N_PATCHES * streams + 1
    assert m(windows()).shape == (4, 3)
    before = train_step(m)
    after = m.trainable_state()
    for key in ("frontend.position", "frontend.stream", "frontend.stats.weight", "frontend.absent"):
        assert not torch.equal(before[key], after[key]), key


def rms_norm_weights(m) -> set[str]:
    return {f"{name}.weight" for name, mod in m.named_modules() if type(mod).__name__.endswith("RMSNorm")}


def test_train_norms_trains_the_llm_norms():
    m = model(train_norms=True)
    norms = rms_norm_weights(m)
    assert len(norms) == 2 * 2 + 1  # two per block, plus the final norm
    params = dict(m.named_parameters())
    assert all(params[n].requires_grad for n in norms)
    assert norms <= set(m.trainable_state())
    assert {k for k in m.state_keys if part_of(k) == "norms"} == norms
    before = train_step(m)
    assert any(not torch.equal(before[n], params[n].detach()) for n in norms)
    m.set_trainable(("head",))
    assert not any(params[n].requires_grad for n in norms)
    assert set(m.trainable_state()) >= norms  # the exchanged keys stay fixed
    m.set_trainable(("norms",))
    assert {n for n, p in params.items() if p.requires_grad} == norms


def test_without_train_norms_norms_stay_frozen_and_out_of_state():
    m = model(train_norms=False)
    norms = rms_norm_weights(m)
    params = dict(m.named_parameters())
    assert norms and not any(params[n].requires_grad for n in norms)
    assert not norms & set(m.trainable_state())
    assert not any(part_of(k) == "norms" for k in m.state_keys)
