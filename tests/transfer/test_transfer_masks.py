"""Label masks: a dataset is never trained or scored on classes it does not have."""

import numpy as np
import pytest
import torch

from fedhar.config import build_config
from fedhar.data import MASK_KEY, concat, with_label_mask
from fedhar.exceptions import DataError
from fedhar.models import build_model
from fedhar.training.loop import MASKED, apply_label_mask, evaluate, fit


def _masked(ds, classes):
    return with_label_mask(ds, classes)


def test_with_label_mask_tiles_and_checks(synthetic):
    ds = synthetic.subset(np.flatnonzero(synthetic.y < 4))
    masked = with_label_mask(ds)
    assert masked.extras[MASK_KEY].shape == (len(ds), 6)
    assert masked.extras[MASK_KEY][0].tolist() == [True, True, True, True, False, False]
    with pytest.raises(DataError, match="outside the label mask"):
        with_label_mask(synthetic, ["walking", "sitting"])
    with pytest.raises(DataError, match="allows no class"):
        with_label_mask(ds, np.zeros(6, dtype=bool))


def test_masks_survive_concat_and_subset(synthetic):
    a = with_label_mask(synthetic.subset(np.flatnonzero(synthetic.y < 3)))
    b = with_label_mask(synthetic.subset(np.flatnonzero(synthetic.y >= 3)))
    both = concat([a, b])
    rows = both.extras[MASK_KEY]
    assert rows[: len(a)].sum(1).tolist() == [3] * len(a) and rows[len(a):, :3].sum() == 0
    assert both.subset([0, len(a)]).extras[MASK_KEY].shape == (2, 6)


def test_apply_label_mask_numpy_and_torch():
    logits = np.array([[5.0, 1.0, 0.0]], dtype=np.float32)
    mask = np.array([[False, True, True]])
    assert apply_label_mask(logits, mask).argmax(1).tolist() == [1]
    out = apply_label_mask(torch.from_numpy(logits), torch.from_numpy(mask))
    assert out[0, 0].item() == MASKED and out.argmax(1).tolist() == [1]


def test_training_and_scoring_never_use_masked_classes(synthetic):
    """Windows of classes 0-2 masked to {0, 1, 2}: predictions stay in the mask even after the
    head is pushed towards class 5, and macro-F1 averages over the allowed classes only."""
    cfg = build_config({"model": {"backbone": {"name": "none"}, "frontend": {"tokens": 4, "channels": [8], "kernels": [3], "strides": [2]}},
                        "train": {"epochs": 3, "precision": "fp32", "progress": False, "lr": 1e-2}})
    ds = with_label_mask(synthetic.subset(np.flatnonzero(synthetic.y < 3)))
    model = build_model(cfg.model, ds.channels, ds.window_length, ds.classes, 0)
    with torch.no_grad():
        model.head.classifier.bias[5] = 100.0  # without the mask every window would be `lying`
    history = fit(model, ds, cfg.train, seed=0)
    assert np.isfinite(history[-1]["train_loss"])
    assert model.head.classifier.bias[5].item() == pytest.approx(100.0, abs=0.1)  # no gradient reaches it
    m = evaluate(model, ds, cfg.train)
    assert set(np.flatnonzero(np.asarray(m["confusion"]).sum(0))) <= {0, 1, 2}
    unmasked = evaluate(model, ds.replace(extras={}), cfg.train)
    assert np.asarray(unmasked["confusion"])[:, 5].sum() == len(ds)
