"""An adapter library: one LoRA adapter (+ frontend, head, normaliser) per detected domain.

With a frozen LLM backbone the per-domain part of the model is small (the model's
:meth:`~fedhar.models.har_model.HARModel.trainable_state`: LoRA, frontend, head, normaliser
statistics), so keeping one per domain costs kilobytes to a few megabytes, where one copy of the
whole model per domain would cost the backbone each time.

**Domain signature.** For each window and channel: the mean and the standard deviation over
time, and whether the channel is all zeros (a missing sensor, e.g. no gyroscope). A domain keeps
the count, sum and sum of squares of these per-window features, hence their mean ``mu_d`` and
spread ``sd_d`` (``3 * C`` values each); a batch of windows has its own ``mu_b``, ``sd_b``.

**Distance.** Normalised, standardised Euclidean distance between a batch and a domain::

    scale = sqrt((sd_b^2 + sd_d^2) / 2 + min_scale^2)
    d(b, d) = sqrt(mean_k ((mu_b[k] - mu_d[k]) / scale[k])^2)

i.e. the root-mean-square shift of the average statistics in units of their within-domain
spread (``min_scale`` keeps features that never vary, such as an all-zero flag, from dividing by
zero; a channel that goes missing then moves its flag by ``1 / min_scale`` units).

**Training** (``begin_experience``): with ``use_given_domains`` and a domain id in
``exp.info["domain"]``, the experience belongs to the stored domain of that name (new if none).
Otherwise (default: detection) it belongs to the nearest stored domain when ``d <= threshold``,
else to a new domain. A known domain's adapter is loaded and trained further. A new domain's
adapter starts from the *most recently trained* adapter (not from whatever an evaluation loaded
last, so results do not depend on evaluation order; the initial model for the first domain);
with ``refit_normalizer`` its normaliser is refitted on the experience's windows. When the library
holds ``max_adapters`` domains, a new domain is merged into the nearest one. After fitting, the
adapter is stored and the domain's statistics absorb the experience's windows. Each decision is
logged in ``decisions`` (so a simulation can score the detection against the true domains).

**Inference** (``before_eval(model, X, cfg)``), rule ``input_stats`` (default): load the adapter
of the stored domain nearest to the test batch ``X`` by the distance above. Rule ``confidence``:
load the adapter under which the model's mean max-softmax probability on ``X`` is highest (one
forward pass per adapter). Neither rule looks at labels.
"""

from __future__ import annotations

import numpy as np

from fedhar.continual.detector import ConfidenceDriftDetector, window_confidence
from fedhar.continual.strategies.base import Strategy, state_nbytes, to_numpy_state
from fedhar.data.splits import fit_channel_stats
from fedhar.exceptions import ConfigError

RULES = ("input_stats", "confidence")


def window_signature_features(X: np.ndarray) -> np.ndarray:
    """Per-window signature features ``(N, 3C)``: channel means, stds and all-zero flags."""
    X = np.asarray(X, dtype=np.float64)
    return np.concatenate([X.mean(axis=2), X.std(axis=2), (np.abs(X).max(axis=2) == 0).astype(np.float64)], axis=1)


def _stats(feats: np.ndarray) -> dict:
    return {"n": int(len(feats)), "sum": feats.sum(axis=0), "sumsq": (feats**2).sum(axis=0)}


def _mean_sd(stats: dict) -> tuple[np.ndarray, np.ndarray]:
    n = max(int(stats["n"]), 1)
    mu = np.asarray(stats["sum"]) / n
    var = np.maximum(np.asarray(stats["sumsq"]) / n - mu**2, 0.0)
    return mu, np.sqrt(var)


