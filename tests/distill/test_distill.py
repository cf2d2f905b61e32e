"""Distillation: the KD loss, cached teacher logits, KD inside the one training loop, and FedDF."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fedhar.distill import DistillConfig, TeacherLogitCache, kd_loss, kd_objective
from fedhar.exceptions import ConfigError


def test_kd_loss_is_zero_when_student_equals_teacher():
    logits = torch.randn(8, 5)
    cfg = DistillConfig(temperature=1.0, weight=1.0)
    assert kd_loss(logits, logits.clone(), None, cfg).item() == pytest.approx(0.0, abs=1e-6)
    other = torch.randn(8, 5)
    assert kd_loss(other, logits, None, cfg).item() > 1e-3
    # with weight < 1 the cross-entropy on the labels enters, and labels become required
    y = torch.randint(0, 5, (8,))
    half = kd_loss(logits, logits, y, DistillConfig(temperature=1.0, weight=0.5)).item()
    assert half == pytest.approx(0.5 * torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-5)
    with pytest.raises(ValueError, match="labels are needed"):
        kd_loss(logits, logits, None, DistillConfig(weight=0.5))
    # masked classes (-1e9 on both sides) contribute nothing
    masked = logits.clone()
    masked[:, 0] = -1e9
    assert kd_loss(masked, masked.clone(), None, DistillConfig(temperature=2.0, weight=1.0)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="temperature"):
        DistillConfig(temperature=0)


def test_teacher_logits_are_computed_once_and_reused(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float32).reshape(3, 2)

    cache = TeacherLogitCache(tmp_path)
    a = cache.get("k1", compute)
    for _ in range(3):  # every later epoch / call
        assert np.array_equal(cache.get("k1", compute), a)
    assert len(calls) == 1 and cache.calls == 1
    fresh = TeacherLogitCache(tmp_path)  # a restarted run reads the file instead of the teacher
    assert np.array_equal(fresh.get("k1", compute), a) and fresh.calls == 0 and len(calls) == 1
    fresh.get("k2", compute)  # another teacher or other data is another key
    assert fresh.calls == 1 and len(calls) == 2


def test_fit_with_the_kd_objective_pulls_the_student_to_the_teacher(smoke_config):
    from fedhar.data import make_synthetic
    from fedhar.models import build_model
    from fedhar.training.config import TrainConfig
    from fedhar.training.loop import fit, predict_logits

    ds = make_synthetic(n_per_class=10, subjects=2, seed=0)
    cfg = smoke_config().model
    teacher = build_model(cfg, ds.channels, ds.window_length, ds.classes, seed=1)
    soft = predict_logits(teacher, ds.X)
    wrong = ds.replace(y=np.zeros(len(ds), np.int64))  # labels that disagree with the teacher: KL only must ignore them
    student = build_model(cfg, ds.channels, ds.window_length, ds.classes, seed=2)
    before = (predict_logits(student, ds.X).argmax(1) == soft.argmax(1)).mean()
    tcfg = TrainConfig(epochs=30, batch_size=16, lr=5e-3, precision="fp32", progress=False)
    with pytest.raises(ValueError, match="soft_targets"):
        kd_objective(soft[:3], wrong, DistillConfig())
    with pytest.raises(ValueError, match="soft_targets.*classes"):
        fit(student, wrong, tcfg, objective=kd_objective(soft[:, :2], wrong, DistillConfig()))
    fit(student, wrong, tcfg, objective=kd_objective(soft, wrong, DistillConfig(temperature=1.0, weight=1.0)))
    after = (predict_logits(student, ds.X).argmax(1) == soft.argmax(1)).mean()
    assert after > before and after >= 0.8


PUBLIC = {"source": "synthetic", "split": "stratified", "test_fraction": 0.2,
          "options": {"n_per_class": 12, "subjects": 2, "seed": 7}}


def test_feddf_ensemble_distillation_moves_the_global_model_to_the_ensemble(smoke_config):
    from fedhar.federated.distill import ServerDistiller
    from fedhar.federated.task import FederatedTask
    from fedhar.training.loop import predict_logits

    # clients that drift apart (6 local epochs at a high rate), so their average is not their ensemble
    cfg = smoke_config(train={"lr": 1e-2}, federated={"local_epochs": 6, "distill": {
        "enabled": True, "source": "ensemble", "public": PUBLIC, "epochs": 8, "lr": 1e-3}})
    task = FederatedTask(cfg)
    start = task.initial_state()
    clients = [task.train_client(start, pid, 1)[0] for pid in (0, 1, 2)]
    averaged = {k: sum(c[k] for c in clients) / len(clients) for k in start}
    distiller = ServerDistiller(cfg.federated.distill, task, seed=0)
    new = distiller(1, averaged, clients)
    row = distiller.rows[-1]
    assert row["public_windows"] == len(distiller.public) > 0
    assert row["kl_after"] < row["kl_before"] and row["agreement_after"] > 0.5
    assert any(not torch.equal(new[k], averaged[k]) for k in new)  # the server step changed the global model
    assert set(new) == set(start)  # still only the trainable state: nothing else would be sent
    # the targets were the mean of the client models' logits on the public windows
    expected = []
    for c in clients:
        task.model.load_trainable_state(c)
        expected.append(predict_logits(task.model, distiller.public.X))
    assert np.allclose(distiller.targets(clients), np.mean(expected, 0), atol=1e-5)


def test_feddf_teacher_strategy_option_in_a_federated_run(tmp_path):
    """A trained teacher on the server distils into the global student every round (Flower, Ray)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    teacher = tmp_path / "teacher"
    res = subprocess.run([sys.executable, "-m", "fedhar.cli", "train", "configs/smoke.yaml", "--out", str(teacher),
                          "--set", "train.epochs=3"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    run = tmp_path / "fed"
    sets = ["federated.distill.enabled=true", "federated.distill.source=teacher", f"federated.distill.teacher={teacher}",
            "federated.distill.public=" + json.dumps(PUBLIC), "federated.distill.epochs=2"]
    args = [sys.executable, "-m", "fedhar.cli", "simulate", "configs/smoke.yaml", "--out", str(run)]
    for s in sets:
        args += ["--set", s]
    res = subprocess.run(args, cwd=repo, capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads((run / "results.json").read_text())
    assert r["complete"] and all(0 <= row["distill_agreement"] <= 1 for row in r["rounds"])
    rounds = json.loads((run / "distill" / "rounds.json").read_text())["rounds"]
    assert [x["round"] for x in rounds] == [1, 2] and all(x["source"] == "teacher" for x in rounds)
    assert rounds[-1]["teacher_logit_computations"] == 1  # computed once for the whole run, not per round
    assert len(list((run / "distill").glob("teacher_logits_*.npy"))) == 1


def test_feddf_config_errors():
    from fedhar.config import build_config

    with pytest.raises(ConfigError, match="needs `federated.distill.public`"):
        build_config({"federated": {"distill": {"enabled": True}}})
    with pytest.raises(ConfigError, match="needs `federated.distill.teacher`"):
        build_config({"federated": {"distill": {"enabled": True, "source": "teacher", "public": PUBLIC}}})
    with pytest.raises(ConfigError, match="`federated.distill.source` must be one of 'ensemble', 'teacher'; got 'oracle'"):
        build_config({"federated": {"distill": {"source": "oracle"}}})


def test_sensor_window_distillation_study(tmp_path):
    """The IMU path: tiny-llama teacher -> no-LLM student on generated signals, end to end."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    out = tmp_path / "distill"
    res = subprocess.run([sys.executable, "simulations/distill.py", "--config", "configs/smoke.yaml", "--out", str(out),
                          "--set", "distill.teacher={layers: 2}", "--set", "distill.student={name: none, d_model: 16}",
                          "--set", "model.frontend.tokens=8"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    r = json.loads((out / "results.json").read_text())
    assert set(r["models"]) == {"teacher", "student", "distilled student"}
    assert r["costs"]["student"]["backbone_params"] < r["costs"]["teacher"]["backbone_params"]
    assert r["teacher_logit_computations"] == 1 and (out / "report.md").exists() and (out / "macro_f1.png").exists()
    with pytest.raises(ConfigError, match="unknown backbone field"):
        from fedhar.config import build_config

        build_config({"distill": {"student": {"blocks": 2}}})
