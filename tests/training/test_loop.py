import numpy as np
import pytest
import torch

from fedhar.data import make_synthetic
from fedhar.models import ClassicalModel, ModelConfig, build_model
from fedhar.schema import from_mapping
from fedhar.training import TrainConfig, classification_metrics, evaluate, fit
from fedhar.training.loop import predict_logits


def _model(seed=0, name="tiny-llama"):
    ds = make_synthetic(n_per_class=10, subjects=3, seed=1, window=64)
    cfg = from_mapping(ModelConfig, {"backbone": {"name": name, "layers": 1, "d_model": 32},
                                     "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [2]}})
    m = build_model(cfg, ds.channels, ds.window_length, ds.classes, seed=seed)
    m.normalizer.set_stats(ds.X.mean((0, 2)), ds.X.std((0, 2)))
    return m, ds


def test_loss_falls_and_metrics_reported():
    m, ds = _model()
    hist = fit(m, ds, TrainConfig(epochs=4, batch_size=16, lr=3e-3, precision="fp32", progress=False), eval_data=ds)
    assert hist[-1]["train_loss"] < 0.7 * hist[0]["train_loss"]
    assert set(hist[-1]) >= {"epoch", "train_loss", "accuracy", "macro_f1", "seconds"}
    res = evaluate(m, ds)
    assert np.asarray(res["confusion"]).sum() == len(ds)


def test_seeded_runs_identical_and_seed_matters():
    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False)
    runs = []
    for seed in (0, 0, 1):
        m, ds = _model()
        fit(m, ds, cfg, seed=seed)
        runs.append(torch.cat([v.flatten() for v in m.trainable_state().values()]))
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_only_selected_parts_change_and_penalty_applies():
    m, ds = _model()
    before = m.trainable_state()
    fit(m, ds, TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False, trainable=["head"]))
    after = m.trainable_state()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("head") for k in changed)
    calls = []
    fit(m, ds, TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False),
        penalties=[lambda model: calls.append(1) or torch.zeros(())])
    assert len(calls) == int(np.ceil(len(ds) / 16))


def test_bf16_close_to_fp32():
    m, ds = _model(name="none")
    m.eval()
    x = torch.from_numpy(ds.X[:16])
    with torch.no_grad():
        ref = m(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = m(x).float()
    assert torch.allclose(ref, low, atol=0.1, rtol=0.05)


def test_classical_baseline_and_label_subset_metrics():
    ds = make_synthetic(n_per_class=15, subjects=3, seed=2, window=64)
    clf = ClassicalModel(trees=50).fit(ds.X, ds.y)
    assert (clf.predict(ds.X) == ds.y).mean() > 0.95
    m = classification_metrics(np.array([0, 1, 2]), np.array([0, 1, 1]), 4, labels=[0, 1])
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_head_feature_cache_gives_the_same_result(precision):
    """Cached and uncached head-only training: same weights, same predictions."""
    results = []
    for cache in (True, False):
        m, ds = _model()
        cfg = TrainConfig(epochs=3, batch_size=8, precision=precision, progress=False, trainable=["head"],
                          feature_cache=cache, eval_batch_size=64)
        hist = fit(m, ds, cfg, seed=3)
        results.append((m.trainable_state(), predict_logits(m, ds.X, precision=precision), hist))
    (a, la, ha), (b, lb, hb) = results
    tol = 1e-5 if precision == "fp32" else 2e-2
    for k in a:
        assert torch.allclose(a[k], b[k], atol=tol), k
    assert not torch.equal(a["head.classifier.weight"], _model()[0].trainable_state()["head.classifier.weight"])
    assert (la.argmax(1) == lb.argmax(1)).mean() >= (1.0 if precision == "fp32" else 0.95)
    assert [round(h["train_loss"], 3) for h in ha] == pytest.approx([round(h["train_loss"], 3) for h in hb], abs=tol * 10)


def test_head_only_keeps_frozen_parts_deterministic():
    """Frozen parts run in eval mode during head-only training (no dropout noise to cache away)."""
    m, ds = _model()
    seen = []
    m.frontend.register_forward_hook(lambda mod, i, o: seen.append(mod.training))
    fit(m, ds, TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False, trainable=["head"], feature_cache=False))
    assert seen and not any(seen)
    assert m.head.training


def test_full_finetune_trains_backbone_weights():
    ds = make_synthetic(n_per_class=6, subjects=2, seed=1, window=64)
    cfg = from_mapping(ModelConfig, {"backbone": {"name": "tiny-llama", "layers": 1, "full_finetune": True},
                                     "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [2]}})
    assert cfg.backbone.lora.enabled is False
    m = build_model(cfg, ds.channels, ds.window_length, ds.classes)
    before = {k: v.clone() for k, v in m.trainable_state().items()}
    assert any("self_attn.q_proj.weight" in k for k in before) and not any("lora_" in k for k in before)
    assert not any("embed_tokens" in k for k in before)
    fit(m, ds, TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False))
    after = m.trainable_state()
    assert not torch.equal(before["backbone.model.layers.0.self_attn.q_proj.weight"], after["backbone.model.layers.0.self_attn.q_proj.weight"])


def test_objective_is_the_batch_loss():
    """``fit``'s objective sees masked logits, the labels and the batch's training rows; the default
    is cross-entropy, so passing it explicitly changes nothing."""
    from fedhar.training.loop import cross_entropy

    cfg = TrainConfig(epochs=1, batch_size=16, precision="fp32", progress=False, class_weights=True)
    seen = []

    def objective(logits, labels, index, class_weight):
        seen.append((logits.shape, index.clone(), class_weight))
        assert torch.equal(labels, torch.from_numpy(ds.y)[index])
        return cross_entropy(logits, labels, index, class_weight)

    runs = []
    for obj in (None, objective):
        m, ds = _model()
        fit(m, ds, cfg, seed=4, **({} if obj is None else {"objective": obj}))
        runs.append(m.trainable_state())
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert sorted(torch.cat([i for _, i, _ in seen]).tolist()) == list(range(len(ds)))  # every row once
    assert seen[0][0] == (16, len(ds.classes)) and seen[0][2] is not None  # class weights passed on