class AdapterLibrary(Strategy):
    """One trainable state per domain, chosen at inference by a documented rule (module doc).

    Parameters
    ----------
    max_adapters : int
        Most domains (adapters) kept.
    rule : str
        Inference rule: ``input_stats`` (nearest signature) or ``confidence``.
    threshold : float
        Largest distance at which an experience counts as a known domain (detection mode).
    use_given_domains : bool
        Take the domain from ``exp.info["domain"]`` when present instead of detecting it.
    refit_normalizer : bool
        Refit a new domain's normaliser statistics on its training windows.
    min_scale : float
        Floor of the per-feature scale of the distance.
    """

    name = "adapters"

    def __init__(self, max_adapters: int = 8, rule: str = "input_stats", threshold: float = 0.5,
                 use_given_domains: bool = False, refit_normalizer: bool = False, min_scale: float = 0.05,
                 detector: ConfidenceDriftDetector | None = None) -> None:
        super().__init__(detector)
        if rule not in RULES:
            raise ConfigError(f"continual strategy `adapters`: `rule` must be one of {', '.join(RULES)}; got {rule!r}.")
        if int(max_adapters) < 1 or threshold < 0 or min_scale <= 0:
            raise ConfigError(
                "continual strategy `adapters`: need max_adapters >= 1, threshold >= 0 and min_scale > 0; got "
                f"max_adapters={max_adapters}, threshold={threshold}, min_scale={min_scale}."
            )
        self.max_adapters = int(max_adapters)
        self.rule = rule
        self.threshold = float(threshold)
        self.use_given_domains = bool(use_given_domains)
        self.refit_normalizer = bool(refit_normalizer)
        self.min_scale = float(min_scale)
        self.domains: list[dict] = []  # {"id", "name", "state", "stats", "experiences"}
        self.decisions: list[dict] = []
        self.last_trained: int | None = None
        self.last_choice: dict | None = None
        self._pending: dict | None = None

    def options(self) -> dict:
        return {"max_adapters": self.max_adapters, "rule": self.rule, "threshold": self.threshold,
                "use_given_domains": self.use_given_domains, "refit_normalizer": self.refit_normalizer,
                "min_scale": self.min_scale}

    # ------------------------------------------------------------------ signatures
    def distance(self, feats: np.ndarray, domain: dict) -> float:
        """Distance (module doc) between windows with features ``feats`` and a stored domain."""
        mu_b, sd_b = _mean_sd(_stats(feats))
        mu_d, sd_d = _mean_sd(domain["stats"])
        scale = np.sqrt((sd_b**2 + sd_d**2) / 2 + self.min_scale**2)
        return float(np.sqrt(np.mean(((mu_b - mu_d) / scale) ** 2)))

    def distances(self, X: np.ndarray) -> list[float]:
        feats = window_signature_features(X)
        return [self.distance(feats, d) for d in self.domains]

    def _by_id(self, domain_id: int) -> dict:
        return next(d for d in self.domains if d["id"] == domain_id)

    # ------------------------------------------------------------------ training
    def begin_experience(self, model, exp, cfg, seed):
        feats = window_signature_features(exp.train.X)
        dists = [self.distance(feats, d) for d in self.domains]
        nearest = int(np.argmin(dists)) if dists else None
        given = exp.info.get("domain") if isinstance(getattr(exp, "info", None), dict) else None
        match, full = None, False
        if self.use_given_domains and given is not None:
            match = next((i for i, d in enumerate(self.domains) if d["name"] == str(given)), None)
        elif nearest is not None and dists[nearest] <= self.threshold:
            match = nearest
        if match is None and len(self.domains) >= self.max_adapters:
            match, full = nearest, True
        if match is not None:
            domain = self.domains[match]
            model.load_trainable_state(domain["state"], where=f"adapter `{domain['name']}`")
        else:
            if self.last_trained is not None:
                prev = self._by_id(self.last_trained)
                model.load_trainable_state(prev["state"], where=f"adapter `{prev['name']}`")
            if self.refit_normalizer and len(exp.train):
                model.normalizer.set_stats(*fit_channel_stats(exp.train))
        new_id = max((d["id"] for d in self.domains), default=-1) + 1
        domain_id = self.domains[match]["id"] if match is not None else new_id
        self._pending = {"feats": feats, "match": match, "id": domain_id,
                         "name": str(given) if (self.use_given_domains and given is not None) else f"domain-{domain_id}"}
        self.decisions.append({
            "experience": int(exp.index), "given_domain": None if given is None else str(given),
            "domain": domain_id, "new": match is None, "library_full": full,
            "nearest_distance": None if nearest is None else dists[nearest],
            "distances": [float(v) for v in dists],
        })
        return exp.train, []

    def end_experience(self, model, exp, cfg, seed) -> None:
        p, self._pending = self._pending, None
        if p is None:  # end without begin: treat as a new domain
            p = {"feats": window_signature_features(exp.train.X), "match": None,
                 "id": max((d["id"] for d in self.domains), default=-1) + 1}
            p["name"] = f"domain-{p['id']}"
        state = to_numpy_state(model.trainable_state())
        if p["match"] is None:
            self.domains.append({"id": p["id"], "name": p["name"], "state": state, "stats": _stats(p["feats"]),
                                 "experiences": [int(exp.index)]})
        else:
            d = self.domains[p["match"]]
            new = _stats(p["feats"])
            d["state"] = state
            d["stats"] = {"n": d["stats"]["n"] + new["n"], "sum": d["stats"]["sum"] + new["sum"],
                          "sumsq": d["stats"]["sumsq"] + new["sumsq"]}
            d["experiences"].append(int(exp.index))
        self.last_trained = p["id"]

    # ------------------------------------------------------------------ inference
    def choose(self, model, X: np.ndarray, cfg) -> dict | None:
        """The domain the rule picks for test windows ``X`` (None with an empty library)."""
        if not self.domains or len(X) == 0:
            return None
        if self.rule == "input_stats":
            scores = self.distances(X)
            best = int(np.argmin(scores))
        else:
            scores = []
            for d in self.domains:
                model.load_trainable_state(d["state"], where=f"adapter `{d['name']}`")
                scores.append(float(window_confidence(model, X, cfg).mean()))
            best = int(np.argmax(scores))
        d = self.domains[best]
        return {"domain": d["id"], "name": d["name"], "rule": self.rule, "scores": [float(s) for s in scores]}

    def before_eval(self, model, X: np.ndarray, cfg) -> None:
        choice = self.choose(model, X, cfg)
        if choice is not None:
            d = self._by_id(choice["domain"])
            model.load_trainable_state(d["state"], where=f"adapter `{d['name']}`")
        self.last_choice = choice

    def eval_info(self) -> dict | None:
        return self.last_choice

    # ------------------------------------------------------------------ memory and state
    def memory(self) -> dict:
        adapter = sum(state_nbytes(d["state"]) for d in self.domains)
        extra = sum(np.asarray(d["stats"]["sum"]).nbytes + np.asarray(d["stats"]["sumsq"]).nbytes for d in self.domains)
        return {"buffer_windows": 0, "buffer_bytes": 0, "adapter_bytes": int(adapter), "extra_bytes": int(extra)}

    def _state(self) -> dict:
        return {
            "domains": [{"id": d["id"], "name": d["name"], "state": {k: v.copy() for k, v in d["state"].items()},
                         "stats": {"n": d["stats"]["n"], "sum": np.asarray(d["stats"]["sum"]).copy(),
                                   "sumsq": np.asarray(d["stats"]["sumsq"]).copy()},
                         "experiences": list(d["experiences"])} for d in self.domains],
            "decisions": [dict(x) for x in self.decisions],
            "last_trained": self.last_trained,
        }

    def _load_state(self, state: dict) -> None:
        self.domains = [{"id": int(d["id"]), "name": str(d["name"]),
                         "state": {k: np.array(v, copy=True) for k, v in d["state"].items()},
                         "stats": {"n": int(d["stats"]["n"]), "sum": np.array(d["stats"]["sum"], dtype=np.float64),
                                   "sumsq": np.array(d["stats"]["sumsq"], dtype=np.float64)},
                         "experiences": [int(i) for i in d["experiences"]]} for d in state["domains"]]
        self.decisions = [dict(x) for x in state["decisions"]]
        self.last_trained = None if state["last_trained"] is None else int(state["last_trained"])
        self._pending = None
