"""The label-name head (``model.head.kind: text``): prototypes from the frozen LLM's reading of the
class names, scaled-cosine logits, zero-shot scores for classes never trained, the contrastive term."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from fedhar.data import make_synthetic
from fedhar.data.smarthome.tokenize import load_tokenizer
from fedhar.exceptions import ConfigError, ModelError
from fedhar.models import build_model
from fedhar.models.config import BackboneConfig, FrontendConfig, HeadConfig, ModelConfig
from fedhar.models.har_model import part_of
from fedhar.models.label_head import LabelNameHead, class_texts
from fedhar.training import TrainConfig, fit

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
CLASSES = ("walking", "sitting", "lying_down", "cycling")
UNSEEN = len(CLASSES) - 1  # `cycling`: never in the training data of the zero-shot test


def build(head: dict | None = None, backbone: str = "tiny-llama", classes=CLASSES, seed: int = 0):
    cfg = ModelConfig(
        backbone=BackboneConfig(name=backbone, layers=2, d_model=32),
        frontend=FrontendConfig(tokens=6, channels=[8], kernels=[3], strides=[2]),
        head=HeadConfig(kind="text", **(head or {})),
    )
    return build_model(cfg, CHANNELS, 64, classes, seed=seed)


def test_logits_shape_texts_and_head_params():
    model = build({"label_texts": {"cycling": "riding a bicycle"}, "template": "a person {label}"})
    assert isinstance(model.head, LabelNameHead)
    assert model(torch.randn(5, 6, 64)).shape == (5, len(CLASSES))
    assert model.head.num_classes == len(CLASSES) and model.head.classes == CLASSES
    assert model.head.texts == ("a person walking", "a person sitting", "a person lying down", "a person riding a bicycle")
    assert class_texts(CLASSES, HeadConfig()) == ["walking", "sitting", "lying down", "cycling"]
    head_keys = {k for k in model.state_keys if k.startswith("head.")}
    assert head_keys == {"head.window_proj.weight", "head.window_proj.bias", "head.proto_proj.weight",
                         "head.proto_proj.bias", "head.logit_scale"}
    assert {part_of(k) for k in head_keys} == {"head"}


def test_prototypes_are_the_llm_reading_of_the_names_and_not_exchanged():
    model = build()
    protos = model.head.prototypes
    assert protos.shape == (len(CLASSES), model.backbone.hidden_size)
    assert "head.prototypes" not in model.state_keys and "head.prototypes" not in model.trainable_state()
    assert not protos.requires_grad
    assert torch.cdist(protos, protos)[~torch.eye(len(CLASSES), dtype=torch.bool)].min() > 1e-3  # all distinct
    # The mean of the frozen model's last hidden state over the text's tokens.
    ids = torch.tensor([load_tokenizer("tiny-llama").encode("lying down")])
    with torch.no_grad():
        expected = model.backbone.model(input_ids=ids).last_hidden_state[0].mean(0)
    assert torch.allclose(protos[2], expected, atol=1e-5)


def test_identity_init_gives_scaled_cosine_to_the_prototypes():
    model = build({"temperature": 0.1})
    model.eval()
    x = torch.randn(7, 6, 64)
    with torch.no_grad():
        pooled = model.features(x)
        expected = 10.0 * F.normalize(pooled, dim=-1) @ F.normalize(model.head.prototypes, dim=-1).T
        logits = model(x)
    assert torch.allclose(logits, expected, atol=1e-4)
    assert float(logits.abs().max()) <= 10.0 + 1e-4
    bare = build({"projection": False, "temperature": 0.001})
    assert isinstance(bare.head.proto_proj, torch.nn.Identity)
    assert not any(k.startswith("head.proto_proj") for k in bare.state_keys)
    assert float(bare.head.scale.detach()) == pytest.approx(100.0)  # CLIP's clamp


def test_unseen_class_is_scored_by_its_text():
    """Train on three classes; the fourth (no windows) is still scored, from its name alone."""
    ds = make_synthetic(n_per_class=12, classes=CLASSES, subjects=3, seed=1, window=64)
    train = ds.subset(np.flatnonzero(ds.y != UNSEEN))
    assert UNSEEN not in set(train.y.tolist())
    model = build()
    model.normalizer.set_stats(train.X.mean((0, 2)), train.X.std((0, 2)))
    before = model.head.prototypes.clone()
    fit(model, train, TrainConfig(epochs=2, batch_size=12, lr=3e-3, precision="fp32", progress=False))
    assert not torch.allclose(model.head.window_proj.weight, torch.eye(model.backbone.hidden_size))  # it trained
    assert torch.equal(model.head.prototypes, before)  # the names' reading is fixed at build

    x = torch.from_numpy(ds.X[:24])
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert torch.isfinite(logits).all()
    assert float(logits[:, UNSEEN].std()) > 1e-3  # depends on the window, not a constant

    # Same trained state, another text for the unseen class: only its column moves.
    renamed = build({"label_texts": {"cycling": "riding a bicycle"}})
    renamed.load_trainable_state(model.trainable_state())
    renamed.eval()
    with torch.no_grad():
        other = renamed(x)
    assert torch.allclose(other[:, :UNSEEN], logits[:, :UNSEEN], atol=1e-5)
    assert (other[:, UNSEEN] - logits[:, UNSEEN]).abs().max() > 1e-3

    # Its text set to a trained class's text: it scores exactly as that class.
    alias = build({"label_texts": {"cycling": "walking"}})
    alias.load_trainable_state(model.trainable_state())
    alias.eval()
    with torch.no_grad():
        same = alias(x)
    assert torch.allclose(same[:, UNSEEN], same[:, 0], atol=1e-5)
    assert torch.allclose(same[:, 0], logits[:, 0], atol=1e-5)


def test_head_only_training_with_feature_cache():
    ds = make_synthetic(n_per_class=6, classes=CLASSES, subjects=2, seed=2, window=64)
    model = build()
    scale = float(model.head.logit_scale.detach())
    fit(model, ds, TrainConfig(epochs=1, batch_size=8, lr=1e-2, precision="fp32", progress=False, trainable=["head"]))
    assert float(model.head.logit_scale.detach()) != scale


def test_extra_loss_is_multi_positive_infonce_over_the_batch():
    off = build()
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    assert float(off.head.extra_loss(logits, labels)) == 0.0

    head = build({"contrastive": 0.5}).head
    col0 = torch.tensor([2.0, 0.0, 1.0]).log_softmax(0)
    col1 = torch.tensor([0.0, 2.0, 1.0]).log_softmax(0)
    expected = 0.5 * 0.5 * (-(col0[0] + col0[2]) / 2 - col1[1])
    assert float(head.extra_loss(logits, labels)) == pytest.approx(float(expected), rel=1e-5)

    # A label-masked entry (-1e9) gets no probability mass and is never a positive.
    masked = logits.clone()
    masked[2, 1] = -1e9
    col1m = torch.tensor([0.0, 2.0]).log_softmax(0)
    expected_m = 0.5 * 0.5 * (-(col0[0] + col0[2]) / 2 - col1m[1])
    assert float(head.extra_loss(masked, labels)) == pytest.approx(float(expected_m), rel=1e-4)
    masked[0, 0] = -1e9  # a window masked out of its own class: dropped from the positives
    assert torch.isfinite(head.extra_loss(masked, labels))


def test_extra_loss_has_gradient_and_the_loop_adds_it():
    model = build({"contrastive": 1.0})
    model.eval()
    x = torch.randn(8, 6, 64)
    y = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = model.head.extra_loss(model(x), y)
    assert torch.isfinite(loss) and float(loss.detach()) > 0
    loss.backward()
    assert model.head.window_proj.weight.grad.abs().sum() > 0 and model.head.logit_scale.grad is not None

    ds = make_synthetic(n_per_class=4, classes=CLASSES, subjects=2, seed=3, window=64)
    calls = []
    inner = model.head.extra_loss
    model.head.extra_loss = lambda logits, labels: calls.append(len(labels)) or inner(logits, labels)
    fit(model, ds, TrainConfig(epochs=1, batch_size=8, precision="fp32", progress=False))
    assert sum(calls) == len(ds)


@pytest.mark.parametrize("name", ["none", "transformer"])
def test_needs_an_llm_backbone(name):
    with pytest.raises(ModelError, match="model.head.kind: text needs an LLM backbone"):
        build(backbone=name)


def test_label_texts_must_name_classes():
    with pytest.raises(ConfigError, match=r"model\.head\.label_texts.*running"):
        build({"label_texts": {"running": "jogging"}})
    with pytest.raises(ConfigError, match=r"model\.head\.label_texts\.cycling"):
        build({"label_texts": {"cycling": "  "}})
