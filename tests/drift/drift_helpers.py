"""Small generated HAPT-like streams for the drift tests (real data only in the one real test)."""

from fedhar.drift.synthetic import synthetic_streams as make_streams

__all__ = ["make_streams"]
