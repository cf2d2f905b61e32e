"""``python -m fedhar.export.memory FILE FORMAT C T``: the memory one window's inference takes in
a fresh process that never imports torch, printed as one JSON line (see
:func:`fedhar.export.bench.peak_memory`).

The runtime is imported first; then the peak resident set is reset (Linux ``clear_refs``), the
model is loaded and answers one window, and the new peak (``VmHWM``) less the resident set before
loading is the model's cost.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _status(key: str) -> float:
    """``VmRSS`` or ``VmHWM`` of this process in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise OSError(f"/proc/self/status has no {key}")


def main(argv: list[str]) -> None:
    path, fmt, channels, length = Path(argv[0]), argv[1], int(argv[2]), int(argv[3])
    import numpy as np

    from fedhar.export.runners import load_runner

    if fmt == "onnx":
        import onnxruntime  # noqa: F401  (the runtime's own libraries are not the model's cost)
    else:
        import executorch.runtime  # noqa: F401
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current resident set
    before = _status("VmRSS")
    runner = load_runner(path, fmt, threads=1)
    runner(np.zeros((1, channels, length), dtype=np.float32))
    peak = _status("VmHWM")
    print(json.dumps({"rss_before_load_mb": before, "peak_rss_mb": peak, "model_peak_mb": peak - before,
                      "torch_imported": "torch" in sys.modules}))


if __name__ == "__main__":
    main(sys.argv[1:])
