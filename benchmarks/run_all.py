"""Run every benchmark and write one report: ``python benchmarks/run_all.py --out runs/bench``.

Writes ``<out>/<section>.json`` and ``.md`` per section, ``<out>/report.md`` with all tables and
``<out>/results.json``. ``--update-readme`` also puts the report into ``benchmarks/README.md``
between its markers. Run it on an otherwise idle machine: the numbers are wall-clock.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import export  # noqa: E402
import federated_scale  # noqa: E402
import head_cache  # noqa: E402
import secure_aggregation  # noqa: E402
import throughput  # noqa: E402
import time_to_accuracy  # noqa: E402
from common import machine  # noqa: E402

SECTIONS = {"throughput": throughput.run, "head_cache": head_cache.run,
            "time_to_accuracy": time_to_accuracy.run, "federated_scale": federated_scale.run,
            "secure_aggregation": secure_aggregation.run, "export": export.run}
BEGIN, END = "<!-- latest-report:begin -->", "<!-- latest-report:end -->"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench")
    ap.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {', '.join(SECTIONS)}")
    ap.add_argument("--smoke", action="store_true", help="tiny models and data: checks that every script runs (seconds)")
    ap.add_argument("--update-readme", action="store_true", help="copy the report into benchmarks/README.md")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the other sections' results already in --out (re-measure only --only)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    if not args.smoke and not os.environ.get("FEDHAR_DATA_DIR"):
        ap.error("set FEDHAR_DATA_DIR to the folder holding uci_har.npz (make bench does this)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine()
    parts, payload = [], {"machine": info, "sections": {}}
    previous = json.loads((out / "results.json").read_text())["sections"] if args.reuse and (out / "results.json").exists() else {}
    for name in SECTIONS:
        if name not in chosen:
            if name in previous and (out / f"{name}.md").exists():
                payload["sections"][name] = {**previous[name], "reused": True}
                parts.append((out / f"{name}.md").read_text() + f"\n_{name}: {previous[name]['seconds']:.0f} s (earlier run)_\n")
            continue
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        result = SECTIONS[name](out, smoke=args.smoke)
        payload["sections"][name] = {**result["payload"], "seconds": time.perf_counter() - t0}
        parts.append(result["markdown"] + f"\n_{name}: {time.perf_counter() - t0:.0f} s_\n")
    total = sum(sec["seconds"] for sec in payload["sections"].values())
    payload["seconds"] = total
    header = (f"Measured on {info['cpu']} ({info['cores']} cores, torch {info['torch']}, {info['torch_threads']} threads; "
              f"avx512_bf16: {info['avx512_bf16']}, amx_bf16: {info['amx_bf16']}); the sections took {total / 60:.1f} min "
              f"in all, by `python benchmarks/run_all.py --out {args.out}`{' --smoke' if args.smoke else ''}"
              f"{' (sections marked *earlier run* come from a previous invocation into the same folder)' if previous else ''}.\n")
    report = header + "\n" + "\n".join(parts)
    (out / "report.md").write_text(report)
    (out / "results.json").write_text(json.dumps(payload, indent=2, default=float))
    print("\n" + report)
    if args.update_readme:
        readme = HERE / "README.md"
        text = readme.read_text()
        if BEGIN not in text or END not in text:
            raise SystemExit(f"{readme}: markers {BEGIN} / {END} not found")
        head, rest = text.split(BEGIN, 1)
        readme.write_text(head + BEGIN + "\n" + report + "\n" + END + rest.split(END, 1)[1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
