"""Continual learning on a frozen LLM with LoRA: strategies, a drift detector and metrics.

Kept apart as in Avalanche: strategies (:mod:`.strategies`) only decide what to train on and
what to keep, calling the one training loop :func:`fedhar.training.loop.fit`; the evaluation
protocol (:mod:`.protocol`) fills the accuracy matrix; metrics (:mod:`.metrics`) turn it into
ACC, BWT, forgetting and FWT; :mod:`.state` persists a client's strategy across federated rounds.
"""

from fedhar.registry import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "fedhar.continual.buffer": "ReservoirBuffer",
    "fedhar.continual.detector": "ConfidenceDriftDetector stream_detection window_confidence",
    "fedhar.continual.metrics": "AccuracyMatrix continual_metrics",
    "fedhar.continual.protocol": "evaluate_experience run_stream simulate_detection step_seed",
    "fedhar.continual.state": "get_context_state load_client_state pack_state put_context_state save_client_state unpack_state",
    "fedhar.continual.strategies": "EWC RULES STRATEGIES AdapterLibrary ExperienceLike Naive Replay Strategy build_detector "
                                   "build_strategy strategy_options window_signature_features",
})
