"""Continual learning on a frozen LLM with LoRA: strategies, a drift detector and metrics.

Kept apart as in Avalanche: strategies (:mod:`.strategies`) only decide what to train on and
what to keep, calling the one training loop :func:`fedhar.training.loop.fit`; the evaluation
protocol (:mod:`.protocol`) fills the accuracy matrix; metrics (:mod:`.metrics`) turn it into
ACC, BWT, forgetting and FWT; :mod:`.state` persists a client's strategy across federated rounds.
"""

from fedhar.continual.buffer import ReservoirBuffer
from fedhar.continual.detector import ConfidenceDriftDetector, stream_detection, window_confidence
from fedhar.continual.metrics import AccuracyMatrix, continual_metrics
from fedhar.continual.protocol import evaluate_experience, run_stream, simulate_detection, step_seed
from fedhar.continual.state import (
    get_context_state,
    load_client_state,
    pack_state,
    put_context_state,
    save_client_state,
    unpack_state,
)
from fedhar.continual.strategies import (
    EWC,
    RULES,
    STRATEGIES,
    AdapterLibrary,
    ExperienceLike,
    Naive,
    Replay,
    Strategy,
    build_detector,
    build_strategy,
    strategy_options,
    window_signature_features,
)

__all__ = [
    "AccuracyMatrix", "AdapterLibrary", "ConfidenceDriftDetector", "EWC", "ExperienceLike", "Naive", "RULES",
    "Replay", "ReservoirBuffer", "STRATEGIES", "Strategy", "build_detector", "build_strategy", "continual_metrics",
    "evaluate_experience", "get_context_state", "load_client_state", "pack_state", "put_context_state",
    "run_stream", "save_client_state", "simulate_detection", "step_seed", "stream_detection", "strategy_options",
    "unpack_state", "window_confidence", "window_signature_features",
]
