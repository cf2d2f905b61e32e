"""Each study's finished ``results.json`` as flat rows (text columns name a cell, numbers are
metrics): what seeds aggregate and ``fedhar compare`` lines up. Pure functions of the saved
results, so old run folders can be read without running anything."""

from __future__ import annotations

from typing import Any, Mapping

Rows = list[dict]


def _numbers(d: Mapping[str, Any] | None) -> dict:
    return {k: v for k, v in (d or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def final_rows(results: Mapping[str, Any]) -> Rows:
    """``train`` / ``simulate``: the final metrics (and the run's seconds)."""
    final = _numbers(results.get("final"))
    return [{**final, "seconds": results.get("seconds")}] if final else []


def pretrain_rows(results: Mapping[str, Any]) -> Rows:
    return [_numbers(results.get("final"))] if results.get("final") else []


def table_rows(results: Mapping[str, Any]) -> Rows:
    """Studies that already keep one row per cell (cross_dataset, sweep, personalization)."""
    return [dict(r) for r in results.get("rows", [])]


def personalization_rows(results: Mapping[str, Any]) -> Rows:
    """Per (client, strategy) rows, plus the global model itself as the strategy ``global (none)``,
    so the verdict says whether personalising beats not personalising."""
    rows = [dict(r) for r in results.get("rows", [])]
    seen = set()
    for r in list(rows):
        if r["client"] not in seen:
            seen.add(r["client"])
            rows.append({"client": r["client"], "strategy": "global (none)", "personal_f1": r["global_f1"],
                         "global_f1": r["global_f1"], "gain": 0.0})
    return rows


def continual_rows(results: Mapping[str, Any]) -> Rows:
    return [{"model": r.get("model", "federated"), "strategy": r["strategy"], **_numbers(r.get("continual")),
             "seconds": r.get("seconds")} for r in results.get("runs", [])]


def smarthome_rows(results: Mapping[str, Any]) -> Rows:
    """Every model of every home, per home or federated."""
    return [{"home": h["home"], "model": m, **_numbers(v)} for h in results.get("homes", []) for m, v in h["models"].items()]


def distill_rows(results: Mapping[str, Any]) -> Rows:
    return [{"model": m, **_numbers(v)} for m, v in (results.get("models") or {}).items()]
