"""Experience replay: train on the new windows plus a reservoir sample of all earlier ones."""

from __future__ import annotations

from fedhar.continual.buffer import ReservoirBuffer
from fedhar.continual.detector import ConfidenceDriftDetector
from fedhar.continual.strategies.base import Strategy
from fedhar.data.dataset import concat


class Replay(Strategy):
    """Fit on ``exp.train`` concatenated with the buffer, then offer ``exp.train`` to the buffer.

    The buffer (:class:`~fedhar.continual.buffer.ReservoirBuffer`) holds at most
    ``buffer_windows`` windows and ``buffer_bytes`` bytes, a uniform sample over every window
    seen so far. Replayed windows are simply concatenated with the new ones (each epoch shuffles
    the union), so their share of a batch is ``len(buffer) / (len(buffer) + len(exp.train))``.
    """

    name = "replay"

    def __init__(self, buffer_windows: int = 500, buffer_bytes: int | None = None, seed: int = 0,
                 detector: ConfidenceDriftDetector | None = None) -> None:
        super().__init__(detector)
        self.buffer = ReservoirBuffer(buffer_windows, buffer_bytes, seed)

    def options(self) -> dict:
        return {"buffer_windows": self.buffer.capacity_windows, "buffer_bytes": self.buffer.capacity_bytes,
                "seed": self.buffer.seed}

    def begin_experience(self, model, exp, cfg, seed):
        if not len(self.buffer):
            return exp.train, []
        return concat([exp.train, self.buffer.as_dataset(exp.train)], name=f"{exp.train.name}+replay"), []

    def end_experience(self, model, exp, cfg, seed) -> None:
        self.buffer.add(exp.train)

    def memory(self) -> dict:
        return {"buffer_windows": len(self.buffer), "buffer_bytes": self.buffer.nbytes, "adapter_bytes": 0,
                "extra_bytes": 0}

    def _state(self) -> dict:
        return {"buffer": self.buffer.state_dict()}

    def _load_state(self, state: dict) -> None:
        self.buffer.load_state_dict(state["buffer"])
