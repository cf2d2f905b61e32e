"""Elastic weight consolidation (Kirkpatrick et al., 2017), in its online form (Schwarz et al., 2018).

After each experience the diagonal Fisher information ``F`` of the trainable parameters is
estimated and the parameters ``theta*`` are kept as the anchor. While training later
experiences the loss gets

    lambda / 2 * sum_k F_k (theta_k - theta*_k)^2

Online EWC keeps a single penalty: ``F <- gamma * F + F_new`` and ``theta* <- theta`` after each
experience (``gamma = 1`` sums the Fishers of all past experiences).

Fisher estimate: the *empirical* Fisher, from gradients of the log-likelihood of the **true
labels**, on at most ``fisher_samples`` windows of the experience (drawn at random), in
mini-batches of ``fisher_batch_size`` windows with the model in eval mode (no dropout)::

    F = mean over batches of  b * (grad of mean_batch(-log p(y|x)))^2

With ``fisher_batch_size = 1`` (default) this is exactly the mean of per-window squared
gradients; for larger batches the factor ``b`` makes it approximately so (exact when the
per-window gradients of a batch are uncorrelated), trading accuracy for speed. Only parameters
that train under ``cfg.trainable`` (LoRA, frontend, head; not the normaliser's statistics) get a
Fisher and a penalty.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fedhar.continual.detector import ConfidenceDriftDetector
from fedhar.continual.strategies.base import Strategy, to_numpy_state
from fedhar.exceptions import ConfigError
from fedhar.training.loop import autocast


class EWC(Strategy):
    """Online EWC; see the module doc for the penalty and the Fisher estimate.

    Parameters
    ----------
    lambda_ : float
        Penalty strength.
    fisher_samples : int
        Most windows of an experience used for its Fisher.
    fisher_batch_size : int
        Windows per gradient in the Fisher estimate (1: exact empirical Fisher).
    gamma : float
        Decay of the accumulated Fisher (online EWC), in ``[0, 1]``.
    """

    name = "ewc"

    def __init__(self, lambda_: float = 100.0, fisher_samples: int = 256, fisher_batch_size: int = 1,
                 gamma: float = 1.0, detector: ConfidenceDriftDetector | None = None) -> None:
        super().__init__(detector)
        if lambda_ < 0 or int(fisher_samples) < 1 or int(fisher_batch_size) < 1 or not 0.0 <= gamma <= 1.0:
            raise ConfigError(
                "continual strategy `ewc`: need lambda_ >= 0, fisher_samples >= 1, fisher_batch_size >= 1 and "
                f"0 <= gamma <= 1; got lambda_={lambda_}, fisher_samples={fisher_samples}, "
                f"fisher_batch_size={fisher_batch_size}, gamma={gamma}."
            )
        self.lambda_ = float(lambda_)
        self.fisher_samples = int(fisher_samples)
        self.fisher_batch_size = int(fisher_batch_size)
        self.gamma = float(gamma)
        self.fisher: dict[str, torch.Tensor] = {}
        self.anchor: dict[str, torch.Tensor] = {}

    def options(self) -> dict:
        return {"lambda_": self.lambda_, "fisher_samples": self.fisher_samples,
                "fisher_batch_size": self.fisher_batch_size, "gamma": self.gamma}

    # ------------------------------------------------------------------ penalty
    def penalty(self, model: nn.Module) -> torch.Tensor:
        """``lambda/2 * sum F (theta - theta*)^2`` over the anchored parameters (0 before any)."""
        params = dict(model.named_parameters())
        total = torch.zeros(())
        for k, F in self.fisher.items():
            p = params[k]
            total = total + (F.to(p.dtype) * (p - self.anchor[k].to(p.dtype)) ** 2).sum()
        return 0.5 * self.lambda_ * total

    def begin_experience(self, model, exp, cfg, seed):
        return exp.train, ([self.penalty] if self.fisher and self.lambda_ > 0 else [])

    # ------------------------------------------------------------------ Fisher
    def estimate_fisher(self, model, X: np.ndarray, y: np.ndarray, cfg, seed: int = 0) -> dict[str, torch.Tensor]:
        """Diagonal empirical Fisher of the parameters that train under ``cfg.trainable``."""
        if hasattr(model, "set_trainable"):
            model.set_trainable(tuple(cfg.trainable))
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        fisher = {k: torch.zeros_like(p, dtype=torch.float32) for k, p in params.items()}
        rng = np.random.default_rng(seed)
        idx = rng.permutation(len(X))[: self.fisher_samples]
        was_training = model.training
        model.eval()
        batches = 0
        try:
            for start in range(0, len(idx), self.fisher_batch_size):
                b = idx[start : start + self.fisher_batch_size]
                model.zero_grad(set_to_none=True)
                with autocast(cfg.precision):
                    logits = model(torch.from_numpy(np.ascontiguousarray(X[b])))
                loss = nn.functional.cross_entropy(logits.float(), torch.from_numpy(y[b]))
                loss.backward()
                for k, p in params.items():
                    if p.grad is not None:
                        fisher[k] += len(b) * p.grad.detach().float() ** 2
                batches += 1
        finally:
            model.zero_grad(set_to_none=True)
            model.train(was_training)
        return {k: v / max(batches, 1) for k, v in fisher.items()}

    def end_experience(self, model, exp, cfg, seed) -> None:
        if not len(exp.train):
            return
        new = self.estimate_fisher(model, exp.train.X, exp.train.y, cfg, seed)
        for k, F in new.items():
            self.fisher[k] = self.gamma * self.fisher[k] + F if k in self.fisher else F
        params = dict(model.named_parameters())
        self.anchor = {k: params[k].detach().float().clone() for k in self.fisher}

    # ------------------------------------------------------------------ memory and state
    def memory(self) -> dict:
        extra = sum(t.numel() * t.element_size() for d in (self.fisher, self.anchor) for t in d.values())
        return {"buffer_windows": 0, "buffer_bytes": 0, "adapter_bytes": 0, "extra_bytes": int(extra)}

    def _state(self) -> dict:
        return {"fisher": to_numpy_state(self.fisher), "anchor": to_numpy_state(self.anchor)}

    def _load_state(self, state: dict) -> None:
        self.fisher = {k: torch.as_tensor(np.array(v, dtype=np.float32)) for k, v in state["fisher"].items()}
        self.anchor = {k: torch.as_tensor(np.array(v, dtype=np.float32)) for k, v in state["anchor"].items()}

